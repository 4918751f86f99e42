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
beam)`` candidates per token, never a vocabulary-wide array.

Modules: this one is the public API; ``decode_cache`` the host bookkeeping of the pointer caches;
``device_step`` the compiled graphs (step, top-k, constraints); ``reference_decoding`` the slow reference.
"""

import mindspore as ms
import numpy as np
from mindspore import Tensor

from src.dataset.batching import cut, cut_batch, pad_width, round_up
from src.text.dictionary import PAD_ID
from src.transformer.beam_search import Candidates, Hypothesis, beam_search, stream_beam_search
from src.transformer.decode_cache import CACHE_LENGTH_MULTIPLE, PointerCache, StreamCache, StreamFeed, past_length
from src.transformer.device_step import banned_scatter, encode_function, topk_block_size, topk_step_function
from src.transformer.search_settings import SearchSettings
from src.utils import core_share

core_share.shared()  # made at import: its first sample of the cores' use

# sources are padded to few widths, each compiled once (an encoder graph and a step graph per cache length):
# 64 holds every source of the default max_len in one width (eval.py on the Gigaword test: 147 s instead of
# 162 s with 32, one compilation pause instead of two); the longer cross-attention costs a step little
SOURCE_LENGTH_MULTIPLE = 64


def prepare_sources(model, src_ids: np.ndarray, settings: SearchSettings) -> tuple:
    """``(src, max_len, cache_len)`` of a batch decode: the sources cut to the position table and padded to
    a multiple of ``SOURCE_LENGTH_MULTIPLE`` (a Tensor), each example's most tokens (``settings.max_lengths``)
    and the cache length that holds them (a multiple of ``CACHE_LENGTH_MULTIPLE``)."""
    if model.training:
        raise ValueError("generate() needs the model in eval mode: call model.set_train(False) first")
    max_positions = model.config.max_position_embeddings
    src_ids = cut_batch(np.asarray(src_ids), max_positions)
    max_len = settings.max_lengths((src_ids != PAD_ID).sum(axis=1), max_positions)  # (batch,)
    src = Tensor(pad_width(src_ids, SOURCE_LENGTH_MULTIPLE, max_positions))
    cache_len = min(round_up(int(max_len.max()), CACHE_LENGTH_MULTIPLE), max_positions)
    return src, max_len, cache_len


def generate(model, src_ids: np.ndarray, settings: SearchSettings, *, constraints=()) -> list[list[Hypothesis]]:
    """Decode a batch of sources ``src_ids`` (batch, src_len), padded with ``<pad>`` = 0, as ``settings`` say.

    Each example gets at most ``int(max_len_a * src_len + max_len_b)`` tokens (``src_len``: its
    non-pad tokens), capped by the position table. The model must be in eval mode (``set_train(False)``).
    ``constraints``: extra ``decoding_constraints`` functions, applied after the built-in ones.
    ``src/transformer/reference_decoding.py`` computes the same hypotheses the slow way (tests, benches).
    """
    src, max_len, cache_len = prepare_sources(model, src_ids, settings)
    batch, beam_size = src.shape[0], settings.beam_size
    rows = batch * beam_size
    pointer_cache = memory_bias = weights = decode_step = None  # made at the first step
    cores = core_share.for_device(ms.get_context("device_target"))

    def topk_fn(last_tokens, beam_indices, step, k, banned):
        nonlocal pointer_cache, memory_bias, weights, decode_step
        if pointer_cache is None:  # one graph: the encoder, the memory bias, every layer's memory keys, weights
            memory_bias, cross, weights = encode_function(model, beam_size)(src)  # per example and layer
            weights = ms.mutable(weights)
            pointer_cache = PointerCache(model, cross, batch, beam_size, cache_len)
            k = min(k, model.config.vocab_size)  # the same k at every step
            decode_step = topk_step_function(model, beam_size, k, topk_block_size(model.config.vocab_size, k))
        cores.adapt()  # keep to the cores other processes leave (a clock read between samples)
        tokens = Tensor(last_tokens.reshape(rows, 1).astype(np.int32))  # (rows, 1)
        positions = Tensor(np.full((rows, 1), step, dtype=np.int32))  # (rows, 1)
        values, ids, recent = decode_step(tokens, positions, memory_bias, *pointer_cache.advance(beam_indices, step),
                                          *banned_scatter(banned), weights)
        if recent is not None:  # else the step wrote the window in place
            pointer_cache.recent = recent
        return Candidates(values.asnumpy(), ids.asnumpy())  # (rows, k) each

    try:
        return beam_search(None, batch, settings, max_len=max_len, constraints=constraints, topk_fn=topk_fn)
    finally:
        cores.release()


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
    decode_step = topk_step_function(model, beam_size, k, topk_block_size(model.config.vocab_size, k))
    rows = batch_size * beam_size
    cores = core_share.for_device(ms.get_context("device_target"))

    def refill(slots, examples):
        feed.refill(slots, examples)
        cache.clear(slots)

    def topk_fn(last_tokens, beam_indices, positions, k, banned):
        cores.adapt()
        tokens = Tensor(last_tokens.reshape(rows, 1).astype(np.int32))  # (rows, 1)
        view = cache.advance(beam_indices, feed.cross)
        values, ids, recent = decode_step(tokens, Tensor(positions.reshape(rows, 1).astype(np.int32)), feed.bias,
                                          *view, *banned_scatter(banned), feed.weights)
        if recent is not None:  # else the step wrote the window in place
            cache.recent = recent
        return Candidates(values.asnumpy(), ids.asnumpy())  # (rows, k) each

    try:
        return stream_beam_search(topk_fn, len(sources), settings, batch_size=batch_size, max_len=max_len,
                                  constraints=constraints, refill_fn=refill, on_done=on_done)
    finally:
        cores.release()
