"""Label-smoothed cross-entropy over non-pad target tokens (pure MindSpore ops, jit friendly)."""

from mindspore import ops

from src.text.dictionary import PAD_ID


def label_smoothed_nll(logits, labels, epsilon: float, pad_id: int = PAD_ID):
    """Sum of the label-smoothed negative log-likelihood over non-pad tokens, and the token count.

    The target distribution puts ``1 - epsilon`` on the label and spreads ``epsilon`` evenly over the
    other ``V - 1`` symbols (ModelZoo's convention). With ``epsilon = 0`` this is the plain NLL.

    logits: (batch, len, vocab) float32; labels: (batch, len) int32, ``pad_id`` where there is no target.
    Returns ``(loss_sum, n_tokens)``, both float32 scalars.
    """
    vocab = logits.shape[-1]
    log_probs = ops.log_softmax(logits, axis=-1)                           # (batch, len, vocab)
    index = ops.expand_dims(labels, -1)                                    # (batch, len, 1)
    nll = -ops.gather_elements(log_probs, -1, index).squeeze(-1)           # (batch, len)
    if epsilon > 0:
        off = epsilon / (vocab - 1)
        # -sum_j log p_j = V * logsumexp(z) - sum_j z_j, with logsumexp(z) = z_y - log p_y; the sum over
        # the vocabulary is a product with a ones vector (a CPU ReduceSum over it is 4x slower)
        logsumexp = ops.gather_elements(logits, -1, index).squeeze(-1) + nll  # (batch, len)
        flat = logits.reshape(-1, vocab)                                   # (batch * len, vocab)
        total = ops.matmul(flat, ops.ones((vocab, 1), logits.dtype)).reshape(labels.shape)
        smooth = vocab * logsumexp - total                                 # (batch, len)
        nll = (1.0 - epsilon - off) * nll + off * smooth
    weights = (labels != pad_id).astype(logits.dtype)
    return (nll * weights).sum(), weights.sum()
