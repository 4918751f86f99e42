"""Checkpoint averaging (src/utils/average.py, weights_average.py) and MindIR export (export.py)."""

import re
import shutil

import mindspore as ms
import numpy as np
import pytest
from mindspore import Tensor, nn

import export
import weights_average
from config.config import MassConfig
from src.text.dictionary import EOS_ID, PAD_ID
from src.transformer.export import GreedyDecoder, check_format
from src.transformer.generator import generate
from src.transformer.search_settings import SearchSettings
from src.transformer.transformer import MassTransformer
from src.utils.average import average_checkpoints, checkpoint_paths, last_step_checkpoints
from src.utils.checkpoint import is_model_param, load_model_weights, read_weights, save_checkpoint, save_npz
from src.utils.cli import run_cli
from src.utils.errors import UserError

STATE = {"phase": "pretrain", "epoch": 1, "batch_in_epoch": 3, "step": 10, "config_json": "{}"}


@pytest.fixture
def model(tiny_model_config):
    return MassTransformer(tiny_model_config)


def random_params(model, seed) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {p.name: rng.normal(0.0, 1.0, p.shape).astype(np.float32) for p in model.get_parameters()}


def optimizer_entries(params, seed) -> dict[str, np.ndarray]:
    """What a training checkpoint holds besides the model: Adam slots, counters, lr, loss scale, accumulators."""
    rng = np.random.default_rng(seed)
    entries = {}
    for name, value in params.items():
        entries[f"moment1.{name}"] = rng.normal(size=value.shape).astype(np.float32)
        entries[f"moment2.{name}"] = rng.random(value.shape).astype(np.float32)
    entries["accum.embedding.table"] = rng.normal(size=params["embedding.table"].shape).astype(np.float32)
    entries.update({
        "beta1_power": np.array(rng.random(), np.float32), "beta2_power": np.array(rng.random(), np.float32),
        "global_step": np.array([seed], np.int32), "learning_rate": np.array(1e-3 * seed, np.float32),
        "loss_scaler.scale_value": np.array(2.0 ** seed, np.float32),
        "loss_scaler.counter": np.array(seed, np.int32),
    })
    return entries


def decoding_weights(model) -> dict[str, np.ndarray]:
    """Random weights under which greedy decoding of the test source emits 4 tokens, then </s> (found by
    trying seeds): unit-norm embedding rows, and the </s> row a scaled copy of a frequent token's."""
    weights = random_params(model, 2)
    table = weights["embedding.table"]  # (vocab, d)
    table /= np.linalg.norm(table, axis=1, keepdims=True)
    table[EOS_ID] = 1.05 * table[19]
    return weights


def write_ckpt(path, arrays: dict, state=None):
    entries = [{"name": name, "data": Tensor(value)} for name, value in arrays.items()]
    return save_checkpoint(path, entries, dict(STATE if state is None else state))


def two_checkpoints(model, folder):
    a, b = random_params(model, 1), random_params(model, 2)
    write_ckpt(folder / "ckpt_pretrain_step10.ckpt", {**a, **optimizer_entries(a, 1)})
    write_ckpt(folder / "ckpt_pretrain_step20.ckpt", {**b, **optimizer_entries(b, 2)}, {**STATE, "step": 20})
    return a, b


def exact_mean(*arrays):
    return (sum(x.astype(np.float64) for x in arrays) / len(arrays)).astype(arrays[0].dtype)


# --- average_checkpoints ---------------------------------------------------------------------------------


def test_is_model_param():
    assert is_model_param("embedding.table")
    assert is_model_param("decoder_layers.1.ffn.fc2.bias")
    for name in ("moment1.embedding.table", "moment2.x", "beta1_power", "beta2_power", "global_step",
                 "learning_rate", "loss_scaler.scale_value", "accum.embedding.table", "moments.x", "lamb_m.x",
                 "step", "config_json"):
        assert not is_model_param(name), name


def test_average_of_two_checkpoints_is_the_exact_mean_of_model_params_only(model, tmp_path):
    a, b = two_checkpoints(model, tmp_path)
    averaged = average_checkpoints(sorted(tmp_path.glob("*.ckpt")))
    assert set(averaged) == {p.name for p in model.get_parameters()}  # no optimizer entry, no run state
    for name in a:
        assert averaged[name].dtype == np.float32
        np.testing.assert_array_equal(averaged[name], exact_mean(a[name], b[name]))


def test_folder_averages_only_its_ckpt_files(model, tmp_path):
    a, b = two_checkpoints(model, tmp_path)
    (tmp_path / "ckpt_pretrain-graph.meta").write_bytes(b"\x00graph")
    (tmp_path / "config.json").write_text("{}")
    paths = checkpoint_paths([tmp_path])
    assert [p.name for p in paths] == ["ckpt_pretrain_step10.ckpt", "ckpt_pretrain_step20.ckpt"]
    averaged = average_checkpoints(paths)
    # ModelZoo divided by 4 (every file of the folder); the mean divides by the 2 checkpoints read
    np.testing.assert_array_equal(averaged["embedding.table"], exact_mean(a["embedding.table"], b["embedding.table"]))


def test_checkpoint_paths_errors(tmp_path):
    (tmp_path / "notes.json").write_text("{}")
    (tmp_path / "a.ckpt").write_bytes(b"")   # not a step checkpoint: a folder never contributes it
    with pytest.raises(UserError, match="no <prefix>_step<N>.ckpt file"):
        checkpoint_paths([tmp_path])
    with pytest.raises(UserError, match="not found"):
        checkpoint_paths([tmp_path / "missing.ckpt"])
    (tmp_path / "x_step1.ckpt").write_bytes(b"")
    with pytest.raises(UserError, match="more than once"):
        checkpoint_paths([tmp_path / "x_step1.ckpt", tmp_path])
    (tmp_path / "y_step1.ckpt").write_bytes(b"")
    with pytest.raises(UserError, match="several runs or phases"):
        checkpoint_paths([tmp_path])


def test_folder_skips_best_copy_and_leftover_temporaries(model, tmp_path):
    two_checkpoints(model, tmp_path)
    shutil.copy(tmp_path / "ckpt_pretrain_step20.ckpt", tmp_path / "ckpt_pretrain_best.ckpt")
    shutil.copy(tmp_path / "ckpt_pretrain_step20.ckpt", tmp_path / ".ckpt_pretrain_step30.ckpt")  # hidden
    (tmp_path / ".ckpt_pretrain_step40.ckpt.123.abcdefgh.tmp").mkdir()
    paths = checkpoint_paths([tmp_path])
    assert [p.name for p in paths] == ["ckpt_pretrain_step10.ckpt", "ckpt_pretrain_step20.ckpt"]


def test_the_same_weights_twice_are_refused(model, tmp_path):
    two_checkpoints(model, tmp_path)
    shutil.copy(tmp_path / "ckpt_pretrain_step20.ckpt", tmp_path / "ckpt_pretrain_best.ckpt")
    with pytest.raises(UserError, match="same weights as .*step20"):
        average_checkpoints([tmp_path / "ckpt_pretrain_step20.ckpt", tmp_path / "ckpt_pretrain_best.ckpt"])


def test_integer_and_half_parameters_keep_their_dtype(tmp_path):
    write_ckpt(tmp_path / "a.ckpt", {"counts": np.array([1, 2, 3], np.int32), "w": np.array([1.0, 2.0], np.float16)})
    write_ckpt(tmp_path / "b.ckpt", {"counts": np.array([3, 4, 5], np.int32), "w": np.array([2.0, 4.0], np.float16)})
    averaged = average_checkpoints([tmp_path / "a.ckpt", tmp_path / "b.ckpt"])
    assert averaged["counts"].dtype == np.int32
    np.testing.assert_array_equal(averaged["counts"], [2, 3, 4])
    assert averaged["w"].dtype == np.float16
    np.testing.assert_array_equal(averaged["w"], np.array([1.5, 3.0], np.float16))


def test_mismatched_keys_or_shapes_are_refused(tmp_path):
    write_ckpt(tmp_path / "a.ckpt", {"x": np.zeros(3, np.float32), "y": np.zeros((2, 2), np.float32)})
    write_ckpt(tmp_path / "b.ckpt", {"x": np.zeros(3, np.float32), "z": np.zeros((2, 2), np.float32)})
    write_ckpt(tmp_path / "c.ckpt", {"x": np.zeros(4, np.float32), "y": np.zeros((2, 2), np.float32)})
    with pytest.raises(UserError, match="only in .*a.ckpt: y; only in .*b.ckpt: z"):
        average_checkpoints([tmp_path / "a.ckpt", tmp_path / "b.ckpt"])
    with pytest.raises(UserError, match=r"shapes differ.*x \(4,\) != \(3,\)"):
        average_checkpoints([tmp_path / "a.ckpt", tmp_path / "c.ckpt"])


def test_optimizer_entries_do_not_count_as_a_key_mismatch(tmp_path):
    write_ckpt(tmp_path / "a.ckpt", {"x": np.ones(2, np.float32), "moment1.x": np.ones(2, np.float32)})
    write_ckpt(tmp_path / "b.ckpt", {"x": np.full(2, 3.0, np.float32), "moments.x": np.ones(2, np.float32)})
    assert set(average_checkpoints([tmp_path / "a.ckpt", tmp_path / "b.ckpt"])) == {"x"}


@pytest.mark.parametrize("skip", [(r"^decoder_layers\.", r"^decoder_norm\."), (r"\.cross_attention\.",)])
def test_skipped_parameters_keep_their_fresh_values(model, tmp_path, skip):
    fresh = {p.name: p.asnumpy().copy() for p in model.get_parameters()}
    trained = random_params(model, 5)
    path = save_npz(tmp_path / "trained", trained)
    assert load_model_weights(model, path, skip=skip) == []
    skipped = [n for n in fresh if any(re.search(s, n) for s in skip)]
    assert skipped and len(skipped) < len(fresh)
    for p in model.get_parameters():
        np.testing.assert_array_equal(p.asnumpy(), fresh[p.name] if p.name in skipped else trained[p.name])
    with pytest.raises(UserError, match="matches no model parameter"):
        load_model_weights(model, path, skip=("^nothing$",))


def test_npz_loads_back_into_the_model_with_nothing_missing(model, tmp_path):
    a, b = two_checkpoints(model, tmp_path)
    path = save_npz(tmp_path / "out" / "average", average_checkpoints(sorted(tmp_path.glob("*.ckpt"))))
    assert path.name == "average.npz" and path.is_file()
    assert not [p for p in path.parent.iterdir() if p != path]  # no temporary file left behind
    assert load_model_weights(model, path) == []  # every model parameter present, nothing extra
    for p in model.get_parameters():
        np.testing.assert_array_equal(p.asnumpy(), exact_mean(a[p.name], b[p.name]))


def test_last_step_checkpoints_orders_by_step_number(tmp_path):
    for step in (5, 10, 100):
        write_ckpt(tmp_path / f"ckpt_pretrain_step{step}.ckpt", {"x": np.full(2, step, np.float32)})
    write_ckpt(tmp_path / "ckpt_pretrain_best.ckpt", {"x": np.zeros(2, np.float32)})
    assert [p.name for p in last_step_checkpoints(tmp_path, 2)] == ["ckpt_pretrain_step10.ckpt",
                                                                     "ckpt_pretrain_step100.ckpt"]
    write_ckpt(tmp_path / "ckpt_finetune_step7.ckpt", {"x": np.zeros(2, np.float32)})
    with pytest.raises(UserError, match="several runs or phases"):
        last_step_checkpoints(tmp_path, 2)


# --- weights_average.py ------------------------------------------------------------------------------------


def test_weights_average_main_end_to_end(model, tmp_path):
    folder = tmp_path / "ckpts"
    a, b = two_checkpoints(model, folder)
    write_ckpt(folder / "ckpt_pretrain_step5.ckpt", random_params(model, 3))
    (folder / "ckpt_pretrain-graph.meta").write_bytes(b"meta")
    weights_average.main(["--input_folder", str(folder), "--last", "2", "--output_file", str(tmp_path / "avg")])
    averaged = read_weights(tmp_path / "avg.npz")
    assert set(averaged) == set(a)
    np.testing.assert_array_equal(averaged["embedding.table"], exact_mean(a["embedding.table"], b["embedding.table"]))

    files = f"{folder / 'ckpt_pretrain_step10.ckpt'},{folder / 'ckpt_pretrain_step20.ckpt'}"
    weights_average.main(["--input_files", files, "--output_file", str(tmp_path / "files.npz")])
    np.testing.assert_array_equal(read_weights(tmp_path / "files.npz")["decoder_norm.gamma"],
                                  exact_mean(a["decoder_norm.gamma"], b["decoder_norm.gamma"]))


def test_weights_average_bad_input_exits_2_without_traceback(tmp_path, capsys):
    (tmp_path / "only.meta").write_bytes(b"meta")
    status = run_cli(weights_average.main, ["--input_folder", str(tmp_path), "--output_file", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert status == 2
    assert "error: no <prefix>_step<N>.ckpt file" in err and "Traceback" not in err
    (tmp_path / "broken_step1.ckpt").write_bytes(b"not a checkpoint")
    assert run_cli(weights_average.main, ["--input_folder", str(tmp_path), "--output_file", str(tmp_path / "o")]) == 2
    assert "not a readable MindSpore checkpoint" in capsys.readouterr().err
    assert not (tmp_path / "o.npz").exists()


# --- export.py ---------------------------------------------------------------------------------------------


def test_only_mindir_is_accepted():
    assert check_format("mindir") == "MINDIR"
    for name in ("AIR", "ONNX"):
        with pytest.raises(UserError, match="only MINDIR"):
            check_format(name)


def test_export_rejects_air_before_loading_anything(tmp_path, capsys):
    argv = ["--ckpt_file", str(tmp_path / "missing.ckpt"), "--file_format", "AIR"]
    assert run_cli(export.main, argv) == 2
    assert "only MINDIR" in capsys.readouterr().err


@pytest.fixture
def restore_pynative():
    yield
    ms.set_context(mode=ms.PYNATIVE_MODE)  # export.main switches to graph mode


def test_exported_mindir_runs_on_cpu_like_the_python_model(tiny_model_config, tmp_path, restore_pynative):
    model = MassTransformer(tiny_model_config)
    weights = decoding_weights(model)
    write_ckpt(tmp_path / "model.ckpt", {**weights, **optimizer_entries(weights, 7)})
    config = MassConfig().override([f"--model_config.{k}={v}" for k, v in {
        "vocab_size": "null", "hidden_size": 16, "num_hidden_layers": 2, "num_decoder_layers": 2,
        "num_attention_heads": 2, "intermediate_size": 32, "compute_type": "float32"}.items()])
    config.to_json(tmp_path / "config.json")
    steps, seq_length = 8, 16
    export.main(["--config", str(tmp_path / "config.json"), "--ckpt_file", str(tmp_path / "model.ckpt"),
                 "--file_name", str(tmp_path / "mass"), "--batch_size", "2", "--seq_length", str(seq_length),
                 "--max_decode_length", str(steps)])
    assert (tmp_path / "mass.mindir").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "mass.mindir", "model.ckpt"]

    rng = np.random.default_rng(0)
    src = rng.integers(5, tiny_model_config.vocab_size, (2, seq_length)).astype(np.int32)  # (batch, src_len)
    src[0, -1], src[1, 9], src[1, 10:] = EOS_ID, EOS_ID, PAD_ID
    graph = nn.GraphCell(ms.load(str(tmp_path / "mass.mindir")))
    exported = graph(Tensor(src)).asnumpy()  # (batch, steps)
    assert exported.shape == (2, steps) and exported.dtype == np.int32
    assert (exported == EOS_ID).sum(axis=1).tolist() == [1, 1]  # the test covers <pad> after </s>
    assert (exported[:, 0] != EOS_ID).all()

    ms.set_context(mode=ms.PYNATIVE_MODE)
    load_model_weights(model, tmp_path / "model.ckpt")
    model.set_train(False)
    np.testing.assert_array_equal(exported, GreedyDecoder(model, steps)(Tensor(src)).asnumpy())
    # greedy decoding is beam search with one beam: the tokens up to </s>, then <pad>
    for row, hyps in zip(exported, generate(model, src, SearchSettings(beam_size=1, max_len_b=steps)),
                         strict=True):
        tokens = hyps[0].tokens
        assert row[:len(tokens)].tolist() == tokens and (row[len(tokens):] == PAD_ID).all()
