"""Multi-head attention: scaled dot product, self-attention (fused QKV) and cross-attention (fused KV).

Masks are boolean "may attend" tensors that broadcast to ``(batch, heads, q_len, k_len)``; True keeps a
key. Scores and softmax are fp32 whatever the compute dtype.

Incremental decoding keeps the self-attention keys and values of one layer in two preallocated
``(batch, heads, max_len, head_dim)`` tensors. A step writes its new keys/values at rows
``length .. length + q_len - 1`` and attends to rows ``<= length + i``; rows not yet written are
masked, so the result equals attention over the full prefix. Shapes never change between steps, so a
jit-compiled step is compiled once.

Beam search uses a cache that is never reordered (``SelfAttention.beam_step``): every hypothesis row
writes its step's key/value into its own slot, and a hypothesis attends, at each past position, to the
slot of the ancestor that wrote it (``ancestors``). The keys of positions ``< P`` lie in an "old" part
that a step only reads, those from ``P`` on in a small "recent" window that it writes: a step copies
neither the old part (no reorder, no rewrite) nor more than the window.
"""

import math
from typing import NamedTuple

import mindspore as ms
from mindspore import Tensor, nn, ops

from src.transformer.layers import Dense, matmul

NEG_INF = -1e9  # added to blocked scores; finite so that a row with every key blocked stays NaN-free


class SelfAttentionView(NamedTuple):
    """What one layer's ``SelfAttention.beam_step`` reads and writes of a pointer cache (shapes there):
    ``old_k``, ``old_v`` the past windows (None before there is an old part), ``recent_k``, ``recent_v``
    the current window, ``at`` the window position this step writes (int32 scalar Tensor), ``ancestors_old``
    (rows, P) and ``ancestors_recent`` (rows, W) int32, the slot holding each hypothesis's key at each
    position (-1: none yet), which the fused CPU attention reads, and ``bias_old``, ``bias_recent`` the
    ``score_bias`` made of them, which the MindSpore ops read (None with the fused attention: made once
    per step for every layer, ``MassTransformer.beam_step``). Inside a jit graph the same fields come as a
    plain tuple in this order (``beam_step`` reads them by position; see ``transformer.CacheView``)."""

    old_k: object
    old_v: object
    recent_k: Tensor
    recent_v: Tensor
    at: Tensor
    ancestors_old: object
    ancestors_recent: Tensor
    bias_old: object
    bias_recent: object


def split_heads(x: Tensor, heads: int) -> Tensor:
    batch, length, dim = x.shape
    x = x.reshape(batch, length, heads, dim // heads)  # (batch, len, heads, head_dim)
    return x.transpose(0, 2, 1, 3)  # (batch, heads, len, head_dim)


def merge_heads(x: Tensor) -> Tensor:
    batch, heads, length, head_dim = x.shape
    x = x.transpose(0, 2, 1, 3)  # (batch, len, heads, head_dim)
    return x.reshape(batch, length, heads * head_dim)  # (batch, len, d)


def causal_mask(q_len: int, k_len: int, offset) -> Tensor:
    """``(q_len, k_len)`` bool: query ``i`` (absolute index ``offset + i``) may see keys ``<= offset + i``.

    >>> causal_mask(2, 4, 1).asnumpy().astype(int)   # doctest: +SKIP
    array([[1, 1, 0, 0],
           [1, 1, 1, 0]])
    """
    query_index = ops.arange(q_len).reshape(q_len, 1) + offset  # (q_len, 1)
    key_index = ops.arange(k_len).reshape(1, k_len)  # (1, k_len)
    return key_index <= query_index


def write_rows(cache: Tensor, new: Tensor, start) -> Tensor:
    """Return ``cache`` with rows ``start .. start + n - 1`` of axis 2 replaced by ``new``.

    cache: (batch, heads, max_len, head_dim); new: (batch, heads, n, head_dim); ``start`` may be a
    Tensor. Done with a scatter (one new row) or a one-hot product (exact: each output row is a copy or
    the old row) because both keep static shapes under jit.
    """
    n, max_len = new.shape[2], cache.shape[2]
    if n == 1:  # one decoding step: a scatter of the (batch, heads) new rows, no pass over the cache
        batch, heads, _, head_dim = cache.shape
        at = ops.broadcast_to(ops.reshape(ops.cast(start, ms.int32), (1, 1, 1)), (batch, heads, 1))
        rows = ops.broadcast_to(ops.arange(batch, dtype=ms.int32).reshape(batch, 1, 1), (batch, heads, 1))
        cols = ops.broadcast_to(ops.arange(heads, dtype=ms.int32).reshape(1, heads, 1), (batch, heads, 1))
        index = ops.concat([rows, cols, at], 2)  # (batch, heads, 3): where each new row goes
        return ops.tensor_scatter_update(cache, index, new.reshape(batch, heads, head_dim))
    targets = ops.arange(n).reshape(n, 1) + start  # (n, 1)
    onehot = (ops.arange(max_len).reshape(1, max_len) == targets).astype(cache.dtype)  # (n, max_len)
    keep = (1.0 - onehot.sum(0)).reshape(max_len, 1)  # (max_len, 1)
    return cache * keep + ops.matmul(onehot.T, new)  # (batch, heads, max_len, head_dim)


def block_scores(scores: Tensor, allowed) -> Tensor:
    """``scores`` with ``NEG_INF`` wherever ``allowed`` (broadcast to them) is False."""
    return ops.where(allowed, scores, ops.full_like(scores, NEG_INF))


def score_bias(allowed, shape) -> Tensor:
    """float32 ``shape``: 0 where ``allowed`` (broadcast to it) is True, ``NEG_INF`` elsewhere. Added to
    scores it blocks what ``block_scores`` blocks, with the same softmax (a blocked score becomes
    ``NEG_INF`` up to rounding, whose exponential is 0); a beam step makes it once for every layer and head
    (a broadcasting Select in each layer cost more than an Add of equal shapes)."""
    return ops.where(allowed, ops.zeros(shape, ms.float32), ops.full(shape, NEG_INF, dtype=ms.float32))


class ScaledDotProduct(nn.Cell):
    def __init__(self, head_dim: int, dropout_prob: float, compute_dtype):
        super().__init__()
        self.scale = 1.0 / math.sqrt(head_dim)
        self.dropout = nn.Dropout(p=dropout_prob)
        self.compute_dtype = compute_dtype

    def construct(self, q, k, v, allowed):
        """q: (batch, heads, q_len, head_dim); k, v: (batch, heads, k_len, head_dim)."""
        scores = matmul(q * self.scale, k, self.compute_dtype, transpose_b=True)  # (b, h, q_len, k_len)
        scores = block_scores(scores, allowed)
        probs = self.dropout(ops.softmax(scores.astype(ms.float32), axis=-1))
        return matmul(probs, v, self.compute_dtype)  # (batch, heads, q_len, head_dim)

    def biased(self, q, k_t, v, bias):
        """The attention of a beam step (no dropout): keys transposed, k_t (batch, heads, head_dim, k_len),
        and ``bias`` (``score_bias``, the full (batch, heads, q_len, k_len)) added to the scores."""
        scores = matmul(q * self.scale, k_t, self.compute_dtype) + bias  # (batch, heads, q_len, k_len)
        return matmul(ops.softmax(scores.astype(ms.float32), axis=-1), v, self.compute_dtype)


class SelfAttention(nn.Cell):
    """Multi-head self-attention with one fused QKV projection; the residual is added by the caller."""

    def __init__(self, config, rng, compute_dtype):
        super().__init__()
        d = config.hidden_size
        self.heads = config.num_attention_heads
        self.qkv = Dense(d, 3 * d, rng, compute_dtype)
        self.out = Dense(d, d, rng, compute_dtype)
        self.attend = ScaledDotProduct(d // self.heads, config.attention_dropout_prob, compute_dtype)

    def project(self, x):
        q, k, v = ops.split(self.qkv(x), x.shape[-1], axis=-1)  # 3 x (batch, len, d)
        return split_heads(q, self.heads), split_heads(k, self.heads), split_heads(v, self.heads)

    def construct(self, x, allowed):
        q, k, v = self.project(x)
        return self.out(merge_heads(self.attend(q, k, v, allowed)))

    def step(self, x, cache_k, cache_v, length):
        """Reference path only (src/transformer/reference_decoding.py; production decodes with ``beam_step``):
        attend from new positions ``x`` (batch, n, d) to the cached prefix plus themselves.

        Returns ``(output, cache_k, cache_v)`` with the new keys/values written at ``length``.
        """
        q, k, v = self.project(x)
        cache_k = write_rows(cache_k, k, length)
        cache_v = write_rows(cache_v, v, length)
        allowed = causal_mask(x.shape[1], cache_k.shape[2], length)  # (n, max_len)
        return self.out(merge_heads(self.attend(q, cache_k, cache_v, allowed))), cache_k, cache_v

    def beam_step(self, x, beam: int, view: SelfAttentionView, weights, kernel=None):
        """One decoding step of ``rows = batch * beam`` hypotheses (``row = example * beam + slot``) over
        a pointer cache (module docstring); x: (rows, 1, d); ``view``: this layer's ``SelfAttentionView``.

        view.old_v: (batch, heads, beam * P, head_dim), slot-major (value of slot s at position j at
        ``s * P + j``), view.old_k the keys likewise but transposed, (batch, heads, head_dim, beam * P)
        (the score product then needs no transpose, which MindSpore's CPU BatchMatMul does faster), or both
        None (no old part yet); recent_k, recent_v: (batch, heads, beam * W, head_dim) like old_v, this
        step's key/value written at window position ``at`` (the keys not transposed: a scatter of columns
        cost more than the transposed product saves on a window). With MindSpore ops the hypothesis in slot
        q attends to key (slot s, position j), flattened ``s * length + j``, as ``bias_old`` (batch, heads,
        beam, beam * P) and ``bias_recent`` (batch, heads, beam, beam * W) say; with ``kernel``
        (``cpu_kernels.step_kernels``: the attention in one op, which writes this step's key/value into
        ``recent_k``/``recent_v`` in place and returns them as they came) as the ancestors say;
        weights: ``step_weights()``. Returns ``(output (rows, 1, d), recent_k, recent_v)``.
        """
        rows, _, d = x.shape
        qkv_t, out_t = weights
        qkv = self.qkv(x, qkv_t)  # (rows, 1, 3 d)
        # by position: a jit graph reads no fields
        old_k, old_v, recent_k, recent_v, at, ancestors_old, ancestors_recent, bias_old, bias_recent = view
        if kernel is not None:  # writes k, v into the window in place, then attends: (rows, 1, d)
            scale = Tensor(self.attend.scale, ms.float32)
            out = (kernel(qkv, at, scale, recent_k, recent_v, ancestors_recent) if old_k is None
                   else kernel(qkv, at, scale, old_k, old_v, recent_k, recent_v, ancestors_old, ancestors_recent))
            return self.out(out, out_t), recent_k, recent_v
        # q, k and v slot-major with one transpose: (rows, 1, 3 d) -> (3, batch, heads, beam, head_dim)
        qkv = qkv.reshape(rows // beam, beam, 3, self.heads, d // self.heads).transpose(2, 0, 3, 1, 4)
        q, k, v = ops.unstack(qkv, 0)  # 3 x (batch, heads, beam, head_dim)
        q = q * self.attend.scale
        recent_k = write_slots(recent_k, k, at)
        recent_v = write_slots(recent_v, v, at)
        dtype = self.attend.compute_dtype
        scores = matmul(q, recent_k, dtype, transpose_b=True)  # (batch, heads, beam, beam * W)
        scores = scores + bias_recent
        if old_k is None:
            probs = ops.softmax(scores.astype(ms.float32), axis=-1)
            out = matmul(probs, recent_v, dtype)  # (batch, heads, beam, head_dim)
        else:
            old_scores = matmul(q, old_k, dtype)  # (batch, heads, beam, beam * P)
            old_scores = old_scores + bias_old
            probs = ops.softmax(ops.concat([old_scores, scores], -1).astype(ms.float32), axis=-1)
            old_probs, recent_probs = ops.split(probs, [old_scores.shape[-1], scores.shape[-1]], -1)
            out = matmul(old_probs, old_v, dtype) + matmul(recent_probs, recent_v, dtype)
        return self.out(from_slot_major(out), out_t), recent_k, recent_v

    def step_weights(self) -> tuple:
        """The projections' weights as ``beam_step`` multiplies by them (``Dense.step_weight``)."""
        return self.qkv.step_weight(), self.out.step_weight()


def slot_major(t: Tensor, beam: int, heads: int) -> Tensor:
    """(rows, 1, d) with ``row = example * beam + slot`` -> (batch, heads, beam, head_dim)."""
    rows, _, d = t.shape
    return t.reshape(rows // beam, beam, heads, d // heads).transpose(0, 2, 1, 3)


def from_slot_major(t: Tensor) -> Tensor:
    """The inverse of ``slot_major``: (batch, heads, beam, head_dim) -> (rows, 1, d), heads merged."""
    batch, heads, beam, head_dim = t.shape
    return t.transpose(0, 2, 1, 3).reshape(batch * beam, 1, heads * head_dim)


def write_slots(window: Tensor, new: Tensor, at) -> Tensor:
    """``window`` (batch, heads, beam * W, head_dim), key (slot s, position j) at ``s * W + j``, with
    position ``at`` (a scalar Tensor) of every slot replaced by ``new`` (batch, heads, beam, head_dim):
    one scatter."""
    batch, heads, beam, head_dim = new.shape
    width = window.shape[2] // beam
    shape = (batch, heads, beam, 1)
    index = ops.concat([
        ops.broadcast_to(ops.arange(batch, dtype=ms.int32).reshape(batch, 1, 1, 1), shape),
        ops.broadcast_to(ops.arange(heads, dtype=ms.int32).reshape(1, heads, 1, 1), shape),
        ops.broadcast_to(ops.arange(beam, dtype=ms.int32).reshape(1, 1, beam, 1) * width
                         + ops.reshape(ops.cast(at, ms.int32), (1, 1, 1, 1)), shape)], 3)  # (b, h, beam, 3)
    return ops.tensor_scatter_update(window, index, new)


def join_slots(old: Tensor, new: Tensor, beam: int, axis: int) -> Tensor:
    """Two pointer-cache parts, slot-major along ``axis`` (``beam * length`` positions), as one: each
    slot's positions of ``old``, then its positions of ``new``."""
    head, tail = old.shape[:axis], old.shape[axis + 1:]
    by_slot = (old.reshape(head + (beam, -1) + tail), new.reshape(head + (beam, -1) + tail))
    return ops.concat(by_slot, axis + 1).reshape(head + (-1,) + tail)


def drop_slot_positions(part: Tensor, beam: int, axis: int, count: int) -> Tensor:
    """A pointer-cache part, slot-major along ``axis``, without each slot's first ``count`` positions."""
    head, tail = part.shape[:axis], part.shape[axis + 1:]
    by_slot = part.reshape(head + (beam, -1) + tail)
    length = by_slot.shape[axis + 1]
    return ops.narrow(by_slot, axis + 1, count, length - count).reshape(head + (-1,) + tail)


class CrossAttention(nn.Cell):
    """Decoder-to-encoder attention: Q from the decoder, fused K/V from the encoder memory."""

    def __init__(self, config, rng, compute_dtype):
        super().__init__()
        d = config.hidden_size
        self.heads = config.num_attention_heads
        self.q = Dense(d, d, rng, compute_dtype)
        self.kv = Dense(d, 2 * d, rng, compute_dtype)
        self.out = Dense(d, d, rng, compute_dtype)
        self.attend = ScaledDotProduct(d // self.heads, config.attention_dropout_prob, compute_dtype)

    def memory_kv(self, memory, keys_transposed: bool = False):
        """Keys and values of the memory, each (batch, heads, src_len, head_dim), the keys (batch, heads,
        head_dim, src_len) when ``keys_transposed`` (for ``beam_step``); cached for decoding."""
        k, v = ops.split(self.kv(memory), memory.shape[-1], axis=-1)  # 2 x (batch, src_len, d)
        k = split_heads(k, self.heads)
        return k.transpose(0, 1, 3, 2) if keys_transposed else k, split_heads(v, self.heads)

    def construct(self, x, k, v, allowed):
        q = split_heads(self.q(x), self.heads)  # (batch, heads, tgt_len, head_dim)
        return self.out(merge_heads(self.attend(q, k, v, allowed)))

    def beam_step(self, x, beam: int, k, v, bias, weights, kernel=None):
        """One decoding step of ``rows = batch * beam`` hypotheses (``row = example * beam + slot``),
        x: (rows, 1, d), against their example's memory keys and values (``memory_kv(memory, True)``: k
        (batch, heads, head_dim, src_len), v (batch, heads, src_len, head_dim)), never repeated per beam:
        an example's beams are the query rows of one product.
        bias: ``score_bias`` of the memory mask, (batch, heads, beam, src_len); weights: ``step_weights()``;
        kernel: the fused CPU attention (``cpu_kernels.step_kernels``) or None (MindSpore ops).
        Returns (rows, 1, d)."""
        q_t, out_t = weights
        if kernel is not None:  # the attention in one op, on rows with the heads side by side
            return self.out(kernel(self.q(x, q_t), k, v, bias, Tensor(self.attend.scale, ms.float32)), out_t)
        q = slot_major(self.q(x, q_t), beam, self.heads)  # (batch, heads, beam, head_dim)
        out = self.attend.biased(q, k, v, bias)  # (batch, heads, beam, head_dim)
        return self.out(from_slot_major(out), out_t)

    def step_weights(self) -> tuple:
        """The query and output projections' weights as ``beam_step`` multiplies by them."""
        return self.q.step_weight(), self.out.step_weight()
