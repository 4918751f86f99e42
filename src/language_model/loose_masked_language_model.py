"""ModelZoo's pre-training masker ("according to MASS released code"), kept for comparison.

It differs from :func:`src.language_model.mass_language_model.mass_mask` in three ways:
the start is uniform; every fragment token becomes ``<mask>`` (no 80/10/10); and for u > 0 the decoder
window is one token longer, predicting the unmasked ``x[u-1]`` from a ``<mask>`` input. Example with
``x = [a b c d e f g h </s>]``, k = 4 (ModelZoo rounds half to even), u = 1::

    encoder_input     = [a M M M M f g h </s>]
    decoder_input     = [M a b c d]
    decoder_output    = [a b c d e]
    decoder_positions = [0 1 2 3 4]

``src.dataset.modelzoo.to_modelzoo_record`` turns such an example into ModelZoo's fixed-length 6-column record.
"""

import numpy as np

from src.language_model.base import MaskedExample
from src.text.dictionary import MASK_ID


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
