"""Label-smoothed cross-entropy over non-pad target tokens (pure MindSpore ops, jit friendly)."""

from mindspore import ops

PAD_ID = 0


def label_smoothed_nll(logits, labels, epsilon: float, pad_id: int = PAD_ID):
    """Sum of the label-smoothed negative log-likelihood over non-pad tokens, and the token count.

    The target distribution puts ``1 - epsilon`` on the label and spreads ``epsilon`` evenly over the
    other ``V - 1`` symbols (ModelZoo's convention). With ``epsilon = 0`` this is the plain NLL.

    logits: (batch, len, vocab) float32; labels: (batch, len) int32, ``pad_id`` where there is no target.
    Returns ``(loss_sum, n_tokens)``, both float32 scalars.
    """
    vocab = logits.shape[-1]
    log_probs = ops.log_softmax(logits, axis=-1)                           # (batch, len, vocab)
    nll = -ops.gather_elements(log_probs, -1, ops.expand_dims(labels, -1)).squeeze(-1)  # (batch, len)
    if epsilon > 0:
        off = epsilon / (vocab - 1)
        smooth = -log_probs.sum(axis=-1)                                   # sum over the vocabulary
        nll = (1.0 - epsilon - off) * nll + off * smooth
    weights = (labels != pad_id).astype(logits.dtype)
    return (nll * weights).sum(), weights.sum()
