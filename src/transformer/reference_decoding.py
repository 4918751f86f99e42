"""The reference decoder: what ``generate`` computes, the slow and plain way, for tests and benchmarks.

``reference_generate`` runs the same search (``beam_search``, the same settings and constraints) over the
model's whole ``(rows, vocab)`` distribution copied to the host at every step, decoded with the classic
key/value cache (``MassTransformer.init_cache`` / ``decode``), reordered by a gather of the beams each step.
Production decoding never takes this path; tests check ``generate`` against it (and it against a full
recomputation of every prefix), and ``bench/bench_decode.py`` times it as a row.
"""

import mindspore as ms
import numpy as np
from mindspore import Tensor, ops

from src.transformer.beam_search import Hypothesis, beam_search
from src.transformer.compiled import per_model
from src.transformer.generator import prepare_sources
from src.transformer.search_settings import SearchSettings


def reference_generate(model, src_ids: np.ndarray, settings: SearchSettings, *,
                       constraints=()) -> list[list[Hypothesis]]:
    """``generate``'s hypotheses, from the full distribution on the host (see the module docstring)."""
    src, max_len, cache_len = prepare_sources(model, src_ids, settings)
    batch, beam_size = src.shape[0], settings.beam_size
    rows = batch * beam_size
    cache = memory = memory_mask = None  # made at the first step

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
        log_probs, cache = reference_step_function(model)(tokens, positions, memory, memory_mask, ms.mutable(cache),
                                                          Tensor(order.astype(np.int32)))
        return log_probs.asnumpy()  # (rows, vocab)

    return beam_search(step_fn, batch, settings, max_len=max_len, constraints=constraints)


def reference_step_function(model):
    """The jit-compiled step of the classic cache (reordered, then one decoder step), built once per model."""
    def build():
        @ms.jit
        def decode_step(tokens, positions, memory, memory_mask, cache, beam_indices):
            cache = model.reorder_cache(cache, beam_indices)
            hidden, cache = model.decode(tokens, positions, memory, memory_mask, cache)  # (rows, 1, d)
            logits = model.logits(hidden).astype(ms.float32)  # (rows, 1, vocab)
            return ops.log_softmax(logits, -1).squeeze(1), cache  # (rows, vocab)

        return decode_step

    return per_model(model, "reference_step", None, build)
