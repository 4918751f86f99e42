import dataclasses
import json
from pathlib import Path

import pytest

from config.config import MassConfig, resolve_compute_type
from src.utils.errors import UserError

CONFIG_DIR = Path(__file__).resolve().parent.parent / "config"
PRESETS = ["config", "tiny", "small", "paper"]


@pytest.mark.parametrize("name", PRESETS)
def test_presets_load_and_round_trip_exactly(name, tmp_path):
    path = CONFIG_DIR / f"{name}.json"
    cfg = MassConfig.from_json(path)
    assert cfg.to_json_text() == path.read_text(encoding="utf-8")
    out = cfg.to_json(tmp_path / "sub" / "resolved.json")
    assert out.read_text(encoding="utf-8") == path.read_text(encoding="utf-8")
    assert MassConfig.from_json(out) == cfg
    assert MassConfig.from_dict(cfg.to_dict()) == cfg
    assert json.loads(path.read_text(encoding="utf-8")) == cfg.to_dict()


def test_preset_sizes():
    tiny, small, paper = (MassConfig.from_json(CONFIG_DIR / f"{n}.json").model_config
                          for n in ("tiny", "small", "paper"))
    assert (tiny.num_hidden_layers, tiny.num_decoder_layers, tiny.num_attention_heads) == (2, 2, 2)
    assert tiny.vocab_size is None and 16 <= tiny.hidden_size <= 32
    assert (small.hidden_size, small.num_hidden_layers, small.num_attention_heads) == (256, 3, 4)
    assert small.intermediate_size == 1024
    assert (paper.hidden_size, paper.num_hidden_layers, paper.num_decoder_layers) == (1024, 6, 6)
    assert (paper.num_attention_heads, paper.intermediate_size, paper.hidden_dropout_prob) == (8, 4096, 0.2)


def test_defaults_equal_config_json():
    assert MassConfig.from_json(CONFIG_DIR / "config.json") == MassConfig()


def test_lists_become_tuples_and_back():
    cfg = MassConfig()
    assert cfg.mask_config.start_probs == (0.2, 0.2, 0.6)
    assert cfg.to_dict()["mask_config"]["start_probs"] == [0.2, 0.2, 0.6]


def test_sections_are_frozen():
    cfg = MassConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.learn_rate_config.lr = 1.0


def _write(tmp_path, data):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_unknown_key_in_file_names_key_and_file(tmp_path):
    data = MassConfig().to_dict()
    data["learn_rate_config"]["lr_schedule"] = "poly"
    path = _write(tmp_path, data)
    with pytest.raises(UserError, match=r"bad\.json: learn_rate_config\.lr_schedule: unknown key"):
        MassConfig.from_json(path)


def test_unknown_section_raises(tmp_path):
    with pytest.raises(UserError, match="train_config"):
        MassConfig.from_json(_write(tmp_path, {"train_config": {}}))


def test_missing_keys_take_defaults():
    cfg = MassConfig.from_dict({"model_config": {"hidden_size": 32, "num_attention_heads": 4}})
    assert cfg.model_config.hidden_size == 32
    assert cfg.model_config.intermediate_size == 4096
    assert cfg.dataset_config == MassConfig().dataset_config


@pytest.mark.parametrize("section,key,value", [
    ("dataset_config", "batch_size", "4"),
    ("dataset_config", "batch_size", 1.5),
    ("dataset_config", "batch_size", True),
    ("dataset_config", "shuffle", 1),
    ("dataset_config", "test_dataset", 3),
    ("dataset_config", "bucket_boundaries", [8, "16"]),
    ("dataset_config", "bucket_boundaries", 8),
    ("learn_rate_config", "lr", "1e-4"),
    ("learn_rate_config", "optimizer", "sgd"),
    ("model_config", "hidden_act", "tanh"),
    ("model_config", "vocab_size", 100.0),
    ("model_config", "compute_type", "bfloat16"),
])
def test_wrong_type_raises_naming_key(tmp_path, section, key, value):
    data = MassConfig().to_dict()
    data[section][key] = value
    with pytest.raises(UserError, match=rf"bad\.json: {section}\.{key}"):
        MassConfig.from_json(_write(tmp_path, data))


def test_int_is_accepted_for_float():
    cfg = MassConfig.from_dict({"learn_rate_config": {"lr": 1, "min_lr": 0}})
    assert cfg.learn_rate_config.lr == 1.0 and isinstance(cfg.learn_rate_config.lr, float)
    assert cfg.to_dict()["learn_rate_config"]["lr"] == 1.0


def test_invalid_json_raises(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text("{", encoding="utf-8")
    with pytest.raises(UserError, match="broken.json: not valid JSON"):
        MassConfig.from_json(path)
    with pytest.raises(UserError, match="not found"):
        MassConfig.from_json(tmp_path / "missing.json")


@pytest.mark.parametrize("section,changes,key", [
    ("mask_config", {"start_probs": [0.2, 0.2, 0.5]}, "mask_config.start_probs"),
    ("mask_config", {"replace_probs": [0.8, 0.2]}, "mask_config.replace_probs"),
    ("mask_config", {"mask_ratio": 0.0}, "mask_config.mask_ratio"),
    ("model_config", {"hidden_size": 30, "num_attention_heads": 4}, "model_config.hidden_size"),
    ("model_config", {"num_decoder_layers": 0}, "model_config.num_decoder_layers"),
    ("model_config", {"hidden_dropout_prob": 1.0}, "model_config.hidden_dropout_prob"),
    ("model_config", {"max_position_embeddings": 32}, "model_config.max_position_embeddings"),
    ("dataset_config", {"bucket_boundaries": [16, 16]}, "dataset_config.bucket_boundaries"),
    ("dataset_config", {"bucket_boundaries": [16, 128]}, "dataset_config.bucket_boundaries"),
    ("dataset_config", {"batch_size": 0}, "dataset_config.batch_size"),
    ("dataset_config", {"max_static_shapes": -1}, "dataset_config.max_static_shapes"),
    ("learn_rate_config", {"min_lr": 1.0}, "learn_rate_config.min_lr"),
    ("decode_config", {"n_best": 5}, "decode_config.n_best"),
    ("loss_scale_config", {"loss_scale_factor": 1.0}, "loss_scale_config.loss_scale_factor"),
])
def test_range_validation(section, changes, key):
    with pytest.raises(UserError, match=key.replace(".", r"\.")):
        MassConfig.from_dict({section: changes})


def test_static_shape_limit_counts_the_padded_width_pairs():
    small = MassConfig.from_json(CONFIG_DIR / "small.json").dataset_config
    assert (small.max_len, small.max_tgt_len, small.pad_multiple) == (64, 64, 32)
    assert small.static_shape_limit() == 4                      # sources 32 / 64 x targets 32 / 64
    data = MassConfig.from_dict({"dataset_config": {"max_len": 100, "max_tgt_len": 40, "pad_multiple": 32,
                                                    "bucket_boundaries": []},
                            "model_config": {"max_position_embeddings": 128}}).dataset_config
    assert data.static_shape_limit() == 4 * 2                   # ceil(100 / 32) x ceil(40 / 32)
    assert dataclasses.replace(data, max_static_shapes=3).static_shape_limit() == 3
    assert dataclasses.replace(data, max_static_shapes=3, dynamic_shapes=True).static_shape_limit() == 0


def test_replace_sets_typed_values_validated_like_a_file():
    cfg = MassConfig()
    new = cfg.replace("dataset_config", bucket_boundaries=(8, 16), lowercase=True)
    assert new.dataset_config.bucket_boundaries == (8, 16) and new.dataset_config.lowercase is True
    assert cfg.dataset_config.lowercase is None                           # the original is unchanged
    assert new.to_dict() == cfg.override(["--dataset_config.bucket_boundaries=[8,16]",
                                          "--dataset_config.lowercase=true"]).to_dict()
    with pytest.raises(UserError, match=r"model_config\.vocab_sizes"):
        cfg.replace("model_config", vocab_sizes=5)
    with pytest.raises(UserError, match="unknown config section"):
        cfg.replace("model", vocab_size=5)
    with pytest.raises(UserError, match=r"dataset_config\.batch_size"):
        cfg.replace("dataset_config", batch_size=0)                     # validated
    with pytest.raises(UserError, match="batch_size"):
        cfg.replace("dataset_config", batch_size="8")                   # typed: no string parsing


def test_override_parses_json_values():
    base = MassConfig()
    cfg = base.override([
        "--learn_rate_config.lr=5e-4",
        "--dataset_config.bucket_boundaries=[8,16]",
        "--dataset_config.shuffle=false",
        "--model_config.vocab_size=null",
        "--dataset_config.test_dataset=/data/gigaword test",
        "--learn_rate_config.warmup_steps=10",
    ])
    assert cfg.learn_rate_config.lr == 5e-4
    assert cfg.dataset_config.bucket_boundaries == (8, 16)
    assert cfg.dataset_config.shuffle is False
    assert cfg.model_config.vocab_size is None
    assert cfg.dataset_config.test_dataset == "/data/gigaword test"
    assert cfg.learn_rate_config.warmup_steps == 10
    assert base.learn_rate_config.lr == 1e-4  # the original is untouched
    assert MassConfig.from_dict(cfg.to_dict()) == cfg


def test_override_a_string_that_looks_like_json_needs_quotes():
    with pytest.raises(UserError, match="checkpoint_options.ckpt_prefix"):
        MassConfig().override(["--checkpoint_options.ckpt_prefix=123"])
    cfg = MassConfig().override(['--checkpoint_options.ckpt_prefix="123"'])
    assert cfg.checkpoint_options.ckpt_prefix == "123"


@pytest.mark.parametrize("arg,pattern", [
    ("--learn_rate_config.learning_rate=1e-4", "unknown config key 'learn_rate_config.learning_rate'"),
    ("--train.lr=1e-4", "unknown config section 'train'"),
    ("--dataset_config.batch_size=4.5", r"command line: dataset_config\.batch_size: expected an integer"),
    ("--dataset_config.batch_size=\"4\"", r"dataset_config\.batch_size"),
    ("--model_config.hidden_act=swish", r"model_config\.hidden_act: expected one of"),
    ("learn_rate_config.lr=1e-4", "expected --section.key=value"),
    ("--learn_rate_config.lr", "expected --section.key=value"),
    ("--lr=1e-4", "expected --section.key=value"),
])
def test_override_errors(arg, pattern):
    with pytest.raises(UserError, match=pattern):
        MassConfig().override([arg])


def test_resolve_compute_type():
    assert resolve_compute_type("auto", "CPU") == "float32"
    assert resolve_compute_type("auto", "GPU") == "float16"
    assert resolve_compute_type("auto", "Ascend") == "float16"
    assert resolve_compute_type("float32", "GPU") == "float32"


@pytest.mark.parametrize("name", ["config", "small", "tiny", "paper"])
def test_every_shipped_config_hides_masked_source_positions_as_the_paper_does(name):
    assert MassConfig.from_json(CONFIG_DIR / f"{name}.json").model_config.hide_masked_source_from_decoder
    assert MassConfig().model_config.hide_masked_source_from_decoder


def test_existed_ckpt_skip_patterns_are_checked():
    cfg = MassConfig().override(['--checkpoint_options.existed_ckpt_skip=["^decoder_layers\\\\."]'])
    assert cfg.checkpoint_options.existed_ckpt_skip == ("^decoder_layers\\.",)
    with pytest.raises(UserError, match=r"existed_ckpt_skip\[0\]: not a regular expression"):
        MassConfig().override(['--checkpoint_options.existed_ckpt_skip=["(unclosed"]'])
    assert MassConfig().override(["--checkpoint_options.best_by=bleu"]).checkpoint_options.best_by == "bleu"
    with pytest.raises(UserError, match="best_by: must be loss or a metric name"):  # the registry's check: train.py
        MassConfig().override(["--checkpoint_options.best_by=BLEU-4"])


def test_a_minimum_decode_length_no_hypothesis_can_reach_is_refused():
    cfg = MassConfig.from_json(Path(__file__).resolve().parents[1] / "config/tiny.json")
    with pytest.raises(UserError, match="min_decode_length: 20 exceeds max_decode_length_b 5"):
        cfg.override(["--decode_config.min_decode_length=20", "--decode_config.max_decode_length_b=5"])
    with pytest.raises(UserError, match="min_decode_length: 90 cannot be met within the model's 64 positions"):
        cfg.override(["--decode_config.min_decode_length=90", "--decode_config.max_decode_length_b=100"])
    ok = cfg.override(["--decode_config.min_decode_length=20", "--decode_config.max_decode_length_b=5",
                       "--decode_config.max_decode_length_a=1.5"])  # a cap that grows with the source
    assert ok.decode_config.min_decode_length == 20
