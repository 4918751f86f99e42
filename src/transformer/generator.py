"""Generation with a ``MassTransformer``: one encoder pass, then one cached decoder step per token.

``generate`` adapts the model to ``beam_search``'s top-k callable: one graph encodes the source and
computes every decoder layer's cross-attention keys once per example (an example's ``beam_size``
hypothesis rows, ``row = example * beam + slot``, are the query rows of one product: nothing is repeated
per beam), and each step decodes the new tokens at their position (the step index: fine-tuned
generation decodes from position 0) with ``MassTransformer.beam_step``. Its self-attention cache is
never reordered: each row writes its key/value in its own slot, and the host keeps, per hypothesis and
position, the slot of the ancestor that wrote it (``ancestors``, gathered by ``beam_indices`` like the
tokens). Past positions lie in an old part the step only reads, the last ``CACHE_LENGTH_MULTIPLE`` in a
recent window it rewrites; a full window joins the old part. The step runs under ``ms.jit`` (compiled
once per shape: the old part grows 16 positions at a time), applies the search's constraints and keeps
each row's ``2 * beam`` best tokens on the device (``blocked_topk``), so the host receives ``(rows, 2 *
beam)`` candidates per token, never a vocabulary-wide array. ``device_topk=False`` is the reference
path: the whole distribution to the host and the classic cache, reordered by a gather each step.
"""

import weakref

import mindspore as ms
import numpy as np
from mindspore import Tensor, ops

from src.dataset.batching import cut, cut_batch, pad_batch, pad_width, round_up
from src.text.dictionary import PAD_ID
from src.transformer import cpu_kernels
from src.transformer.beam_search import (
    Candidates,
    Hypothesis,
    beam_search,
    slot_rows,
    stream_beam_search,
)
from src.transformer.search_settings import SearchSettings

# sources are padded to few widths, each compiled once (an encoder graph and a step graph per cache length):
# 64 holds every source of the default max_len in one width (eval.py on the Gigaword test: 147 s instead of
# 162 s with 32, one compilation pause instead of two); the longer cross-attention costs a step little
SOURCE_LENGTH_MULTIPLE = 64
CACHE_LENGTH_MULTIPLE = 16

_STEP_FUNCTIONS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_ENCODE_FUNCTIONS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_EMPTY_WINDOWS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_REFILL_FUNCTIONS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_SHIFT_FUNCTIONS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def generate(model, src_ids: np.ndarray, settings: SearchSettings, *, constraints=(),
             device_topk: bool = True) -> list[list[Hypothesis]]:
    """Decode a batch of sources ``src_ids`` (batch, src_len), padded with ``<pad>`` = 0, as ``settings`` say.

    Each example gets at most ``int(max_len_a * src_len + max_len_b)`` tokens (``src_len``: its
    non-pad tokens), capped by the position table. The model must be in eval mode (``set_train(False)``).
    ``constraints``: extra ``decoding_constraints`` functions, applied after the built-in ones.
    ``device_topk=False`` copies every step's whole ``(rows, vocab)`` distribution to the host instead
    (the reference the device path is tested and benchmarked against).
    """
    if model.training:
        raise ValueError("generate() needs the model in eval mode: call model.set_train(False) first")
    max_positions = model.config.max_position_embeddings
    src_ids = cut_batch(np.asarray(src_ids), max_positions)
    batch = src_ids.shape[0]
    src_lengths = (src_ids != PAD_ID).sum(axis=1)  # (batch,)
    max_len = settings.max_lengths(src_lengths, max_positions)  # (batch,)

    src = Tensor(pad_width(src_ids, SOURCE_LENGTH_MULTIPLE, max_positions))
    cache_len = min(round_up(int(max_len.max()), CACHE_LENGTH_MULTIPLE), max_positions)
    beam_size = settings.beam_size
    rows = batch * beam_size
    cache = None  # the host-distribution path's cache, made at its first step
    pointer_cache = None  # the device path's cache (PointerCache), made at its first step
    memory = memory_mask = memory_bias = weights = decode_step = None  # made at the first step, as needed

    def topk_fn(last_tokens, beam_indices, step, k, banned):
        nonlocal pointer_cache, memory_bias, weights, decode_step
        if pointer_cache is None:  # one graph: the encoder, the memory bias, every layer's memory keys, weights
            memory_bias, cross, weights = _encode_function(model, beam_size)(src)  # per example and layer
            weights = ms.mutable(weights)
            pointer_cache = PointerCache(model, cross, batch, beam_size, cache_len)
            k = min(k, model.config.vocab_size)  # the same k at every step
            decode_step = _topk_step_function(model, beam_size, k, topk_block_size(model.config.vocab_size, k))
        tokens = Tensor(last_tokens.reshape(rows, 1).astype(np.int32))  # (rows, 1)
        positions = Tensor(np.full((rows, 1), step, dtype=np.int32))  # (rows, 1)
        values, ids, recent = decode_step(tokens, positions, memory_bias, *pointer_cache.advance(beam_indices, step),
                                          *banned_scatter(banned), weights)
        if recent is not None:  # else the step wrote the window in place
            pointer_cache.recent = recent
        return Candidates(values.asnumpy(), ids.asnumpy())  # (rows, k) each

    def step_fn(last_tokens, beam_indices, step):
        nonlocal cache, memory, memory_mask
        if cache is None:  # the memory and its mask repeated for every row
            memory, _ = model.encode(src)  # (batch, src_len, d)
            tile = Tensor(np.repeat(np.arange(batch), beam_size).astype(np.int32))  # (rows,): example of each row
            memory = ops.gather(memory, tile, 0)  # (rows, src_len, d)
            memory_mask = ops.gather(model.memory_mask(src), tile, 0)  # (rows, src_len)
            cache = model.init_cache(memory, cache_len)
        order = np.arange(rows) if beam_indices is None else beam_indices
        tokens = Tensor(last_tokens.reshape(rows, 1).astype(np.int32))  # (rows, 1)
        positions = Tensor(np.full((rows, 1), step, dtype=np.int32))  # (rows, 1)
        log_probs, cache = _step_function(model)(tokens, positions, memory, memory_mask, ms.mutable(cache),
                                                 Tensor(order.astype(np.int32)))
        return log_probs.asnumpy()  # (rows, vocab)

    search = {"topk_fn": topk_fn} if device_topk else {"step_fn": step_fn}
    return beam_search(search.get("step_fn"), batch, settings, max_len=max_len, constraints=constraints,
                       topk_fn=search.get("topk_fn"))


def generate_stream(model, sources, settings: SearchSettings, *, batch_size: int, constraints=(),
                    on_done=None) -> list[list[Hypothesis]]:
    """``generate`` of every source in ``sources`` (1-D id arrays, unpadded), through ``batch_size`` example
    slots: an example enters a slot as soon as the slot's example stops (``stream_beam_search``), so a
    step computes few rows of examples that stopped (in a batch decode, most of them: the batch runs as long
    as its longest example). Per source, in input order, the hypotheses of ``generate`` on it (up to
    rounding: a step attends over more, masked, cache positions).

    Every step graph has one shape: sources are padded to one width, and the cache (``StreamCache``) is a
    fixed number of past positions in global time, each example's own positions found by its ancestors.
    ``on_done(example)`` is called as each example's search ends.
    """
    if model.training:
        raise ValueError("generate_stream() needs the model in eval mode: call model.set_train(False) first")
    max_positions = model.config.max_position_embeddings
    sources = [cut(np.asarray(s), max_positions) for s in sources]
    if not sources:
        return []
    lengths = np.array([int((s != PAD_ID).sum()) for s in sources])
    max_len = settings.max_lengths(lengths, max_positions)  # (count,)
    beam_size = settings.beam_size
    width = min(round_up(max(len(s) for s in sources), SOURCE_LENGTH_MULTIPLE), max_positions)
    feed = StreamFeed(model, sources, batch_size, beam_size, width)
    cache = StreamCache(model, batch_size, beam_size, past_length(int(max_len.max())))
    k = min(2 * beam_size, model.config.vocab_size)
    decode_step = _topk_step_function(model, beam_size, k, topk_block_size(model.config.vocab_size, k))
    rows = batch_size * beam_size

    def refill(slots, examples):
        feed.refill(slots, examples)
        cache.clear(slots)

    def topk_fn(last_tokens, beam_indices, positions, k, banned):
        tokens = Tensor(last_tokens.reshape(rows, 1).astype(np.int32))  # (rows, 1)
        old, recent, at, ancestors_old, ancestors_recent = cache.advance(beam_indices)
        values, ids, recent = decode_step(tokens, Tensor(positions.reshape(rows, 1).astype(np.int32)), feed.bias,
                                          old, recent, feed.cross, at, ancestors_old, ancestors_recent,
                                          *banned_scatter(banned), feed.weights)
        if recent is not None:  # else the step wrote the window in place
            cache.recent = recent
        return Candidates(values.asnumpy(), ids.asnumpy())  # (rows, k) each

    return stream_beam_search(topk_fn, len(sources), settings, batch_size=batch_size, max_len=max_len,
                              constraints=constraints, refill_fn=refill, on_done=on_done)


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
            bias, cross, weights = _encode_function(self.model, self.beam)(
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
            self.bias, cross = _refill_function(self.model)(self.bias, self.cross, bias, cross,
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

    def advance(self, beam_indices) -> tuple:
        """Make ready for the next step (``PointerCache.advance``): (old, recent, at, ancestors_old,
        ancestors_recent) of ``beam_step``, without the cross part."""
        at = self.time % self.width
        if at == 0 and self.time:  # the window is full: it joins the old part, whose oldest window leaves
            self.old = ms.mutable(_shift_function(self.model, self.beam)(self.old, ms.mutable(self.recent)))
            self.recent = self.empty
            self.ancestors.drop_oldest(self.width)
        self.ancestors.advance(beam_indices, self.past + at)
        self.time += 1
        return (self.old, ms.mutable(self.recent), Tensor(at, ms.int32), *self.ancestors.parts(self.past, self.width))


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

    def advance(self, beam_indices, step: int) -> tuple:
        """Make ready for ``step`` of the hypotheses that ``beam_indices`` (rows,) selects (None at step 0):
        the ``beam_step`` arguments from ``old`` on (old, recent, cross, at, ancestors_old, ancestors_recent).
        The caller stores the step's new window in ``recent`` (unless the step wrote it in place)."""
        if step == self.old_len + self.width:  # the window is full: it joins the old part, a new one opens
            self.old = ms.mutable(self.model.join_window(self.old, self.recent, self.beam))
            self.recent, self.old_len = self.empty, step
        self.ancestors.advance(beam_indices, step)
        return (self.old, ms.mutable(self.recent), self.cross, Tensor(step - self.old_len, ms.int32),
                *self.ancestors.parts(self.old_len, self.width))


def empty_window(model, batch: int, beam: int, width: int) -> tuple:
    """``model.beam_window(batch, beam, width)``, made once per model and shape and shared by every window
    of every search. A step with MindSpore ops returns a new window; the fused CPU attention
    (``cpu_kernels``) writes into this one in place, which is safe: a hypothesis reads a window position
    only where its ancestors say a key was written in the current window, and a window joining the old part
    is copied. Making the zeros anew at each window cost 7 ms per call in a decode (MindSpore, CPU)."""
    windows = _EMPTY_WINDOWS.setdefault(model, {})
    if (batch, beam, width) not in windows:
        windows[batch, beam, width] = model.beam_window(batch, beam, width)
    return windows[batch, beam, width]


def banned_scatter(banned: np.ndarray) -> list:
    """``[index, on]`` for the device: where to write ``-inf`` (``on``) in each row, from the
    ``(rows, width)`` banned ids padded with -1 (``decoding_constraints.banned_ids``). A pad repeats its
    row's first banned token (or points at token 0 with ``on`` False, rewriting its own value), so that
    duplicate indices of a row always carry the same update."""
    has = (banned >= 0).any(axis=1, keepdims=True)  # (rows, 1)
    first = np.where(has, banned.max(axis=1, keepdims=True), 0)  # (rows, 1): a banned token of the row
    index = np.where(banned >= 0, banned, first)  # (rows, width)
    on = np.broadcast_to(has, banned.shape)  # (rows, width)
    return [Tensor(index.astype(np.int32)), Tensor(np.ascontiguousarray(on))]


TOPK_BLOCK = 64  # tokens per block of the device top-k (see blocked_topk)


def topk_block_size(vocab: int, k: int) -> int:
    """The block size of ``blocked_topk`` for ``k`` of ``vocab`` tokens: at most ``TOPK_BLOCK``, smaller
    for a small vocabulary (at least 4 k blocks), 0 (a plain top-k) when blocks would hold one token; the
    largest such size that divides ``vocab`` if one is at least half of it (no padding column block: its
    copy of the scores cost 0.13 ms a step).

    >>> topk_block_size(10000, 8), topk_block_size(45744, 8), topk_block_size(10007, 8), topk_block_size(20, 6)
    (50, 48, 64, 0)
    """
    block = min(TOPK_BLOCK, vocab // (4 * k))
    if block < 2:
        return 0
    divisors = [size for size in range(block, max(2, (block + 1) // 2) - 1, -1) if vocab % size == 0]
    return divisors[0] if divisors else block


def blocked_topk(scores, k: int, block: int):
    """``ops.topk(scores, k)`` for ``scores`` (rows, vocab), in two small top-k's (MindSpore's CPU
    ``TopK`` over a whole vocabulary is the slowest kernel of a decoding step).

    The tokens are cut into blocks of ``block``; the ``k`` best tokens lie in the ``k`` blocks with the
    largest maxima (a token outside them is beaten by each of their maxima, ties going to the lower
    index as in ``ops.topk``), so the top-k of those ``k * block`` tokens is the answer. Values come
    best first; the tokens of equal values at the k-th place may differ from ``ops.topk``'s.
    """
    rows, vocab = scores.shape
    blocks = -(-vocab // block)
    if blocks * block > vocab:
        scores = ops.concat([scores, ops.full((rows, blocks * block - vocab), -np.inf, dtype=scores.dtype)], 1)
    grid = scores.reshape(rows, blocks, block)
    _, best_blocks = ops.topk(grid.max(axis=2), k, sorted=False)  # (rows, k), in no order (cheaper)
    flat = (ops.arange(rows, dtype=ms.int32).reshape(rows, 1) * blocks + best_blocks).reshape(rows * k)
    picked = ops.gather(grid.reshape(rows * blocks, block), flat, 0).reshape(rows, k * block)
    values, where = ops.topk(picked, k)  # (rows, k)
    # the token ids of the picked blocks, gathered like their scores (cheaper in a step than // and %)
    token_grid = ops.arange(blocks * block, dtype=ms.int32).reshape(blocks, block)
    picked_ids = ops.gather(token_grid, best_blocks.reshape(rows * k), 0).reshape(rows, k * block)
    return values, ops.gather_elements(picked_ids, 1, where)


_TOPK_FUNCTIONS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _topk_step_function(model, beam: int, k: int, block: int):
    """The jit-compiled beam-search step of ``model`` over a pointer cache (``MassTransformer.beam_step``)
    that returns each row's ``k`` best tokens after the constraints (the ``banned_scatter`` of the search's
    banned ids), with ``blocked_topk`` when ``block``, and the new recent window, or None where the
    step wrote it in place (the fused CPU attention, ``cpu_kernels.step_kernels``: the caller keeps its
    window); built once per (model, beam, k, block, kernel). The old part and the cross-attention keys are
    inputs only: never copied."""
    functions = _TOPK_FUNCTIONS.setdefault(model, {})
    kernels = cpu_kernels.step_kernels(model.compute_dtype)
    key = (beam, k, block, kernels is not None)
    if key not in functions:
        minus_inf = Tensor(-np.inf, ms.float32)

        @ms.jit
        def step(tokens, positions, memory_bias, old, recent, cross, at, ancestors_old, ancestors_recent, index, on,
                 weights):
            hidden, recent = model.beam_step(tokens, positions, memory_bias, beam, old, recent, cross, at,
                                             ancestors_old, ancestors_recent, weights, kernels)  # (rows, 1, d)
            logits = model.step_logits(hidden, weights).astype(ms.float32).squeeze(1)  # (rows, vocab)
            log_probs = ops.log_softmax(logits, -1)
            update = ops.where(on, minus_inf, ops.gather_elements(log_probs, 1, index))
            log_probs = ops.tensor_scatter_elements(log_probs, index, update, axis=1)
            values, ids = blocked_topk(log_probs, k, block) if block else ops.topk(log_probs, k)
            if kernels is None:
                return values, ids, recent
            return values, ids  # the window was written in place: returning it would copy it

        functions[key] = step if kernels is None else lambda *args: step(*args) + (None,)
    return functions[key]


def _encode_function(model, beam: int):
    """The jit-compiled start of a beam search of ``beam`` hypotheses per example: ``src`` (batch, src_len)
    -> the cross-attention score bias of its memory mask (``memory_bias``), every decoder layer's
    cross-attention keys and values (``cross_cache``) and the step's transposed weights (``step_weights``,
    made per search: the model may be training between searches), in one graph (built once per model and
    beam; its outputs are fresh, contiguous tensors)."""
    functions = _ENCODE_FUNCTIONS.setdefault(model, {})
    if beam not in functions:
        @ms.jit
        def encode(src):
            memory, _ = model.encode(src)
            return (model.memory_bias(model.memory_mask(src), beam), model.cross_cache(memory, keys_transposed=True),
                    model.step_weights())

        functions[beam] = encode
    return functions[beam]


def _refill_function(model):
    """The jit-compiled refill of ``StreamFeed``: (bias, cross) of the slots, (bias, cross) of a chunk, pick
    (batch,) -> row ``pick[i]`` of the slots' then the chunk's rows, for every slot ``i``."""
    if model not in _REFILL_FUNCTIONS:
        @ms.jit
        def refill(bias, cross, chunk_bias, chunk_cross, pick):
            picked = ()
            for i in range(len(cross)):
                picked = picked + (ops.gather(ops.concat([cross[i], chunk_cross[i]], 0), pick, 0),)
            return ops.gather(ops.concat([bias, chunk_bias], 0), pick, 0), picked

        _REFILL_FUNCTIONS[model] = refill
    return _REFILL_FUNCTIONS[model]


def _shift_function(model, beam: int):
    """The jit-compiled ``MassTransformer.shift_window`` of ``model`` for ``beam`` slots."""
    functions = _SHIFT_FUNCTIONS.setdefault(model, {})
    if beam not in functions:
        @ms.jit
        def shift(old, recent):
            return model.shift_window(old, recent, beam)

        functions[beam] = shift
    return functions[beam]


def _step_function(model):
    """The jit-compiled decoder step of ``model``, built once per model."""
    if model not in _STEP_FUNCTIONS:
        @ms.jit
        def decode_step(tokens, positions, memory, memory_mask, cache, beam_indices):
            cache = model.reorder_cache(cache, beam_indices)
            hidden, cache = model.decode(tokens, positions, memory, memory_mask, cache)  # (rows, 1, d)
            logits = model.logits(hidden).astype(ms.float32)  # (rows, 1, vocab)
            return ops.log_softmax(logits, -1).squeeze(1), cache  # (rows, vocab)

        _STEP_FUNCTIONS[model] = decode_step
    return _STEP_FUNCTIONS[model]
