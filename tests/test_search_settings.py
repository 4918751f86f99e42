"""SearchSettings: one value from decode_config to the search state, with the dictionary's special ids."""

import dataclasses

import numpy as np
import pytest

from config.config import DecodeConfig
from src.text.dictionary import BOS_ID, EOS_ID, MASK_ID, PAD_ID
from src.transformer.search_settings import DECODE_ARGS, SearchSettings


def test_every_decode_config_key_reaches_its_field():
    config = DecodeConfig(beam_width=5, length_penalty_weight=1.4, length_penalty_type="power",
                          min_decode_length=6, max_decode_length_a=1.5, max_decode_length_b=7,
                          no_repeat_ngram_size=3, n_best=2)
    settings = SearchSettings.from_decode_config(config)
    assert set(DECODE_ARGS) == {f.name for f in dataclasses.fields(DecodeConfig)}  # no key left out
    for key, field in DECODE_ARGS.items():
        assert getattr(settings, field) == getattr(config, key), key
    assert settings.options() == {"beam_size": 5, "length_penalty": 1.4, "length_penalty_type": "power",
                                  "min_len": 6, "max_len_a": 1.5, "max_len_b": 7, "no_repeat_ngram_size": 3,
                                  "n_best": 2}


def test_special_ids_are_the_dictionarys():
    settings = SearchSettings()
    assert (settings.bos, settings.eos) == (BOS_ID, EOS_ID)
    assert set(settings.forbid) == {PAD_ID, BOS_ID, MASK_ID}  # <s> only starts the decoder input


def test_overrides_apply_when_given_and_keep_n_best_within_the_beam():
    base = SearchSettings.from_decode_config(DecodeConfig(beam_width=4, n_best=3))
    assert base.replace(beam_size=None, min_len=None) is base           # None: keep the config's value
    narrow = base.replace(beam_size=2, min_len=4)
    assert (narrow.beam_size, narrow.n_best, narrow.min_len) == (2, 2, 4)
    assert SearchSettings.from_decode_config(DecodeConfig(), beam_size=1).n_best == 1
    with pytest.raises(TypeError, match="beam_width"):
        base.replace(beam_width=3)                                       # a config key, not a field
    with pytest.raises(dataclasses.FrozenInstanceError):
        base.beam_size = 3


@pytest.mark.parametrize("changes,message", [
    ({"beam_size": 0}, "beam_size"),
    ({"length_penalty_type": "linear"}, "length_penalty_type"),
    ({"min_len": -1}, "min_len"),
    ({"n_best": 0}, "n_best"),
])
def test_bad_settings_are_refused(changes, message):
    with pytest.raises(ValueError, match=message):
        SearchSettings(**changes)


def test_max_lengths_follow_a_src_len_plus_b_within_the_position_table():
    settings = SearchSettings(max_len_a=0.5, max_len_b=3)
    np.testing.assert_array_equal(settings.max_lengths([7, 4, 200], 64), [int(0.5 * 7 + 3), int(0.5 * 4 + 3), 64])
    assert SearchSettings(max_len_a=0.0, max_len_b=0).max_lengths([5], 64).tolist() == [1]  # at least one token
