"""BERT-like special case of MASS: a single masked token (k = 1) predicted by the decoder.

MASS with k = 1 gives the decoder no previous target tokens to lean on, so it is the encoder-only end
of the spectrum the paper discusses; k = n is the GPT-like end.
"""

import numpy as np

from src.language_model.base import MaskedExample
from src.language_model.mass_language_model import mass_mask


def bert_mask(tokens, *, rng: np.random.Generator, vocab_size: int, start_probs=(0.0, 0.0, 1.0),
              replace_probs=(0.8, 0.1, 0.1), **_ignored) -> MaskedExample:
    """Mask one uniformly chosen token (80/10/10 replacement) and predict it."""
    return mass_mask(tokens, rng=rng, vocab_size=vocab_size, k=1, start_probs=start_probs,
                     replace_probs=replace_probs)
