"""Parameter initialisation for the Transformer, in one place.

Values are drawn with NumPy from an explicit ``numpy.random.Generator`` (seeded from
``model_config.random_seed``), so building the same model twice gives the same parameters whatever the
global MindSpore seed is. Parameters are fp32.

- Dense weights: Xavier-uniform, ``U(-a, a)`` with ``a = sqrt(6 / (fan_in + fan_out))``; biases 0.
- Embedding table: ``N(0, std)`` with ``std = d_model ** -0.5`` by default, and the ``<pad>`` row 0
  (ModelZoo re-initialised the embedding with Glorot-uniform at train start and lost the zero row).
- LayerNorm: gamma 1, beta 0 (MindSpore's own defaults).
"""

import numpy as np
from mindspore import Parameter, Tensor


def xavier_uniform(rng: np.random.Generator, out_features: int, in_features: int) -> np.ndarray:
    """A ``(out_features, in_features)`` fp32 matrix (the layout of ``y = x @ W.T``)."""
    bound = np.sqrt(6.0 / (in_features + out_features))
    return rng.uniform(-bound, bound, size=(out_features, in_features)).astype(np.float32)


def embedding_table(rng: np.random.Generator, vocab_size: int, dim: int, *, pad_id: int,
                    std: float = 0.0) -> np.ndarray:
    """A ``(vocab_size, dim)`` fp32 table, ``N(0, std or dim ** -0.5)``, with row ``pad_id`` zero."""
    table = rng.normal(0.0, std or dim ** -0.5, size=(vocab_size, dim)).astype(np.float32)
    table[pad_id] = 0.0
    return table


def parameter(values: np.ndarray, name: str) -> Parameter:
    return Parameter(Tensor(values), name=name)


def zeros(shape, name: str) -> Parameter:
    return parameter(np.zeros(shape, np.float32), name)
