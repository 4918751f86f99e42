"""Generation with a ``MassTransformer``: one encoder pass, then one cached decoder step per token.

``generate`` adapts the model to ``beam_search``'s step callable: the source is encoded once, the
memory mask and the cache are repeated ``beam_size`` times over rows (``row = example * beam + k``),
and each step gathers the cache rows named by ``beam_indices`` before decoding the new token at its
position (the step index: fine-tuned generation decodes from position 0). The step runs under
``ms.jit`` and takes the cache as ``ms.mutable``, so it is compiled once per shape.
"""

import weakref

import mindspore as ms
import numpy as np
from mindspore import Tensor, ops

from src.dataset.batching import cut_batch, pad_width, round_up
from src.text.dictionary import BOS_ID, EOS_ID, MASK_ID, PAD_ID
from src.transformer.beam_search import Hypothesis, beam_search

SOURCE_LENGTH_MULTIPLE = 8  # sources and caches are padded to a few shapes, each compiled once
CACHE_LENGTH_MULTIPLE = 16

_STEP_FUNCTIONS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

# decode_config key -> generate() argument: the one mapping between the config and the search
DECODE_ARGS = {
    "beam_width": "beam_size", "length_penalty_weight": "length_penalty",
    "length_penalty_type": "length_penalty_type", "min_decode_length": "min_len",
    "max_decode_length_a": "max_len_a", "max_decode_length_b": "max_len_b",
    "no_repeat_ngram_size": "no_repeat_ngram_size", "n_best": "n_best",
}


def decode_options(decode_config, **overrides) -> dict:
    """``generate()`` keyword arguments from a ``DecodeConfig``, with non-None ``overrides`` on top
    (named like ``generate()``'s arguments: beam_size, max_len_b, ...)."""
    options = {arg: getattr(decode_config, key) for key, arg in DECODE_ARGS.items()}
    unknown = set(overrides) - set(options)
    if unknown:
        raise TypeError(f"unknown decode option(s): {', '.join(sorted(unknown))}")
    options.update({k: v for k, v in overrides.items() if v is not None})
    options["n_best"] = min(options["n_best"], options["beam_size"])
    return options


def max_decode_lengths(src_lengths, max_len_a: float, max_len_b: int, max_positions: int) -> np.ndarray:
    """Per source, the most tokens to generate: ``int(a * src_len + b)``, at least 1, at most the
    position table.

    >>> max_decode_lengths(np.array([10, 40]), 1.5, 4, 64).tolist()
    [19, 64]
    """
    lengths = (max_len_a * np.asarray(src_lengths) + max_len_b).astype(np.int64)
    return np.maximum(np.minimum(lengths, max_positions), 1)


def generate(model, src_ids: np.ndarray, *, beam_size: int, max_len_a: float, max_len_b: int,
             min_len: int = 0, length_penalty: float = 1.0, length_penalty_type: str = "gnmt",
             no_repeat_ngram_size: int = 0, n_best: int = 1) -> list[list[Hypothesis]]:
    """Decode a batch of sources ``src_ids`` (batch, src_len), padded with ``<pad>`` = 0.

    Each example gets at most ``int(max_len_a * src_len + max_len_b)`` tokens (``src_len``: its
    non-pad tokens), capped by the position table. The model must be in eval mode (``set_train(False)``).
    """
    if model.training:
        raise ValueError("generate() needs the model in eval mode: call model.set_train(False) first")
    max_positions = model.config.max_position_embeddings
    src_ids = cut_batch(np.asarray(src_ids), max_positions)
    batch = src_ids.shape[0]
    src_lengths = (src_ids != PAD_ID).sum(axis=1)  # (batch,)
    max_len = max_decode_lengths(src_lengths, max_len_a, max_len_b, max_positions)  # (batch,)

    src = Tensor(pad_width(src_ids, SOURCE_LENGTH_MULTIPLE, max_positions))
    memory, _ = model.encode(src)  # (batch, src_len, d)
    tile = Tensor(np.repeat(np.arange(batch), beam_size).astype(np.int32))  # (rows,): example of each row
    memory = ops.gather(memory, tile, 0)  # (rows, src_len, d)
    memory_mask = ops.gather(model.memory_mask(src), tile, 0)  # (rows, src_len)
    cache_len = min(round_up(int(max_len.max()), CACHE_LENGTH_MULTIPLE), max_positions)
    cache = model.init_cache(memory, cache_len)
    decode_step = _step_function(model)
    rows = batch * beam_size

    def step_fn(last_tokens, beam_indices, step):
        nonlocal cache
        order = np.arange(rows) if beam_indices is None else beam_indices
        tokens = Tensor(last_tokens.reshape(rows, 1).astype(np.int32))  # (rows, 1)
        positions = Tensor(np.full((rows, 1), step, dtype=np.int32))  # (rows, 1)
        log_probs, cache = decode_step(tokens, positions, memory, memory_mask, ms.mutable(cache),
                                       Tensor(order.astype(np.int32)))
        return log_probs.asnumpy()  # (rows, vocab)

    return beam_search(step_fn, batch, beam_size=beam_size, bos=BOS_ID, eos=EOS_ID, max_len=max_len,
                       min_len=min_len, length_penalty=length_penalty, length_penalty_type=length_penalty_type,
                       no_repeat_ngram_size=no_repeat_ngram_size, n_best=n_best, forbid=(PAD_ID, MASK_ID))


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
