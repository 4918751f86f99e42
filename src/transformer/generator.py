"""Generation with a ``MassTransformer``: one encoder pass, then one cached decoder step per token.

``generate`` adapts the model to ``beam_search``'s step callable: the source is encoded once, the
memory mask and the cache are repeated ``beam_size`` times over rows (``row = example * beam + k``),
and each step gathers the cache rows named by ``beam_indices`` before decoding the new token at its
position (the step index: fine-tuned generation decodes from position 0). The step runs under
``ms.jit`` and takes the cache as ``ms.mutable``, so it is compiled once per shape. The step also applies
the search's constraints and keeps each row's ``2 * beam`` best tokens on the device (``ops.topk``), so
the host receives ``(rows, 2 * beam)`` candidates per token, never a vocabulary-wide array.
"""

import weakref

import mindspore as ms
import numpy as np
from mindspore import Tensor, ops

from src.dataset.batching import cut_batch, pad_width, round_up
from src.text.dictionary import BOS_ID, EOS_ID, MASK_ID, PAD_ID
from src.transformer.beam_search import Candidates, Hypothesis, StepConstraints, beam_search

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
             no_repeat_ngram_size: int = 0, n_best: int = 1, device_topk: bool = True) -> list[list[Hypothesis]]:
    """Decode a batch of sources ``src_ids`` (batch, src_len), padded with ``<pad>`` = 0.

    Each example gets at most ``int(max_len_a * src_len + max_len_b)`` tokens (``src_len``: its
    non-pad tokens), capped by the position table. The model must be in eval mode (``set_train(False)``).
    ``device_topk=False`` copies every step's whole ``(rows, vocab)`` distribution to the host instead
    (the reference the device path is tested and benchmarked against).
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
    rows = batch * beam_size
    forbid = (PAD_ID, MASK_ID)
    bias = np.zeros(model.config.vocab_size, dtype=np.float32)
    bias[list(forbid)] = -np.inf
    bias = Tensor(bias)  # (vocab,): -inf on the forbidden tokens

    def topk_fn(last_tokens, beam_indices, step, k, rules: StepConstraints):
        nonlocal cache
        order = np.arange(rows) if beam_indices is None else beam_indices
        tokens = Tensor(last_tokens.reshape(rows, 1).astype(np.int32))  # (rows, 1)
        positions = Tensor(np.full((rows, 1), step, dtype=np.int32))  # (rows, 1)
        inputs = [tokens, positions, memory, memory_mask, ms.mutable(cache), Tensor(order.astype(np.int32)), bias,
                  Tensor(np.asarray(rules.eos_blocked, dtype=bool))]
        if rules.banned is not None:
            inputs += banned_scatter(rules.banned)
        decode_step = _topk_step_function(model, min(k, model.config.vocab_size), rules.banned is not None)
        values, ids, cache = decode_step(*inputs)
        return Candidates(values.asnumpy(), ids.asnumpy())  # (rows, k) each

    def step_fn(last_tokens, beam_indices, step):
        nonlocal cache
        order = np.arange(rows) if beam_indices is None else beam_indices
        tokens = Tensor(last_tokens.reshape(rows, 1).astype(np.int32))  # (rows, 1)
        positions = Tensor(np.full((rows, 1), step, dtype=np.int32))  # (rows, 1)
        log_probs, cache = _step_function(model)(tokens, positions, memory, memory_mask, ms.mutable(cache),
                                                 Tensor(order.astype(np.int32)))
        return log_probs.asnumpy()  # (rows, vocab)

    search = {"topk_fn": topk_fn} if device_topk else {"step_fn": step_fn}
    return beam_search(search.get("step_fn"), batch, beam_size=beam_size, bos=BOS_ID, eos=EOS_ID, max_len=max_len,
                       min_len=min_len, length_penalty=length_penalty, length_penalty_type=length_penalty_type,
                       no_repeat_ngram_size=no_repeat_ngram_size, n_best=n_best, forbid=forbid,
                       topk_fn=search.get("topk_fn"))


def banned_scatter(banned: np.ndarray) -> list:
    """``[index, on]`` for the device: where to write ``-inf`` (``on``) in each row, from the search's
    ``(rows, width)`` banned tokens padded with -1. A pad repeats its row's first banned token (or
    points at token 0 with ``on`` False, rewriting its own value), so that duplicate indices of a row
    always carry the same update."""
    has = banned[:, :1] >= 0  # (rows, 1)
    first = np.where(has, banned[:, :1], 0)  # (rows, 1)
    index = np.where(banned >= 0, banned, first)  # (rows, width)
    on = np.broadcast_to(has, banned.shape)  # (rows, width)
    return [Tensor(index.astype(np.int32)), Tensor(np.ascontiguousarray(on))]


_TOPK_FUNCTIONS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _topk_step_function(model, k: int, with_banned: bool):
    """The jit-compiled decoder step of ``model`` that returns each row's ``k`` best tokens after the
    constraints (forbidden tokens, eos before the minimum length, repeated n-grams); built once per
    (model, k, with_banned)."""
    functions = _TOPK_FUNCTIONS.setdefault(model, {})
    key = (k, with_banned)
    if key not in functions:
        vocab_ids = Tensor(np.arange(model.config.vocab_size, dtype=np.int32))
        minus_inf = Tensor(-np.inf, ms.float32)

        def constrained(tokens, positions, memory, memory_mask, cache, beam_indices, bias, eos_blocked):
            cache = model.reorder_cache(cache, beam_indices)
            hidden, cache = model.decode(tokens, positions, memory, memory_mask, cache)  # (rows, 1, d)
            logits = model.logits(hidden).astype(ms.float32).squeeze(1)  # (rows, vocab)
            log_probs = ops.log_softmax(logits, -1) + bias
            eos = ops.logical_and(eos_blocked.expand_dims(1), (vocab_ids == EOS_ID).expand_dims(0))
            return ops.where(eos, minus_inf, log_probs), cache

        if with_banned:
            @ms.jit
            def step(tokens, positions, memory, memory_mask, cache, beam_indices, bias, eos_blocked, index, on):
                log_probs, cache = constrained(tokens, positions, memory, memory_mask, cache, beam_indices, bias,
                                               eos_blocked)
                update = ops.where(on, minus_inf, ops.gather_elements(log_probs, 1, index))
                log_probs = ops.tensor_scatter_elements(log_probs, index, update, axis=1)
                values, ids = ops.topk(log_probs, k)
                return values, ids, cache
        else:
            @ms.jit
            def step(tokens, positions, memory, memory_mask, cache, beam_indices, bias, eos_blocked):
                log_probs, cache = constrained(tokens, positions, memory, memory_mask, cache, beam_indices, bias,
                                               eos_blocked)
                values, ids = ops.topk(log_probs, k)
                return values, ids, cache

        functions[key] = step
    return functions[key]


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
