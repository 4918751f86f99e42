"""Teacher-forced negative log-likelihood and perplexity over a dataset of batches."""

import math

import mindspore as ms

from src.utils.loss import label_smoothed_nll


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
