"""The device side of a beam search: the jit-compiled graphs a search runs (``encode_function``: the
source's memory bias, cross-attention keys and step weights; ``topk_step_function``: one decoder step over
a pointer cache, the constraints' banned ids set to ``-inf`` (``banned_scatter``) and each row's best ``k``
tokens (``blocked_topk``); ``refill_function`` and ``shift_function`` for the stream search), each built once
per model and shape key (``compiled.per_model``).
"""

import mindspore as ms
import numpy as np
from mindspore import Tensor, ops

from src.transformer import cpu_kernels
from src.transformer.compiled import increment_graph, per_model


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
    largest maxima (a token outside them is beaten by each of their maxima), so the top-k of those
    ``k * block`` tokens is the answer. Values come best first; the tokens of equal values may differ from
    ``ops.topk``'s (MindSpore's CPU TopK orders equal values in no stated order).
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


def topk_step_function(model, beam: int, k: int, block: int):
    """The compiled beam-search step of ``model`` over a pointer cache (``MassTransformer.beam_step``; one graph
    per input shapes, called through ``compiled.increment_graph``)
    that returns each row's ``k`` best tokens after the constraints (the ``banned_scatter`` of the search's
    banned ids), with ``blocked_topk`` when ``block``, and the new recent window, or None where the
    step wrote it in place (the fused CPU attention, ``cpu_kernels.step_kernels``: the caller keeps its
    window; and then the log-softmax, bans and top-k in one kernel too, ``cpu_kernels.topk_kernel``); built
    once per (model, beam, k, block, kernel). Its inputs are the tokens, positions and memory
    bias, the ``transformer.CacheView`` fields in order (passed as ``*view``: a jit graph takes them flat),
    the ``banned_scatter`` pair and the step weights. The old part and the cross-attention keys are inputs
    only: never copied."""
    kernels = cpu_kernels.step_kernels(model.compute_dtype)
    topk = cpu_kernels.topk_kernel(k, model.compute_dtype) if kernels is not None else None

    def build():
        minus_inf = Tensor(-np.inf, ms.float32)

        def step(tokens, positions, memory_bias, old, recent, cross, at, ancestors_old, ancestors_recent, index, on,
                 weights):
            view = (old, recent, cross, at, ancestors_old, ancestors_recent)  # a CacheView's fields (see beam_step)
            hidden, recent = model.beam_step(tokens, positions, memory_bias, beam, view, weights, kernels)
            logits = model.step_logits(hidden, weights).astype(ms.float32).squeeze(1)  # (rows, vocab)
            if topk is not None:  # the ops below in one kernel
                return topk(logits, index, on)
            log_probs = ops.log_softmax(logits, -1)
            update = ops.where(on, minus_inf, ops.gather_elements(log_probs, 1, index))
            log_probs = ops.tensor_scatter_elements(log_probs, index, update, axis=1)
            values, ids = blocked_topk(log_probs, k, block) if block else ops.topk(log_probs, k)
            if kernels is None:
                return values, ids, recent
            return values, ids  # the window was written in place: returning it would copy it

        step = increment_graph(step)
        return step if kernels is None else lambda *args: step(*args) + (None,)

    return per_model(model, "topk_step", (beam, k, block, kernels is not None), build)


def encode_function(model, beam: int):
    """The jit-compiled start of a beam search of ``beam`` hypotheses per example: ``src`` (batch, src_len)
    -> the cross-attention score bias of its memory mask (``memory_bias``), every decoder layer's
    cross-attention keys and values (``cross_cache``) and the step's transposed weights (``step_weights``,
    made per search: the model may be training between searches), in one graph (built once per model and
    beam; its outputs are fresh, contiguous tensors)."""
    def build():
        @ms.jit
        def encode(src):
            memory, _ = model.encode(src)
            return (model.memory_bias(model.memory_mask(src), beam), model.cross_cache(memory, keys_transposed=True),
                    model.step_weights())

        return encode

    return per_model(model, "encode", beam, build)


def refill_function(model):
    """The jit-compiled refill of ``StreamFeed``: (bias, cross) of the slots, (bias, cross) of a chunk, pick
    (batch,) -> row ``pick[i]`` of the slots' then the chunk's rows, for every slot ``i``."""
    def build():
        @ms.jit
        def refill(bias, cross, chunk_bias, chunk_cross, pick):
            picked = ()
            for i in range(len(cross)):
                picked = picked + (ops.gather(ops.concat([cross[i], chunk_cross[i]], 0), pick, 0),)
            return ops.gather(ops.concat([bias, chunk_bias], 0), pick, 0), picked

        return refill

    return per_model(model, "refill", None, build)


def shift_function(model, beam: int):
    """The jit-compiled ``MassTransformer.shift_window`` of ``model`` for ``beam`` slots."""
    def build():
        @ms.jit
        def shift(old, recent):
            return model.shift_window(old, recent, beam)

        return shift

    return per_model(model, "shift", beam, build)
