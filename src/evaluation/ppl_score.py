"""Teacher-forced negative log-likelihood and perplexity over a dataset of batches."""

import dataclasses
import math

import mindspore as ms
import numpy as np

from src.dataset import schema
from src.dataset.batching import fixed_shape_batches
from src.text.dictionary import PAD_ID
from src.transformer.loss import label_smoothed_nll

# Teacher-forced scoring (the trainer's validation loss, eval.py's perplexity) runs every batch in one
# shape of SCORING_ROWS rows, widths rounded up to SCORING_PAD_MULTIPLE: one compiled graph (each
# graph keeps its memory: the Cornell test set in its natural batch shapes took 6.2 GB, padded to
# multiples of 8 16.6 GB; see docs/PERFORMANCE.md).
SCORING_ROWS = 16
SCORING_PAD_MULTIPLE = 32


def scoring_batches(batches):
    """``batches`` (tuples of the 4 batch columns) re-cut to the one scoring shape (a filled last batch
    scores nothing more; see :func:`src.dataset.batching.fixed_shape_batches`)."""
    return fixed_shape_batches(batches, SCORING_ROWS, SCORING_PAD_MULTIPLE)


def make_nll_fn(network):
    """A jit function ``(src_ids, dec_in_ids, dec_positions, tgt_ids) -> (nll_sum, n_tokens)``."""

    @ms.jit
    def nll(src_ids, dec_in_ids, dec_positions, tgt_ids):
        logits = network(src_ids, dec_in_ids, dec_positions)
        return label_smoothed_nll(logits, tgt_ids, 0.0)

    return nll


def corpus_nll(network, batches, nll_fn=None) -> tuple[float, int]:
    """Sum of token NLL and number of target tokens over ``batches`` (tuples of the 4 batch columns).

    Pass the same ``nll_fn`` (from :func:`make_nll_fn`) on every call to reuse its compiled graphs.
    """
    was_training = network.training
    network.set_train(False)
    nll_fn = nll_fn or make_nll_fn(network)
    total, count = 0.0, 0
    try:
        for batch in batches:
            s, n = nll_fn(*(ms.Tensor(b) for b in batch))
            total += float(s.asnumpy())
            count += int(n.asnumpy())
    finally:
        network.set_train(was_training)
    return total, count


def perplexity(nll_sum: float, n_tokens: int) -> float:
    """``exp(mean NLL)``; infinite when there is no token."""
    return math.exp(nll_sum / n_tokens) if n_tokens else float("inf")


# ---- per-word perplexity --------------------------------------------------------------------------------
# Subword perplexity depends on the BPE vocabulary; dividing the same total NLL by the number of words
# (subwords merged back: a token ending with "@@" continues the word, ``</s>`` is one word) gives a
# number comparable across vocabularies.


def continuation_mask(symbols, separator: str = "@@") -> np.ndarray:
    """(vocab,) bool: True for the ids whose symbol continues into the next token (``"hel@@"``).

    >>> continuation_mask(["<pad>", "<s>", "</s>", "hel@@", "lo"]).tolist()
    [False, False, False, True, False]
    """
    return np.array([s.endswith(separator) for s in symbols], dtype=bool)


def count_words(tgt_ids, continues: np.ndarray, pad_id: int = PAD_ID) -> int:
    """Words among the non-pad target tokens: every token that does not continue a word ends one.

    >>> count_words(np.array([[3, 4, 2, 0], [4, 2, 0, 0]]), np.array([0, 0, 0, 1, 0], dtype=bool))
    4
    """
    tgt_ids = np.asarray(tgt_ids)
    real = tgt_ids != pad_id  # (batch, tgt_len)
    continuing = continues[np.clip(tgt_ids, 0, len(continues) - 1)]  # (batch, tgt_len)
    return int((real & ~continuing).sum())


@dataclasses.dataclass(frozen=True)
class PerplexityResult:
    nll_sum: float
    subword_tokens: int
    words: int

    @property
    def subword_ppl(self) -> float:
        return perplexity(self.nll_sum, self.subword_tokens)

    @property
    def word_ppl(self) -> float:
        return perplexity(self.nll_sum, self.words)

    def as_dict(self) -> dict:
        return {"nll_sum": self.nll_sum, "subword_tokens": self.subword_tokens, "words": self.words,
                "subword_ppl": self.subword_ppl, "word_ppl": self.word_ppl,
                "nll_per_subword": self.nll_sum / self.subword_tokens if self.subword_tokens else float("inf")}


def corpus_perplexity(network, batches, continues: np.ndarray, nll_fn=None) -> PerplexityResult:
    """Teacher-forced NLL over ``batches`` (tuples of the 4 batch columns, labels last) with both token
    counts: subwords (non-pad labels) and words (see :func:`count_words`). No label smoothing."""
    words = 0

    def counted(items):
        nonlocal words
        for batch in items:
            words += count_words(batch[schema.TGT], continues)
            yield batch

    total, count = corpus_nll(network, counted(batches), nll_fn)
    return PerplexityResult(total, count, words)
