"""Source-side noise for fine-tuning pairs: each source token becomes ``<mask>`` with probability p.

The final ``</s>`` is never replaced (ModelZoo could mask it; an encoder input without its end marker
teaches nothing useful). Decoder arrays for a pair come from :func:`pair_example`.
"""

import numpy as np

from src.language_model.base import MaskedExample
from src.text.dictionary import BOS_ID, EOS_ID, MASK_ID


def add_noise(tokens, *, rng: np.random.Generator, prob: float) -> np.ndarray:
    tokens = np.array(tokens, dtype=np.int32, copy=True)
    if prob <= 0 or len(tokens) == 0:
        return tokens
    hit = rng.random(len(tokens)) < prob
    hit &= tokens != EOS_ID
    tokens[hit] = MASK_ID
    return tokens


def pair_example(source, target) -> MaskedExample:
    """Teacher-forcing arrays for a (source, target) pair, both ending with ``</s>``::

        target            = [t0 t1 </s>]
        decoder_input     = [<s> t0 t1]
        decoder_positions = [0 1 2]
    """
    target = np.asarray(target, dtype=np.int32)
    return MaskedExample(
        encoder_input=np.asarray(source, dtype=np.int32),
        decoder_input=np.concatenate([[BOS_ID], target[:-1]]).astype(np.int32),
        decoder_output=target.copy(),
        decoder_positions=np.arange(len(target), dtype=np.int32),
    )
