"""Source reliance: span losses with the source (partly) hidden, checked against plain corpus NLL."""

import dataclasses

import numpy as np
import pytest

from src.evaluation.ppl_score import corpus_nll
from src.evaluation.source_reliance import span_losses, summarize
from src.text.dictionary import EOS_ID, MASK_ID, PAD_ID
from src.transformer.transformer import MassTransformer


def model_with(config, hide):
    model = MassTransformer(dataclasses.replace(config, hide_masked_source_from_decoder=hide))
    model.set_train(False)
    return model


@pytest.fixture
def batches():
    rng = np.random.default_rng(3)
    src = rng.integers(5, 50, size=(3, 9)).astype(np.int32)
    src[:, 2:5] = MASK_ID  # a masked fragment
    src[0, 7:] = PAD_ID
    src[:, -1][src[:, -1] != PAD_ID] = EOS_ID
    dec_in = rng.integers(5, 50, size=(3, 3)).astype(np.int32)
    positions = np.tile(np.arange(2, 5, dtype=np.int32), (3, 1))
    tgt = rng.integers(5, 50, size=(3, 3)).astype(np.int32)
    tgt[2, 2] = PAD_ID
    return [(src, dec_in, positions, tgt)]


def mean_nll(model, batches):
    total, count = corpus_nll(model, batches)
    return total / count


def test_each_variant_equals_the_plain_nll_of_the_matching_input(tiny_model_config, batches):
    seen = model_with(tiny_model_config, hide=False)  # the same weights (same seed), masks visible
    hidden = model_with(tiny_model_config, hide=True)
    result = span_losses(seen, batches)
    assert result["tokens"] == 8
    assert result["loss_as_trained"] == pytest.approx(mean_nll(seen, batches), rel=1e-5)
    assert result["loss_mask_hidden"] == pytest.approx(mean_nll(hidden, batches), rel=1e-5)
    src, dec_in, positions, tgt = batches[0]
    lone_eos = np.full((len(src), 1), EOS_ID, np.int32)
    assert result["loss_source_hidden"] == pytest.approx(mean_nll(seen, [(lone_eos, dec_in, positions, tgt)]),
                                                         rel=1e-5)
    assert result["loss_mask_hidden"] != pytest.approx(result["loss_as_trained"], rel=1e-6)


def test_a_model_trained_with_hidden_masks_gets_nothing_through_mask_slots(tiny_model_config, batches):
    result = span_losses(model_with(tiny_model_config, hide=True), batches)
    assert result["loss_mask_hidden"] == result["loss_as_trained"]
    assert result["benefit_mask_slots"] == 0.0
    assert result["share_real_tokens"] == pytest.approx(1.0)


def test_summary_splits_the_benefit():
    r = summarize({"as_trained": 3.0, "mask_hidden": 3.0, "source_hidden": 3.0}, 4)
    assert r["source_benefit"] == 0.0 and np.isnan(r["share_mask_slots"])
