"""The host-side bookkeeping of a beam search's device state: the pointer caches of ``generate``
(``PointerCache``) and ``generate_stream`` (``StreamCache``, ``StreamFeed``), whose hypotheses find their
own keys through their ancestors (``Ancestors``) instead of a cache reordered every step.

The self-attention cache is never reordered: each row writes its key/value in its own slot, and the host
keeps, per hypothesis and position, the slot of the ancestor that wrote it (gathered by ``beam_indices``
like the tokens). Past positions lie in an old part the step only reads, the last
``CACHE_LENGTH_MULTIPLE`` in a recent window it rewrites; a full window joins the old part.
"""

import mindspore as ms
import numpy as np
from mindspore import Tensor

from src.dataset.batching import pad_batch, pad_width, round_up
from src.transformer.beam_search import slot_rows
from src.transformer.compiled import per_model
from src.transformer.device_step import encode_function, refill_function, shift_function
from src.transformer.transformer import CacheView

CACHE_LENGTH_MULTIPLE = 16


def past_length(max_len: int, width: int = CACHE_LENGTH_MULTIPLE) -> int:
    """The old part of a ``StreamCache`` for examples of at most ``max_len`` tokens: the last positions an
    example still decoding may have written before the current window (its first at most ``max_len - 1``
    steps ago), in whole windows, at least one.

    >>> past_length(64), past_length(65), past_length(2)
    (64, 64, 16)
    """
    return max(round_up(max_len - 1, width), width)


class StreamFeed:
    """The per-example device state of ``generate_stream``'s slots: each slot's memory score bias and
    cross-attention keys and values (``feed.bias``, ``feed.cross``), refilled from encoded chunks of
    ``batch_size`` sources (encoded in order, as examples enter), and the step weights."""

    def __init__(self, model, sources, batch_size: int, beam: int, width: int):
        self.model, self.sources, self.batch, self.beam, self.width = model, sources, batch_size, beam, width
        self.bias = self.cross = self.weights = None
        self.chunk_index, self.chunk = -1, None

    def _chunk(self, index: int):
        """The encoded chunk ``index`` (sources ``index * batch .. + batch``; a short last chunk is filled up
        with copies of its first source): (bias, cross)."""
        if index != self.chunk_index:
            rows = self.sources[index * self.batch:(index + 1) * self.batch]
            rows = rows + rows[:1] * (self.batch - len(rows))
            (src,) = pad_batch([rows])
            bias, cross, weights = encode_function(self.model, self.beam)(
                Tensor(pad_width(src, self.width, self.width)))
            if self.weights is None:
                self.weights = ms.mutable(weights)
            self.chunk_index, self.chunk = index, (bias, ms.mutable(cross))
        return self.chunk

    def refill(self, slots: np.ndarray, examples: np.ndarray):
        """Bring ``examples`` (consecutive, in order) into ``slots``."""
        for index in np.unique(examples // self.batch):
            mine = examples // self.batch == index
            bias, cross = self._chunk(int(index))
            if self.bias is None:  # the first refill: every slot starts as the first chunk
                self.bias, self.cross = bias, cross
            pick = np.arange(self.batch)  # (batch,): the row of (slots' rows, chunk's rows) each slot takes
            pick[slots[mine]] = self.batch + examples[mine] % self.batch
            self.bias, cross = refill_function(self.model)(self.bias, self.cross, bias, cross,
                                                            Tensor(pick.astype(np.int32)))
            self.cross = ms.mutable(cross)


class Ancestors:
    """Per live hypothesis (row ``example * beam + slot``) and cache position, the slot whose key is the
    hypothesis' own there, -1 where it has none: the bookkeeping of a pointer cache (``PointerCache``,
    ``StreamCache``), on the host."""

    def __init__(self, rows: int, beam: int, positions: int):
        self.table = np.full((rows, positions), -1, dtype=np.int32)
        self.slot = (np.arange(rows) % beam).astype(np.int32)  # each row writes its keys in its own slot

    def advance(self, beam_indices, position: int):
        """The hypotheses that ``beam_indices`` (rows,) selects (None: the same rows) inherit their parents'
        ancestors, and each row's new key at ``position`` is in its own slot."""
        if beam_indices is not None:
            self.table = self.table[beam_indices]
        self.table[:, position] = self.slot

    def forget(self, rows: np.ndarray):
        """``rows`` start new hypotheses: no key of theirs anywhere yet."""
        self.table[rows] = -1

    def drop_oldest(self, count: int):
        """The first ``count`` positions leave; ``count`` empty ones join at the end."""
        self.table = np.concatenate([self.table[:, count:], np.full((len(self.table), count), -1, np.int32)], 1)

    def parts(self, start: int, width: int) -> tuple:
        """(positions before ``start``, or None when ``start`` is 0; the ``width`` from ``start``) as int32
        Tensors for ``beam_step``."""
        return (Tensor(self.table[:, :start]) if start else None,
                Tensor(np.ascontiguousarray(self.table[:, start:start + width])))


class StreamCache:
    """The self-attention cache of ``generate_stream``: ``PointerCache``'s, in global time. The old part
    always holds the ``past`` positions before the recent window (zeros at first); a full window joins it
    and its oldest window leaves (``MassTransformer.shift_window``), so every step has one shape. A slot's
    example finds its own keys by its ancestors; an entering example's rows have none (``clear``)."""

    def __init__(self, model, batch: int, beam: int, past: int, width: int = CACHE_LENGTH_MULTIPLE):
        self.model, self.beam, self.width, self.past = model, beam, width, past
        self.old = ms.mutable(model.join_window(None, empty_window(model, batch, beam, past), beam))
        self.recent = self.empty = empty_window(model, batch, beam, width)
        self.ancestors = Ancestors(batch * beam, beam, past + width)
        self.time = 0  # global steps so far

    def clear(self, slots: np.ndarray):
        """The rows of ``slots`` start a new example: no key of theirs yet."""
        self.ancestors.forget(slot_rows(slots, self.beam))

    def advance(self, beam_indices, cross) -> CacheView:
        """Make ready for the next step (``PointerCache.advance``): the step's ``CacheView``, with the slots'
        cross-attention part ``cross`` (``StreamFeed.cross``)."""
        at = self.time % self.width
        if at == 0 and self.time:  # the window is full: it joins the old part, whose oldest window leaves
            self.old = ms.mutable(shift_function(self.model, self.beam)(self.old, ms.mutable(self.recent)))
            self.recent = self.empty
            self.ancestors.drop_oldest(self.width)
        self.ancestors.advance(beam_indices, self.past + at)
        self.time += 1
        return CacheView(self.old, ms.mutable(self.recent), cross, Tensor(at, ms.int32),
                         *self.ancestors.parts(self.past, self.width))


class PointerCache:
    """Beam search's self-attention cache for ``MassTransformer.beam_step``, never reordered.

    Row ``example * beam + slot`` writes the key/value of step ``t`` into its own slot at position ``t``.
    ``ancestors`` (``Ancestors``) holds, for each live hypothesis and past position, the slot whose key
    is its own there: gathered by ``beam_indices`` every step (as the tokens are), -1 where nothing is
    written yet. Positions before ``old_len`` lie in ``old`` (per layer keys and values, slot-major, the
    keys transposed: ``MassTransformer.join_window``; None at first), which a step only reads; the last
    ``width`` in ``recent``, which the step rewrites and hands back (or, with the fused CPU attention, writes
    in place); a full window joins ``old`` and a new one opens.
    """

    def __init__(self, model, cross, batch: int, beam: int, max_len: int, width: int = CACHE_LENGTH_MULTIPLE):
        self.model, self.batch, self.beam, self.width = model, batch, beam, width
        # the examples' cross-attention keys and values (model.cross_cache), fixed; the parts that stay the same
        # from step to step are wrapped for jit once (ms.mutable checks every element of a tuple it wraps)
        self.cross = ms.mutable(tuple(cross))
        self.old, self.old_len = None, 0
        self.recent = self.empty = empty_window(model, batch, beam, width)
        self.ancestors = Ancestors(batch * beam, beam, max_len + width)

    def advance(self, beam_indices, step: int) -> CacheView:
        """Make ready for ``step`` of the hypotheses that ``beam_indices`` (rows,) selects (None at step 0):
        the step's ``CacheView``. The caller stores the step's new window in ``recent`` (unless the step wrote
        it in place)."""
        if step == self.old_len + self.width:  # the window is full: it joins the old part, a new one opens
            self.old = ms.mutable(self.model.join_window(self.old, self.recent, self.beam))
            self.recent, self.old_len = self.empty, step
        self.ancestors.advance(beam_indices, step)
        return CacheView(self.old, ms.mutable(self.recent), self.cross, Tensor(step - self.old_len, ms.int32),
                         *self.ancestors.parts(self.old_len, self.width))


def empty_window(model, batch: int, beam: int, width: int) -> tuple:
    """``model.beam_window(batch, beam, width)``, made once per model and shape and shared by every window
    of every search. A step with MindSpore ops returns a new window; the fused CPU attention
    (``cpu_kernels``) writes into this one in place, which is safe: a hypothesis reads a window position
    only where its ancestors say a key was written in the current window, and a window joining the old part
    is copied. Making the zeros anew at each window cost 7 ms per call in a decode (MindSpore, CPU)."""
    return per_model(model, "empty_window", (batch, beam, width), lambda: model.beam_window(batch, beam, width))
