"""What every masker returns, and the pieces they share: fragment sampling and token replacement.

All functions are pure NumPy and take an explicit ``numpy.random.Generator``; nothing touches global
random state, so the same generator seed always gives the same example.
"""

from typing import NamedTuple

import numpy as np

from src.text.dictionary import BOS_ID, MASK_ID, NUM_SPECIALS


class MaskedExample(NamedTuple):
    """One training example for the encoder-decoder, all int32 1-D arrays.

    ``decoder_input``, ``decoder_output`` and ``decoder_positions`` have the same length.
    """

    encoder_input: np.ndarray
    decoder_input: np.ndarray
    decoder_output: np.ndarray
    decoder_positions: np.ndarray


def example_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The generator for one example in one epoch: a new mask every epoch, reproducible and resumable."""
    return np.random.default_rng([int(seed), int(epoch), int(index)])


def fragment_length(n: int, ratio: float) -> int:
    """``max(1, round(n * ratio))`` with halves rounded up (not Python's banker's rounding), capped at n."""
    if n < 1:
        raise ValueError("cannot mask an empty sentence")
    return int(min(n, max(1, np.floor(n * ratio + 0.5))))


def _categorical(uniform, probs):
    """Index of the category each uniform draw falls in (faster than ``rng.choice`` with ``p``)."""
    edges = np.cumsum(probs)[:-1]
    return np.searchsorted(edges, uniform, side="right")


def sample_start(n: int, k: int, rng: np.random.Generator, start_probs=(0.2, 0.2, 0.6)) -> int:
    """Start of a length-k fragment in a length-n sentence.

    With probability ``start_probs[0]`` the fragment starts the sentence, with ``start_probs[1]`` it ends
    it, otherwise its start is uniform in ``[0, n - k]`` (the MASS paper's code, not ModelZoo's uniform).
    """
    choice = _categorical(rng.random(), start_probs)
    if choice == 0:
        return 0
    if choice == 1:
        return n - k
    return int(rng.integers(0, n - k + 1))


def replace_fragment(tokens, start, k, rng, vocab_size, replace_probs=(0.8, 0.1, 0.1)) -> np.ndarray:
    """Copy of ``tokens`` with each position in ``[start, start + k)`` independently replaced by
    ``<mask>`` (prob ``replace_probs[0]``), a random non-special token (``[1]``) or kept (``[2]``).
    """
    out = np.array(tokens, dtype=np.int32, copy=True)
    choice = _categorical(rng.random(k), replace_probs)
    fragment = out[start:start + k]
    fragment[choice == 0] = MASK_ID
    n_random = int((choice == 1).sum())
    if n_random:
        if vocab_size <= NUM_SPECIALS:
            raise ValueError(f"vocab_size {vocab_size} has no non-special token to draw")
        fragment[choice == 1] = rng.integers(NUM_SPECIALS, vocab_size, size=n_random)
    return out


NO_NOISE = (0.0, 0.0, 1.0)  # every decoder input token kept


def noise_decoder_input(decoder_input, rng, vocab_size, replace_probs=NO_NOISE) -> np.ndarray:
    """``decoder_input`` with each token but a leading ``<s>`` replaced by ``<mask>`` (prob
    ``replace_probs[0]``), a random non-special token (``[1]``) or kept (``[2]``): ModelZoo's and
    MASS-supNMT's noise on the decoder's inputs (10% / 10% / 80% there). With ``NO_NOISE`` the input is
    returned as it is and ``rng`` is not drawn from (a run without noise is the run it was before)."""
    if tuple(float(p) for p in replace_probs) == NO_NOISE:
        return decoder_input
    start = 1 if len(decoder_input) and decoder_input[0] == BOS_ID else 0
    return replace_fragment(decoder_input, start, len(decoder_input) - start, rng, vocab_size, replace_probs)


def shifted_fragment_input(tokens, start, k) -> np.ndarray:
    """Decoder input for predicting ``tokens[start:start+k]``: the previous original token at each step,
    ``<s>`` before position 0.
    """
    tokens = np.asarray(tokens, dtype=np.int32)
    previous = tokens[start - 1:start + k - 1] if start > 0 else np.concatenate(
        [[BOS_ID], tokens[:k - 1]])
    return np.asarray(previous, dtype=np.int32)
