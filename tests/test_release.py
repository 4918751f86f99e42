"""Released models (src/utils/release.py, scripts/release_model.py) and averaging the best checkpoints by
validation score (weights_average.py --best)."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from mindspore import Tensor

import weights_average
from config.config import MassConfig
from src.text.dictionary import Dictionary
from src.transformer.transformer import MassTransformer
from src.utils.checkpoint import is_model_param, read_weights, save_checkpoint
from src.utils.cli import run_cli
from src.utils.errors import UserError
from src.utils.release import MANIFEST, read_manifest, release_of, verify_release

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import release_model  # noqa: E402


def tiny_config(vocab_sha256=None) -> MassConfig:
    return MassConfig().override([
        "--model_config.vocab_size=20", "--model_config.hidden_size=8", "--model_config.num_hidden_layers=1",
        "--model_config.num_decoder_layers=1", "--model_config.num_attention_heads=2",
        "--model_config.intermediate_size=16", "--dataset_config.max_len=16", "--dataset_config.max_tgt_len=16",
        "--dataset_config.bucket_boundaries=[]",
        "--model_config.max_position_embeddings=16",
        "--dataset_config.pre_train_dataset=/somewhere/news.mindrecord",
        *([f"--model_config.vocab_sha256={vocab_sha256}"] if vocab_sha256 else [])])


def vocabulary(tmp_path) -> Dictionary:
    vocab = Dictionary.from_counts({f"w{i}": 20 - i for i in range(15)})
    vocab.persistence(tmp_path / "vocab.txt")
    (tmp_path / "codes").write_text("#version: 0.2\nw 1\n")
    return vocab


def params(cfg, seed=0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    model = MassTransformer(cfg.model_config)
    return {p.name: rng.normal(size=p.shape).astype(np.float32) for p in model.get_parameters()}


def write_ckpt(path, arrays, cfg, step=700, valid_loss=3.5):
    entries = [{"name": n, "data": Tensor(v)} for n, v in arrays.items()]
    entries += [{"name": f"moment1.{n}", "data": Tensor(np.zeros_like(v))} for n, v in arrays.items()]
    state = {"phase": "pretrain", "epoch": 0, "batch_in_epoch": step, "step": step, "valid_loss": valid_loss,
             "config_json": cfg.to_json_text()}
    return save_checkpoint(path, entries, state)


@pytest.fixture
def release(tmp_path):
    vocab = vocabulary(tmp_path)
    cfg = tiny_config(vocab.digest())
    weights = params(cfg)
    ckpt = write_ckpt(tmp_path / "ckpt_pretrain_step700.ckpt", weights, cfg)
    out = tmp_path / "models" / "tiny"
    assert run_cli(release_model.main, ["--checkpoint", str(ckpt), "--vocab", str(tmp_path / "vocab.txt"),
                                        "--codes", str(tmp_path / "codes"), "--data", "random",
                                        "--output", str(out)]) == 0
    return out, weights, cfg


def test_release_holds_the_model_weights_its_text_files_and_a_manifest(release):
    out, weights, cfg = release
    manifest = verify_release(out)
    assert sorted(manifest["files"]) == ["bpe.codes", "config.json", "vocab.txt", "weights.npz"]
    loaded = read_weights(out / "weights.npz")
    assert set(loaded) == set(weights) and all(is_model_param(n) for n in loaded)  # no optimizer moments
    for name, value in weights.items():
        np.testing.assert_array_equal(loaded[name], value)
    assert manifest["pretraining"]["steps"] == 700 and manifest["pretraining"]["valid_loss"] == 3.5
    assert manifest["objective"]["mask_config"]["replace_probs"] == list(cfg.mask_config.replace_probs)
    assert manifest["parameters"] == sum(v.size for v in weights.values())
    stored = json.loads((out / "config.json").read_text())
    assert stored["dataset_config"]["pre_train_dataset"] == ""  # nothing of the training machine
    assert stored["model_config"]["hidden_size"] == 8
    assert release_of(out / "weights.npz") == out
    assert not list(out.parent.glob(".*tmp*"))


@pytest.mark.parametrize("damage", ["flip", "truncate", "extend"])
def test_a_damaged_weights_file_is_refused(release, damage):
    out, _, _ = release
    path = out / "weights.npz"
    data = bytearray(path.read_bytes())
    if damage == "flip":  # same size, one byte inside an array changed
        data[len(data) // 2] ^= 0x01
    elif damage == "truncate":
        data = data[:-10]
    else:
        data += b"\0"
    path.write_bytes(bytes(data))
    with pytest.raises(UserError, match="weights.npz.*(sha256|bytes)"):
        read_weights(path)
    with pytest.raises(UserError):
        verify_release(out)


def test_a_damaged_vocabulary_or_a_foreign_manifest_is_refused(release):
    out, _, _ = release
    vocab = out / "vocab.txt"
    text = vocab.read_text()
    vocab.write_text(text.replace("w1\t", "w7\t", 1))  # same size, other words
    with pytest.raises(UserError, match="vocab.txt: sha256 differs"):
        verify_release(out)
    manifest = json.loads((out / MANIFEST).read_text())
    (out / MANIFEST).write_text(json.dumps({**manifest, "format": "someone-else/2"}))
    with pytest.raises(UserError, match="format 'someone-else/2'"):
        read_manifest(out)
    (out / MANIFEST).write_text("not json")
    with pytest.raises(UserError, match="not a release manifest"):
        read_manifest(out)


def test_release_refuses_nan_weights_an_existing_folder_and_a_foreign_vocabulary(tmp_path, capsys):
    vocab = vocabulary(tmp_path)
    cfg = tiny_config(vocab.digest())
    weights = params(cfg)
    weights["embedding.table"][3, 2] = np.nan
    ckpt = write_ckpt(tmp_path / "nan_step1.ckpt", weights, cfg)
    args = ["--checkpoint", str(ckpt), "--vocab", str(tmp_path / "vocab.txt"), "--codes", str(tmp_path / "codes")]
    assert run_cli(release_model.main, [*args, "--output", str(tmp_path / "r1")]) == 2
    err = capsys.readouterr().err
    assert "NaN or Inf" in err and "Traceback" not in err and not (tmp_path / "r1").exists()

    good = write_ckpt(tmp_path / "good_step1.ckpt", params(cfg), cfg)
    (tmp_path / "r2").mkdir()
    assert run_cli(release_model.main, ["--checkpoint", str(good), *args[2:], "--output", str(tmp_path / "r2")]) == 2
    assert "already exists" in capsys.readouterr().err

    other = Dictionary.from_counts({f"x{i}": 3 for i in range(15)})
    other.persistence(tmp_path / "other.txt")
    assert run_cli(release_model.main, ["--checkpoint", str(good), "--vocab", str(tmp_path / "other.txt"),
                                        "--codes", str(tmp_path / "codes"), "--output", str(tmp_path / "r3")]) == 2
    assert "not the vocabulary" in capsys.readouterr().err and not (tmp_path / "r3").exists()


def test_fp16_release_halves_the_weights_and_loads_into_the_model(tmp_path):
    vocab = vocabulary(tmp_path)
    cfg = tiny_config(vocab.digest())
    weights = params(cfg)
    ckpt = write_ckpt(tmp_path / "ckpt_pretrain_step7.ckpt", weights, cfg)
    out = tmp_path / "half"
    assert run_cli(release_model.main, ["--checkpoint", str(ckpt), "--vocab", str(tmp_path / "vocab.txt"),
                                        "--codes", str(tmp_path / "codes"), "--fp16", "--output", str(out)]) == 0
    loaded = read_weights(out / "weights.npz")
    assert all(v.dtype == np.float16 for v in loaded.values())
    np.testing.assert_allclose(loaded["embedding.table"].astype(np.float32), weights["embedding.table"], rtol=1e-3)
    from src.utils.checkpoint import load_model_weights

    model = MassTransformer(cfg.model_config)
    load_model_weights(model, out / "weights.npz")
    got = {p.name: p.asnumpy() for p in model.get_parameters()}
    assert got["embedding.table"].dtype == np.float32
    np.testing.assert_array_equal(got["embedding.table"], loaded["embedding.table"].astype(np.float32))


# --- weights_average.py --best ------------------------------------------------------------------------------


def run_with_checkpoints(tmp_path, scores, key):
    """Step checkpoints 100, 200, ... with their validation records (``key``: valid_rouge or valid_loss)."""
    cfg = tiny_config()
    folder = tmp_path / "run" / "checkpoints"
    folder.mkdir(parents=True)
    weights = {}
    records = []
    for i, score in enumerate(scores):
        step = 100 * (i + 1)
        weights[step] = params(cfg, seed=i)
        write_ckpt(folder / f"ckpt_finetune_step{step}.ckpt", weights[step], cfg, step=step)
        records.append({"phase": "finetune", "step": step, "loss": 3.0})
        records.append({"phase": "finetune", "step": step, "valid_loss": score if key == "valid_loss" else 4.0,
                        **({key: score} if key != "valid_loss" else {})})
    (tmp_path / "run" / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return folder, weights


def test_best_k_by_validation_rouge_averages_exactly_those(tmp_path):
    folder, weights = run_with_checkpoints(tmp_path, [20.0, 25.0, 22.0, 24.0], "valid_rouge")
    chosen = weights_average.best_step_checkpoints(folder, 2)
    assert [p.name for p in chosen] == ["ckpt_finetune_step200.ckpt", "ckpt_finetune_step400.ckpt"]
    out = tmp_path / "best2.npz"
    assert run_cli(weights_average.main, ["--input_folder", str(folder), "--best", "2", "--output_file",
                                          str(out)]) == 0
    expected = (weights[200]["embedding.table"].astype(np.float64) + weights[400]["embedding.table"]) / 2
    np.testing.assert_array_equal(read_weights(out)["embedding.table"], expected.astype(np.float32))


def test_best_k_by_the_metric_the_run_was_selected_by(tmp_path):
    folder, _ = run_with_checkpoints(tmp_path, [30.0, 20.0, 25.0], "valid_bleu")
    (tmp_path / "run" / "config.json").write_text(json.dumps({"checkpoint_options": {"best_by": "bleu"}}))
    assert [p.name for p in weights_average.best_step_checkpoints(folder, 2)] == [
        "ckpt_finetune_step100.ckpt", "ckpt_finetune_step300.ckpt"]
    (tmp_path / "run" / "config.json").unlink()  # the metric unknown: the loss (equal here: the oldest steps)
    assert [p.name for p in weights_average.best_step_checkpoints(folder, 2)] == [
        "ckpt_finetune_step100.ckpt", "ckpt_finetune_step200.ckpt"]


def _lower_is_better_scorer(monkeypatch):
    """A registered scorer whose lower figures are better (as TER would be), to check the direction."""
    import dataclasses

    from src.evaluation import scorers

    ter = dataclasses.replace(scorers.SCORERS["chrf"], name="ter", report_key="ter", headline="ter",
                              higher_is_better=False, figures=("ter",), criterion=lambda r: r["ter"])
    monkeypatch.setitem(scorers.SCORERS, "ter", ter)


def test_best_k_follows_the_scorers_direction(tmp_path, monkeypatch):
    _lower_is_better_scorer(monkeypatch)
    folder, _ = run_with_checkpoints(tmp_path, [30.0, 20.0, 25.0], "valid_ter")
    (tmp_path / "run" / "config.json").write_text(json.dumps({"checkpoint_options": {"best_by": "ter"}}))
    assert [p.name for p in weights_average.best_step_checkpoints(folder, 2)] == [
        "ckpt_finetune_step200.ckpt", "ckpt_finetune_step300.ckpt"]  # the two lowest


def test_the_best_criterion_round_trips_through_a_run_state_in_either_direction(monkeypatch):
    """A resumed run compares new validations with the best so far: the criterion stored in a checkpoint's
    state comes back as it went in, for the loss, a higher-is-better and a lower-is-better scorer."""
    from src.evaluation.scorers import as_loss
    from src.training.trainer import PhaseState, best_from_state

    _lower_is_better_scorer(monkeypatch)
    cfg = tiny_config()
    for best_by, figure in (("loss", 2.5), ("bleu", 30.0), ("ter", 40.0)):
        state = PhaseState(step=10).as_dict("finetune", cfg, as_loss(best_by, figure), best_by)
        assert state[f"best_valid_{best_by}"] == figure  # the figure itself, as logged
        assert best_from_state(state, best_by) == as_loss(best_by, figure)
    assert as_loss("ter", 40.0) < as_loss("ter", 50.0) and as_loss("bleu", 40.0) < as_loss("bleu", 30.0)


def test_best_k_by_loss_when_the_run_did_not_decode(tmp_path):
    folder, _ = run_with_checkpoints(tmp_path, [3.0, 2.5, 2.7], "valid_loss")
    assert [p.name for p in weights_average.best_step_checkpoints(folder, 2)] == [
        "ckpt_finetune_step200.ckpt", "ckpt_finetune_step300.ckpt"]


def test_best_k_errors(tmp_path, capsys):
    folder, _ = run_with_checkpoints(tmp_path, [20.0, 25.0], "valid_rouge")
    (tmp_path / "run" / "metrics.jsonl").write_text(json.dumps({"phase": "finetune", "step": 100,
                                                                "valid_loss": 3.0, "valid_rouge": 1.0}) + "\n")
    out = str(tmp_path / "o.npz")
    assert run_cli(weights_average.main, ["--input_folder", str(folder), "--best", "2", "--output_file", out]) == 2
    err = capsys.readouterr().err
    assert "no validation record for step 200" in err and "Traceback" not in err
    assert run_cli(weights_average.main, ["--input_folder", str(folder), "--best", "2", "--last", "2",
                                          "--output_file", out]) == 2
    assert "not both" in capsys.readouterr().err
    assert not Path(out).exists()


def test_the_releases_in_models_are_intact_and_load_into_their_config():
    from src.text.dictionary import Dictionary
    from src.utils.checkpoint import load_model_weights

    folders = sorted(p for p in (Path(__file__).resolve().parents[1] / "models").iterdir() if p.is_dir())
    assert folders, "models/ holds no release"
    for folder in folders:
        manifest = verify_release(folder)  # every byte as the manifest says
        cfg = MassConfig.from_json(folder / manifest["config"])
        vocab = Dictionary.load_from_persisted_dict(folder / manifest["vocab"])
        assert cfg.model_config.vocab_size == len(vocab) and cfg.model_config.vocab_sha256 == vocab.digest()
        model = MassTransformer(cfg.model_config)
        load_model_weights(model, folder / manifest["weights"])  # every parameter present, every shape right
        assert manifest["parameters"] == sum(int(np.prod(p.shape)) for p in model.get_parameters())
