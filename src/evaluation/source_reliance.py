"""How much a model's decoder relies on its source: teacher-forced loss with parts of the source hidden.

For each batch of (source, decoder input, positions, target) three token NLLs are computed (no label
smoothing, eval mode):

* ``as_trained``: the decoder attends to the source positions the model's config allows;
* ``mask_hidden``: ``<mask>`` source positions hidden from the cross-attention (equal to
  ``as_trained`` for a model trained with ``hide_masked_source_from_decoder``, and for sources without
  ``<mask>``);
* ``source_hidden``: the source replaced by a lone ``</s>``, so the encoder sees nothing of it and the
  decoder is a language model of the target alone.

``source_hidden - as_trained`` is what the source is worth to the decoder (nats per target token); it
splits into what comes through the real source tokens (``source_hidden - mask_hidden``) and through
the ``<mask>`` slots (``mask_hidden - as_trained``). A MASS model whose benefit is near zero predicts
the fragment from the decoder's own prefix and has not learned to read the encoder.
"""

import math

import mindspore as ms
import numpy as np
from mindspore import Tensor

from src.text.dictionary import EOS_ID, MASK_ID
from src.transformer.loss import label_smoothed_nll

VARIANTS = ("as_trained", "mask_hidden", "source_hidden")


def _nll_function(model):
    @ms.jit
    def nll(src_ids, memory_mask, dec_in_ids, dec_positions, tgt_ids):
        memory, _ = model.encode(src_ids)
        hidden, _ = model.decode(dec_in_ids, dec_positions, memory, memory_mask)
        return label_smoothed_nll(model.logits(hidden), tgt_ids, 0.0)

    return nll


def source_variants(model, src_ids: np.ndarray) -> dict:
    """``variant -> (source ids, memory mask)`` for one batch of padded sources (batch, src_len)."""
    src_ids = np.asarray(src_ids, dtype=np.int32)
    own = model.memory_mask(Tensor(src_ids)).asnumpy()
    empty = np.full((len(src_ids), 1), EOS_ID, dtype=np.int32)
    return {"as_trained": (src_ids, own),
            "mask_hidden": (src_ids, own & (src_ids != MASK_ID)),
            "source_hidden": (empty, np.ones_like(empty, dtype=bool))}


def span_losses(model, batches) -> dict:
    """Mean target-token NLL under each variant over ``batches`` (tuples of the 4 batch columns), the
    source's benefit and its split; the model is put in eval mode and restored."""
    was_training = model.training
    model.set_train(False)
    nll = _nll_function(model)
    totals = dict.fromkeys(VARIANTS, 0.0)
    tokens = 0
    try:
        for src, dec_in, positions, tgt in batches:
            count = None
            for name, (source, mask) in source_variants(model, src).items():
                s, n = nll(Tensor(source), Tensor(mask), Tensor(np.asarray(dec_in, np.int32)),
                           Tensor(np.asarray(positions, np.int32)), Tensor(np.asarray(tgt, np.int32)))
                totals[name] += float(s.asnumpy())
                count = int(n.asnumpy())
            tokens += count
    finally:
        model.set_train(was_training)
    if not tokens:
        raise ValueError("no target token in the batches")
    return summarize({k: v / tokens for k, v in totals.items()}, tokens)


def summarize(losses: dict, tokens: int) -> dict:
    """Losses per variant plus the source's benefit and the shares through real tokens and ``<mask>``.

    >>> r = summarize({"as_trained": 4.0, "mask_hidden": 4.5, "source_hidden": 6.0}, 10)
    >>> r["source_benefit"], r["share_real_tokens"], r["share_mask_slots"]
    (2.0, 0.75, 0.25)
    """
    benefit = losses["source_hidden"] - losses["as_trained"]
    through_real = losses["source_hidden"] - losses["mask_hidden"]
    through_mask = losses["mask_hidden"] - losses["as_trained"]
    share = (lambda part: part / benefit) if abs(benefit) > 1e-12 else (lambda part: math.nan)
    return {"tokens": tokens, **{f"loss_{k}": v for k, v in losses.items()},
            **{f"ppl_{k}": math.exp(min(v, 50.0)) for k, v in losses.items()},
            "source_benefit": benefit, "benefit_real_tokens": through_real, "benefit_mask_slots": through_mask,
            "share_real_tokens": share(through_real), "share_mask_slots": share(through_mask)}
