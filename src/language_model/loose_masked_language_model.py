"""ModelZoo's pre-training masker ("according to MASS released code"), kept for comparison.

It differs from :func:`src.language_model.mass_language_model.mass_mask` in three ways:
the start is uniform; every fragment token becomes ``<mask>`` (no 80/10/10); and for u > 0 the decoder
window is one token longer, predicting the unmasked ``x[u-1]`` from a ``<mask>`` input. Example with
``x = [a b c d e f g h </s>]``, k = 4 (ModelZoo rounds half to even), u = 1::

    encoder_input     = [a M M M M f g h </s>]
    decoder_input     = [M a b c d]
    decoder_output    = [a b c d e]
    decoder_positions = [0 1 2 3 4]

:func:`to_modelzoo_record` turns such an example into ModelZoo's fixed-length 6-column record.
"""

import numpy as np

from src.dataset import schema
from src.language_model.base import MASK_ID, PAD_ID, MaskedExample


def loose_mask(tokens, *, rng: np.random.Generator, mask_ratio: float = 0.5, **_ignored) -> MaskedExample:
    tokens = np.asarray(tokens, dtype=np.int32)
    n = len(tokens)
    k = min(n, max(1, round(n * mask_ratio)))  # ModelZoo: Python round (half to even)
    u = int(rng.integers(0, n - k + 1))
    v = u + k
    encoder_input = tokens.copy()
    encoder_input[u:v] = MASK_ID
    first = max(u - 1, 0)
    decoder_output = tokens[first:v].copy()
    decoder_input = np.concatenate([[MASK_ID], tokens[first:v - 1]]).astype(np.int32)
    return MaskedExample(encoder_input, decoder_input, decoder_output,
                         np.arange(first, v, dtype=np.int32))


def to_modelzoo_record(example: MaskedExample, max_len: int) -> dict | None:
    """ModelZoo's record layout: decoder arrays left-padded to their absolute position, every column
    right-padded to ``max_len``; ``None`` when the example does not fit (ModelZoo drops it).
    """
    offset = int(example.decoder_positions[0])
    enc = example.encoder_input
    dec_in = np.concatenate([np.full(offset, PAD_ID), example.decoder_input])
    dec_out = np.concatenate([np.full(offset, PAD_ID), example.decoder_output])
    if max(len(enc), len(dec_in)) > max_len:
        return None

    def pad(a):
        return np.pad(np.asarray(a, dtype=np.int64), (0, max_len - len(a)))

    src_padding = pad(np.ones(len(enc)))
    src_padding[(pad(enc) == MASK_ID)] = 0  # ModelZoo hides masked tokens from the encoder
    tgt_padding = pad(dec_in != PAD_ID)
    return {
        schema.MZ_SRC: pad(enc),
        schema.MZ_SRC_PADDING: src_padding,
        schema.MZ_PREV_OPT: pad(dec_in),
        schema.MZ_PREV_PADDING: tgt_padding,
        schema.MZ_TARGET: pad(dec_out),
        schema.MZ_TGT_PADDING: tgt_padding.copy(),
    }
