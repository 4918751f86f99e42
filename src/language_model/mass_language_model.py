"""MASS masking as in the paper and its released code: one contiguous fragment per sentence.

Worked example (``</s>`` = 2, ``<mask>`` = 4), a 9-token sentence ``x = [10 11 12 13 14 15 16 17 2]``,
mask_ratio 0.5, so k = round(4.5) = 5; say the start drawn is u = 2 and every fragment token becomes
``<mask>`` (the 80% case)::

    encoder_input     = [10 11  4  4  4  4  4 17  2]
    decoder_input     = [11 12 13 14 15]          # previous original token of each target
    decoder_output    = [12 13 14 15 16]          # x[u : u + k]
    decoder_positions = [ 2  3  4  5  6]          # absolute positions: only the fragment is decoded

With u = 0 the decoder input starts with ``<s>`` (1).
"""

import numpy as np

from src.language_model.base import (
    NO_NOISE,
    MaskedExample,
    fragment_length,
    noise_decoder_input,
    replace_fragment,
    sample_start,
    shifted_fragment_input,
)


def mass_mask(tokens, *, rng: np.random.Generator, vocab_size: int, mask_ratio: float = 0.5,
              start_probs=(0.2, 0.2, 0.6), replace_probs=(0.8, 0.1, 0.1), k: int | None = None,
              decoder_replace_probs=NO_NOISE) -> MaskedExample:
    """Mask one fragment of ``tokens`` (BPE ids, usually ending with ``</s>``) for MASS pre-training.

    ``k`` fixes the fragment length (k=1 is BERT-like, k=len(tokens) GPT-like); by default it is
    ``max(1, round(len * mask_ratio))``. ``decoder_replace_probs`` (``<mask>``, random, kept) corrupts the
    decoder's inputs, drawn after the encoder's (``noise_decoder_input``; none by default).
    """
    tokens = np.asarray(tokens, dtype=np.int32)
    n = len(tokens)
    k = fragment_length(n, mask_ratio) if k is None else int(min(max(k, 1), n))
    start = sample_start(n, k, rng, start_probs)
    encoder_input = replace_fragment(tokens, start, k, rng, vocab_size, replace_probs)
    return MaskedExample(
        encoder_input=encoder_input,
        decoder_input=noise_decoder_input(shifted_fragment_input(tokens, start, k), rng, vocab_size,
                                          decoder_replace_probs),
        decoder_output=tokens[start:start + k].copy(),
        decoder_positions=np.arange(start, start + k, dtype=np.int32),
    )
