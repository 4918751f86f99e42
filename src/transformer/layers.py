"""Building blocks: the compute-dtype boundary, Dense, feed-forward and the embedding.

Mixed precision lives here and only here: parameters and the residual stream are fp32; a matmul casts
its two inputs to the compute dtype (fp16 on GPU/Ascend) with :func:`to_compute` and casts its result
back to fp32. Softmax, LayerNorm and the logits therefore stay fp32.
"""

import math

import mindspore as ms
import numpy as np
from mindspore import Tensor, nn, ops

from src.transformer import initializer
from src.transformer.positional import sinusoid_table

ACTIVATIONS = {"relu": ops.relu, "gelu": ops.gelu}
LAYER_NORM_EPSILON = 1e-5


def to_compute(x: Tensor, compute_dtype) -> Tensor:
    """Cast a matmul input to the compute dtype (a no-op for fp32)."""
    return x if compute_dtype == ms.float32 else x.astype(compute_dtype)


# Primitives with the transpose built in. ``ops.matmul`` of a (batch, len, d) input by a 2-D weight
# broadcasts the weight to every batch row (BroadcastTo + BatchMatMul, and a ReduceSum in the backward
# pass), and ``swapaxes`` adds a Transpose; on CPU these took most of a training step.
_MATMUL = ops.MatMul()
_MATMUL_T = ops.MatMul(transpose_b=True)
_BATCH_MATMUL = ops.BatchMatMul()
_BATCH_MATMUL_T = ops.BatchMatMul(transpose_b=True)


def matmul(a: Tensor, b: Tensor, compute_dtype, transpose_b: bool = False) -> Tensor:
    """``a @ b`` (or ``a @ b.T``) computed in ``compute_dtype``, returned in fp32.

    A 2-D ``b`` (a weight) multiplies ``a`` flattened to 2-D; otherwise ``a`` and ``b`` have the same
    batch dimensions (attention).
    """
    a, b = to_compute(a, compute_dtype), to_compute(b, compute_dtype)
    if b.ndim == 2:
        out = (_MATMUL_T if transpose_b else _MATMUL)(a.reshape(-1, a.shape[-1]), b)  # (rows, out)
        out = out.reshape(a.shape[:-1] + (out.shape[-1],))  # (..., out)
    else:
        out = (_BATCH_MATMUL_T if transpose_b else _BATCH_MATMUL)(a, b)
    return out if compute_dtype == ms.float32 else out.astype(ms.float32)


def layer_norm(dim: int) -> nn.LayerNorm:
    # nn.LayerNorm rather than ops.layer_norm, which fails on CPU in MindSpore 2.10
    return nn.LayerNorm((dim,), epsilon=LAYER_NORM_EPSILON)


class Dense(nn.Cell):
    """``y = x @ weight.T + bias`` with fp32 parameters and the matmul in ``compute_dtype``."""

    def __init__(self, in_features: int, out_features: int, rng: np.random.Generator, compute_dtype):
        super().__init__()
        self.compute_dtype = compute_dtype
        self.weight = initializer.parameter(initializer.xavier_uniform(rng, out_features, in_features),
                                            "weight")  # (out, in)
        self.bias = initializer.zeros((out_features,), "bias")

    def construct(self, x, weight_t=None):
        """``weight_t``: this layer's weight already transposed, (in, out) in the compute dtype (a beam
        step's ``step_weight``), or None: the product then needs no transpose, which MindSpore's CPU
        MatMul does faster (the output layer of a beam step: 1.8 against 3.1 ms)."""
        # the bias is added to the 2-D product: its gradient is then a reduction over one axis, which
        # MindSpore's CPU kernels do several times faster than one over (batch, len)
        rows = to_compute(x, self.compute_dtype).reshape(-1, x.shape[-1])  # (batch * len, in)
        if weight_t is None:
            out = _MATMUL_T(rows, to_compute(self.weight, self.compute_dtype))  # (batch * len, out)
        else:
            out = _MATMUL(rows, weight_t)  # (batch * len, out)
        if self.compute_dtype != ms.float32:
            out = out.astype(ms.float32)
        # a beam step's BiasAdd: the same sums, and twice as fast as a broadcasting Add on CPU
        out = out + self.bias if weight_t is None else ops.bias_add(out, self.bias)
        return out.reshape(x.shape[:-1] + (out.shape[-1],))

    def step_weight(self):
        """The weight as a beam step multiplies by it: (in, out), in the compute dtype (a fresh Tensor)."""
        return to_compute(self.weight.T, self.compute_dtype).contiguous()


class FeedForward(nn.Cell):
    """Pre-LN position-wise FFN: ``x + Dropout(W2(Dropout(act(W1(LN(x))))))``."""

    def __init__(self, config, rng: np.random.Generator, compute_dtype):
        super().__init__()
        d, inner = config.hidden_size, config.intermediate_size
        self.norm = layer_norm(d)
        self.fc1 = Dense(d, inner, rng, compute_dtype)
        self.fc2 = Dense(inner, d, rng, compute_dtype)
        self.activation = ACTIVATIONS[config.hidden_act]
        self.inner_dropout = nn.Dropout(p=config.hidden_dropout_prob)
        self.dropout = nn.Dropout(p=config.hidden_dropout_prob)

    def construct(self, x, weights=None):
        """``weights``: None, or ``(fc1, fc2)`` transposed (``Dense.step_weight``)."""
        fc1_t, fc2_t = weights if weights is not None else (None, None)
        h = self.inner_dropout(self.activation(self.fc1(self.norm(x), fc1_t)))
        return x + self.dropout(self.fc2(h, fc2_t))

    def step_weights(self) -> tuple:
        return self.fc1.step_weight(), self.fc2.step_weight()


class Embedding(nn.Cell):
    """Tied token table times ``sqrt(d)`` plus a fixed sinusoid looked up by explicit position ids.

    The same ``table`` (vocab, d) feeds the encoder, the decoder and the output projection.
    """

    def __init__(self, config, rng: np.random.Generator, pad_id: int):
        super().__init__()
        d = config.hidden_size
        self.scale = math.sqrt(d)
        table = initializer.embedding_table(rng, config.vocab_size, d, pad_id=pad_id,
                                            std=config.initializer_range)
        self.table = initializer.parameter(table, "table")  # (vocab, d)
        # a constant, not a Parameter: it is not trained and does not belong in checkpoints
        self.positions = Tensor(sinusoid_table(config.max_position_embeddings, d))  # (max_pos, d)
        self.dropout = nn.Dropout(p=config.hidden_dropout_prob)

    def construct(self, ids, positions):
        tokens = ops.gather(self.table, ids, 0) * self.scale  # (batch, len, d)
        # the sinusoids are constants: stop_gradient spares the backward pass a reduction of their
        # (never used) gradient over the batch, which the encoder's (1, len) positions would need
        return self.dropout(tokens + ops.stop_gradient(ops.gather(self.positions, positions, 0)))
