"""Fixed sinusoidal position encodings."""

import numpy as np


def sinusoid_table(num_positions: int, dim: int) -> np.ndarray:
    """``(num_positions, dim)`` fp32: sines in the first half of each row, cosines in the second.

    Frequencies are geometric from 1 down to 1e-4 over the ``dim // 2`` channels (the tensor2tensor
    layout ModelZoo uses, so its checkpoints see the same encodings):
    ``row[p] = concat(sin(p * f), cos(p * f))`` with ``f[i] = 1e4 ** (-i / (dim // 2 - 1))``.

    >>> [[round(float(v), 4) for v in row] for row in sinusoid_table(2, 4)]   # f = [1, 1e-4]
    [[0.0, 0.0, 1.0, 1.0], [0.8415, 0.0001, 0.5403, 1.0]]
    """
    if dim % 2:
        raise ValueError(f"dim must be even, got {dim}")
    half = dim // 2
    freqs = np.power(1e4, -np.arange(half) / max(half - 1, 1))  # (half,)
    angles = np.arange(num_positions)[:, None] * freqs[None, :]  # (num_positions, half)
    return np.concatenate([np.sin(angles), np.cos(angles)], axis=1).astype(np.float32)
