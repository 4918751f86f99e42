"""The MASS encoder-decoder Transformer, one Cell for training and inference.

Pre-LN blocks (the LayerNorm normalises the whole residual input, keys and values included, unlike
ModelZoo, which normalised only the query path), a final LayerNorm after each stack, a tied embedding
table (no output bias), fixed sinusoid positions looked up by explicit ids, separate encoder and
decoder depths.

Training::

    logits = model(src_ids, dec_in_ids, dec_positions)            # (batch, tgt_len, vocab) fp32

Beam search (the production path, src/transformer/generator.py): ``cross_cache`` once per example, then
one ``beam_step`` per token over a pointer cache that is never reordered (``join_window``,
``shift_window``, ``beam_window``, ``step_weights``, ``memory_bias``; see ``beam_step``).

The classic key/value cache (``init_cache``, ``decode(..., cache)``, ``reorder_cache``,
``DecoderLayer.step``, ``SelfAttention.step``) is the **reference** path only: src/transformer/
reference_decoding.py and the tests check the production path against it, and it against a full
recomputation of every prefix; nothing in production decodes with it::

    memory, src_mask = model.encode(src_ids)
    memory_mask = model.memory_mask(src_ids)
    cache = model.init_cache(memory, max_len)
    for t in range(max_len):
        hidden, cache = model.decode(tokens[:, t:t + 1], positions[:, t:t + 1], memory, memory_mask, cache)
        log_probs = ops.log_softmax(model.logits(hidden), -1)

Under ``ms.jit`` pass the cache as ``ms.mutable(cache)``: a plain tuple of Tensors is taken as a
constant and would recompile the step every time its values change.

Reference cache layout (a flat tuple, so it crosses a jit boundary)::

    cache[0]            length: int32 scalar Tensor, decoder positions already written
    cache[1 + 4*i + 0]  layer i self-attention keys    (batch, heads, max_len, head_dim)
    cache[1 + 4*i + 1]  layer i self-attention values  (batch, heads, max_len, head_dim)
    cache[1 + 4*i + 2]  layer i cross-attention keys   (batch, heads, src_len, head_dim)
    cache[1 + 4*i + 3]  layer i cross-attention values (batch, heads, src_len, head_dim)

Beam search (``src.transformer.generator``) decodes with ``beam_step`` instead: a cache that is never
reordered, in ``cross_cache`` (the cross-attention part), an old part and a recent window
(``beam_window``); see ``SelfAttention.beam_step``.
"""

from typing import NamedTuple

import mindspore as ms
import numpy as np
from mindspore import Tensor, nn, ops

from config.config import resolve_compute_type
from src.text.dictionary import MASK_ID, PAD_ID
from src.transformer.attention import (
    CrossAttention,
    SelfAttention,
    SelfAttentionView,
    causal_mask,
    drop_slot_positions,
    join_slots,
    score_bias,
)
from src.transformer.layers import Embedding, FeedForward, layer_norm, matmul, to_compute

CACHE_TENSORS_PER_LAYER = 4
STEP_WEIGHTS_PER_LAYER = 6  # DecoderLayer.step_weights: self qkv and out, cross q and out, fc1, fc2
DTYPES = {"float32": ms.float32, "float16": ms.float16}


class CacheView(NamedTuple):
    """What one ``MassTransformer.beam_step`` reads and writes of a pointer cache
    (``decode_cache.PointerCache``, ``StreamCache``): ``old`` per layer (keys, values) of the past windows,
    flattened (None before there is an old part), ``recent`` the current window likewise, ``cross`` the
    examples' cross-attention keys and values (``cross_cache``), ``at`` the window position this step
    writes (int32 scalar Tensor), ``ancestors_old`` (rows, P) (None with ``old``) and ``ancestors_recent``
    (rows, W) int32: for each hypothesis and position, the slot holding its key, -1 where it has none yet.
    A jit graph takes it flat (``*view``) and passes its fields on as a plain tuple in this order
    (``beam_step`` reads them by position: a NamedTuple built inside a graph loses its tensors' shapes,
    MindSpore 2.10)."""

    old: object
    recent: object
    cross: object
    at: Tensor
    ancestors_old: object
    ancestors_recent: Tensor


class EncoderLayer(nn.Cell):
    def __init__(self, config, rng, compute_dtype):
        super().__init__()
        self.norm = layer_norm(config.hidden_size)
        self.attention = SelfAttention(config, rng, compute_dtype)
        self.dropout = nn.Dropout(p=config.hidden_dropout_prob)
        self.ffn = FeedForward(config, rng, compute_dtype)

    def construct(self, x, allowed):
        x = x + self.dropout(self.attention(self.norm(x), allowed))
        return self.ffn(x)


class DecoderLayer(nn.Cell):
    def __init__(self, config, rng, compute_dtype):
        super().__init__()
        d = config.hidden_size
        self.self_norm = layer_norm(d)
        self.self_attention = SelfAttention(config, rng, compute_dtype)
        self.cross_norm = layer_norm(d)
        self.cross_attention = CrossAttention(config, rng, compute_dtype)
        self.dropout = nn.Dropout(p=config.hidden_dropout_prob)
        self.ffn = FeedForward(config, rng, compute_dtype)

    def construct(self, x, memory, memory_allowed):
        """Full (teacher-forced) pass over x: (batch, tgt_len, d)."""
        causal = causal_mask(x.shape[1], x.shape[1], 0)  # (tgt_len, tgt_len)
        x = x + self.dropout(self.self_attention(self.self_norm(x), causal))
        k, v = self.cross_attention.memory_kv(memory)
        return self._cross_and_ffn(x, k, v, memory_allowed)

    def step(self, x, memory_allowed, layer_cache, length):
        """Reference path only (see the module docstring): cached pass over new positions x: (batch, n, d);
        returns (x, new layer_cache)."""
        self_k, self_v, cross_k, cross_v = layer_cache
        attended, self_k, self_v = self.self_attention.step(self.self_norm(x), self_k, self_v, length)
        x = x + self.dropout(attended)
        return self._cross_and_ffn(x, cross_k, cross_v, memory_allowed), (self_k, self_v, cross_k, cross_v)

    def beam_step(self, x, memory_bias, beam, view: SelfAttentionView, cross, weights, kernels=None):
        """A beam-search step over a pointer cache: ``view`` is this layer's ``SelfAttentionView``, cross its
        cross-attention (keys, values); weights: ``step_weights()``; kernels: ``cpu_kernels.step_kernels()``
        (self- and cross-attention fused) or None; returns (x, new recent (keys, values))."""
        attended, recent_k, recent_v = self.self_attention.beam_step(
            self.self_norm(x), beam, view, weights[0:2], None if kernels is None else kernels[0])
        x = x + self.dropout(attended)
        attended = self.cross_attention.beam_step(self.cross_norm(x), beam, cross[0], cross[1], memory_bias,
                                                  weights[2:4], None if kernels is None else kernels[1])
        x = x + self.dropout(attended)
        return self.ffn(x, weights[4:6]), (recent_k, recent_v)

    def step_weights(self) -> tuple:
        """The six matmul weights of ``beam_step``, transposed (``Dense.step_weight``)."""
        return (self.self_attention.step_weights() + self.cross_attention.step_weights()
                + self.ffn.step_weights())

    def _cross_and_ffn(self, x, k, v, memory_allowed):
        x = x + self.dropout(self.cross_attention(self.cross_norm(x), k, v, memory_allowed))
        return self.ffn(x)


class MassTransformer(nn.Cell):
    """Encoder-decoder built from a ``ModelConfig``; ``compute_dtype`` overrides ``compute_type``.

    ``compute_type="auto"`` resolves against ``mindspore.get_context("device_target")`` once, here.
    """

    def __init__(self, model_config, compute_dtype=None):
        super().__init__()
        if model_config.vocab_size is None:
            raise ValueError("model_config.vocab_size is null: set it to the dictionary size first")
        self.config = model_config
        self.compute_dtype = _resolve_dtype(model_config, compute_dtype)
        self.hide_masked_source = model_config.hide_masked_source_from_decoder
        rng = np.random.default_rng(model_config.random_seed)
        self.embedding = Embedding(model_config, rng, PAD_ID)
        dtype = self.compute_dtype
        self.encoder_layers = nn.CellList(
            [EncoderLayer(model_config, rng, dtype) for _ in range(model_config.num_hidden_layers)])
        self.encoder_norm = layer_norm(model_config.hidden_size)
        self.decoder_layers = nn.CellList(
            [DecoderLayer(model_config, rng, dtype) for _ in range(model_config.num_decoder_layers)])
        self.decoder_norm = layer_norm(model_config.hidden_size)

    def construct(self, src_ids, dec_in_ids, dec_positions):
        """Teacher-forced logits (batch, tgt_len, vocab) fp32 for training and scoring."""
        memory, _ = self.encode(src_ids)
        hidden, _ = self.decode(dec_in_ids, dec_positions, memory, self.memory_mask(src_ids))
        return self.logits(hidden)

    def encode(self, src_ids):
        """src_ids: (batch, src_len) int32 -> (memory (batch, src_len, d), src_mask (batch, src_len) bool).

        ``src_mask`` is True at real tokens; encoder positions are 0 .. src_len - 1.
        """
        src_mask = src_ids != PAD_ID  # (batch, src_len)
        positions = ops.arange(src_ids.shape[1]).reshape(1, -1)  # (1, src_len), broadcast over batch
        x = self.embedding(src_ids, positions)  # (batch, src_len, d)
        allowed = src_mask.reshape(src_ids.shape[0], 1, 1, src_ids.shape[1])  # (batch, 1, 1, src_len)
        for layer in self.encoder_layers:
            x = layer(x, allowed)
        return self.encoder_norm(x), src_mask

    def memory_mask(self, src_ids):
        """(batch, src_len) bool: the source positions the decoder may attend to."""
        allowed = src_ids != PAD_ID
        if self.hide_masked_source:
            allowed = ops.logical_and(allowed, src_ids != MASK_ID)
        return allowed

    def decode(self, dec_in_ids, dec_positions, memory, memory_mask, cache=None):
        """Decoder hidden states (batch, n, d) fp32 after the final LayerNorm, and the new cache.

        dec_in_ids, dec_positions: (batch, n) int32, positions absolute (MASS decodes only the masked
        fragment at its own positions); memory: (batch, src_len, d); memory_mask: (batch, src_len)
        bool or int, nonzero where the decoder may attend. Without a cache, the n positions attend
        causally to each other and the returned cache is None. With a cache from ``init_cache`` (or a
        previous step), they also attend to the cached prefix and ``memory`` is not read again.
        """
        x = self.embedding(dec_in_ids, dec_positions)  # (batch, n, d)
        allowed = memory_mask.astype(ms.bool_).reshape(memory_mask.shape[0], 1, 1, memory_mask.shape[1])
        if cache is None:
            for layer in self.decoder_layers:
                x = layer(x, memory, allowed)
            return self.decoder_norm(x), None
        length = cache[0]
        new_cache = (length + dec_in_ids.shape[1],)
        for i in range(len(self.decoder_layers)):
            first = 1 + CACHE_TENSORS_PER_LAYER * i
            x, layer_cache = self.decoder_layers[i].step(
                x, allowed, cache[first:first + CACHE_TENSORS_PER_LAYER], length)
            new_cache = new_cache + layer_cache
        return self.decoder_norm(x), new_cache

    def init_cache(self, memory, max_len: int):
        """Reference path only: an empty cache for up to ``max_len`` decoder positions, with the
        cross-attention keys and values of ``memory`` (batch, src_len, d) computed once. Layout: see the
        module docstring."""
        config = self.config
        heads = config.num_attention_heads
        shape = (memory.shape[0], heads, max_len, config.hidden_size // heads)
        cross, cache = self.cross_cache(memory), (Tensor(0, ms.int32),)
        for i in range(len(self.decoder_layers)):
            cache = cache + (ops.zeros(shape, ms.float32), ops.zeros(shape, ms.float32), cross[2 * i], cross[2 * i + 1])
        return cache

    def cross_cache(self, memory, keys_transposed: bool = False):
        """``(k_0, v_0, k_1, v_1, ...)``: every decoder layer's cross-attention keys and values of
        ``memory`` (batch, src_len, d), each (batch, heads, src_len, head_dim), the keys (batch, heads,
        head_dim, src_len) when ``keys_transposed`` (``beam_step``): the part of a cache that decoding
        never changes."""
        fixed = ()
        for layer in self.decoder_layers:
            k, v = layer.cross_attention.memory_kv(memory, keys_transposed)
            fixed = fixed + (k.contiguous(), v.contiguous())  # a strided view passed to a jit step is copied per call
        return fixed

    def beam_window(self, batch: int, beam: int, width: int):
        """An empty recent window of a pointer cache (``SelfAttention.beam_step``): per decoder layer
        keys and values, each zeros (batch, heads, beam * width, head_dim), slot-major."""
        heads = self.config.num_attention_heads
        shape = (batch, heads, beam * width, self.config.hidden_size // heads)
        return tuple(ops.zeros(shape, ms.float32) for _ in range(2 * len(self.decoder_layers)))

    @staticmethod
    def join_window(old, recent, beam: int) -> tuple:
        """The old part of a pointer cache once the full window ``recent`` has joined ``old`` (None before
        the first window), slot by slot: per layer the keys transposed, (batch, heads, head_dim, beam * P),
        and the values (batch, heads, beam * P, head_dim) (``SelfAttention.beam_step``); fresh Tensors."""
        joined = ()
        for i in range(0, len(recent), 2):
            keys, values = recent[i].transpose(0, 1, 3, 2), recent[i + 1]
            if old is not None:
                keys, values = join_slots(old[i], keys, beam, 3), join_slots(old[i + 1], values, beam, 2)
            else:  # a copy: the fused CPU attention rewrites the window in place, and contiguous() may alias it
                values = values.copy()
            joined = joined + (keys.contiguous(), values.contiguous())  # a strided input is copied every call
        return joined

    @staticmethod
    def shift_window(old, recent, beam: int) -> tuple:
        """``join_window(old, recent, beam)`` without each slot's oldest ``W`` positions (``W`` the width of
        ``recent``): an old part of fixed length, in time order (``generate_stream``); fresh Tensors."""
        width = recent[1].shape[2] // beam
        kept = None  # a window as long as the old part replaces it
        if old[1].shape[2] > recent[1].shape[2]:
            kept = tuple(drop_slot_positions(part, beam, 3 if i % 2 == 0 else 2, width) for i, part in enumerate(old))
        return MassTransformer.join_window(kept, recent, beam)

    def memory_bias(self, memory_mask, beam: int):
        """``memory_mask`` (batch, src_len) as ``beam_step`` takes it: the ``score_bias`` (batch, heads, beam,
        src_len) of every decoder layer's cross-attention, made once per search."""
        batch, src_len = memory_mask.shape
        allowed = memory_mask.astype(ms.bool_).reshape(batch, 1, 1, src_len)
        return score_bias(allowed, (batch, self.config.num_attention_heads, beam, src_len))

    def beam_step(self, dec_in_ids, dec_positions, memory_bias, beam: int, view: CacheView, weights,
                  kernels=None):
        """One beam-search step of ``rows = batch * beam`` hypotheses over a pointer cache (see
        ``attention``): decoder hidden states (rows, 1, d) after the final LayerNorm, and the new recent
        window.

        memory_bias: ``memory_bias(memory_mask, beam)``, per example; view: the step's ``CacheView`` (old
        and recent as ``beam_window`` makes them; cross: ``cross_cache(memory, keys_transposed=True)`` of the
        examples' memory, batch rows, not hypotheses: an example's beams share it, see
        ``CrossAttention.beam_step``); weights: ``step_weights()`` (the decoder layers' part; the output
        table is for ``step_logits``); kernels: ``cpu_kernels.step_kernels()`` (each attention fused in one
        op, reading the ancestors) or None (MindSpore ops, reading score biases made of them here, once
        for every layer).
        """
        x = self.embedding(dec_in_ids, dec_positions)  # (rows, 1, d)
        heads = self.config.num_attention_heads
        old, recent, cross, at, ancestors_old, ancestors_recent = view  # by position: a jit graph reads no fields
        if kernels is None:  # the MindSpore ops read score biases
            bias_old = _slot_bias(ancestors_old, beam, heads) if old is not None else None
            bias_recent = _slot_bias(ancestors_recent, beam, heads)
        else:  # the fused attention reads the ancestors themselves
            bias_old, bias_recent = None, None
        new_recent, n = (), STEP_WEIGHTS_PER_LAYER
        for i, layer in enumerate(self.decoder_layers):
            old_k, old_v = (old[2 * i], old[2 * i + 1]) if old is not None else (None, None)
            # a SelfAttentionView's fields as a plain tuple (a NamedTuple made inside a jit graph loses its
            # tensors' shapes and types: MindSpore 2.10)
            layer_view = (old_k, old_v, recent[2 * i], recent[2 * i + 1], at, ancestors_old, ancestors_recent,
                          bias_old, bias_recent)
            x, pair = layer.beam_step(x, memory_bias, beam, layer_view, cross[2 * i:2 * i + 2],
                                      weights[n * i:n * (i + 1)], kernels)
            new_recent = new_recent + pair
        return self.decoder_norm(x), new_recent

    @staticmethod
    def reorder_cache(cache, indices):
        """Reference path only: select batch rows of every cache tensor (``indices`` (batch,) into axis 0)."""
        return (cache[0],) + tuple(ops.gather(t, indices, 0) for t in cache[1:])

    def logits(self, hidden, table_t=None):
        """hidden (batch, n, d) -> logits (batch, n, vocab) fp32 through the tied embedding (no bias);
        ``table_t``: that table transposed, (d, vocab) in the compute dtype (the last of ``step_weights``),
        or None."""
        if table_t is None:
            return matmul(hidden, self.embedding.table, self.compute_dtype, transpose_b=True)
        return matmul(hidden, table_t, self.compute_dtype)

    def step_logits(self, hidden, weights):
        """``logits`` for ``beam_step``'s hidden states, with the output table of ``step_weights``."""
        # a positive index: under ms.jit, weights[-1] of a mutable tuple read another tensor's data
        # (MindSpore 2.10, CPU)
        return self.logits(hidden, weights[STEP_WEIGHTS_PER_LAYER * len(self.decoder_layers)])

    def step_weights(self) -> tuple:
        """What a beam step multiplies by, each transposed to (in, out) in the compute dtype, fresh Tensors:
        every decoder layer's ``STEP_WEIGHTS_PER_LAYER`` weights, then the output table (d, vocab).
        MindSpore's CPU MatMul is faster without a transpose; the weights are transposed once per search."""
        weights = ()
        for layer in self.decoder_layers:
            weights = weights + layer.step_weights()
        return weights + (to_compute(self.embedding.table.T, self.compute_dtype).contiguous(),)


def _slot_bias(ancestors, beam: int, heads: int):
    """ancestors (rows, L) int32 -> (batch, heads, beam, beam * L) ``score_bias``: hypothesis q may attend
    to the key of slot s at position j (flattened ``s * L + j``) when its ancestor there is s."""
    rows, length = ancestors.shape
    slots = ops.arange(beam, dtype=ms.int32).reshape(1, 1, beam, 1)
    same = ancestors.reshape(rows // beam, beam, 1, length) == slots  # (batch, q, s, L)
    return score_bias(same.reshape(rows // beam, 1, beam, beam * length), (rows // beam, heads, beam, beam * length))


def _resolve_dtype(model_config, compute_dtype):
    if compute_dtype is not None:
        return DTYPES[compute_dtype] if isinstance(compute_dtype, str) else compute_dtype
    name = resolve_compute_type(model_config.compute_type, ms.get_context("device_target"))
    return DTYPES[name]


def count_parameters(model: nn.Cell, trainable_only: bool = True) -> int:
    """Number of scalar parameters of ``model`` (each tied tensor counted once)."""
    params = model.trainable_params() if trainable_only else model.get_parameters()
    return int(sum(np.prod(p.shape) for p in params))
