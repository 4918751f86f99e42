"""scripts/tune_decoding.py: every grid row equals eval.py on the same validation pairs with the same decoding
(a separate code path: references read from the raw file, hypotheses through MassGenerator), an averaged
model equals eval.py on weights_average.py's .npz, and a second run keeps what was measured."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

import eval as eval_script
import gigaword
import weights_average
from config.config import MassConfig
from src.transformer.transformer import MassTransformer
from src.utils.checkpoint import parameter_entries, save_checkpoint
from src.utils.cli import run_cli
from tests.helpers import random_sentences, vocab_for, write_lines

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import tune_decoding  # noqa: E402

N_VALID = 10


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    d = tmp_path_factory.mktemp("tune")
    arts = random_sentences(N_VALID, seed=21, min_words=4, max_words=10)
    titles = random_sentences(N_VALID, seed=22, min_words=2, max_words=5)
    write_lines(d / "valid.article.txt", arts)
    write_lines(d / "valid.title.txt", titles)
    vocab = vocab_for(arts + titles, d / "vocab.txt")
    assert gigaword.main(["--valid_src", str(d / "valid.article.txt"), "--valid_ref", str(d / "valid.title.txt"),
                          "--existed_vocab", str(d / "vocab.txt"), "--output_folder", str(d)]) == 0
    cfg = MassConfig.from_json("config/tiny.json").override([
        f"--model_config.vocab_size={len(vocab)}", "--model_config.hidden_size=16",
        "--model_config.intermediate_size=32", "--model_config.hidden_dropout_prob=0.0",
        "--model_config.attention_dropout_prob=0.0", "--model_config.compute_type=float32",
        f"--model_config.vocab_sha256={vocab.digest()}",
        "--dataset_config.batch_size=4", "--decode_config.max_decode_length_b=8"])
    ckpts = []
    for seed in (1, 2):
        model = MassTransformer(cfg.model_config)
        rng = np.random.default_rng(seed)
        for p in model.get_parameters():
            p.set_data(p.data.__class__(rng.normal(0, 0.5, p.shape).astype(np.float32)))
        folder = d / "run" / "checkpoints"
        ckpts.append(save_checkpoint(folder / f"ckpt_finetune_step{seed}.ckpt", parameter_entries(model),
                                     {"config_json": cfg.to_json_text(), "phase": "finetune", "step": seed}))
    cfg.to_json(d / "config.json")
    return d, ckpts


def eval_rouge(d, checkpoint, *extra) -> dict:
    out = d / "eval" / f"{Path(checkpoint).stem}_{len(extra)}.txt"
    assert eval_script.main(["--checkpoint", str(checkpoint), "--pynative", "--test_dataset",
                             str(d / "gigaword_valid.mindrecord"), "--test_ref", str(d / "valid.title.txt"),
                             "--tokenized_output", "--output", str(out), *extra]) == 0
    return json.loads(out.with_name(out.name + ".report.json").read_text())


def test_rows_equal_eval_py_with_the_same_decoding(setup, capsys):
    d, ckpts = setup
    out = d / "sweep"
    assert run_cli(tune_decoding.main, ["--model", str(ckpts[0]), "--dataset", str(d / "gigaword_valid.mindrecord"),
                                        "--beam", "1,3", "--length_penalty", "0.6,2.0", "--min_len", "0,3",
                                        "--output", str(out)]) == 0
    rows = json.loads((d / "sweep.json").read_text())
    assert len(rows) == 8 and all(r["pairs"] == N_VALID for r in rows)
    assert "best by mean ROUGE-1/2/L" in capsys.readouterr().out.splitlines()[-1]
    for row in (rows[0], rows[-1]):  # beam 1 lp 0.6 min 0; beam 3 lp 2.0 min 3
        report = eval_rouge(d, ckpts[0], f"--decode_config.beam_width={row['beam_size']}",
                            f"--decode_config.length_penalty_weight={row['length_penalty']}",
                            f"--decode_config.min_decode_length={row['min_len']}")
        for key in ("rouge1", "rouge2", "rougeL"):
            assert row[key] == pytest.approx(report["rouge"][key], abs=1e-9)
        assert row["hyp_words"] == pytest.approx(report["copy"]["hypothesis_words"])
    assert rows[-1]["hyp_words"] >= 3  # the minimum length was applied


def test_an_averaged_model_equals_eval_py_on_the_weights_average_npz(setup):
    d, ckpts = setup
    spec = f"{ckpts[0]}+{ckpts[1]}"
    assert run_cli(tune_decoding.main, ["--model", spec, "--dataset", str(d / "gigaword_valid.mindrecord"),
                                        "--output", str(d / "avg")]) == 0
    row = json.loads((d / "avg.json").read_text())[0]
    assert run_cli(weights_average.main, ["--input_files", f"{ckpts[0]},{ckpts[1]}", "--output_file",
                                          str(d / "avg_weights.npz")]) == 0
    report = eval_rouge(d, d / "avg_weights.npz", "--config", str(d / "config.json"))
    assert row["model"] == spec and row["rouge1"] == pytest.approx(report["rouge"]["rouge1"], abs=1e-9)
    figures = ("rouge1", "rouge2", "rougeL", "hyp_words", "copy_rate")
    for ckpt in ckpts:  # the average is neither of its inputs
        assert run_cli(tune_decoding.main, ["--model", str(ckpt), "--dataset", str(d / "gigaword_valid.mindrecord"),
                                            "--output", str(d / "avg")]) == 0
    rows = json.loads((d / "avg.json").read_text())
    assert len(rows) == 3 and len({tuple(r[k] for k in figures) for r in rows}) == 3


def test_a_second_run_keeps_measured_rows_and_bad_input_exits_2(setup, capsys):
    d, ckpts = setup
    args = ["--model", str(ckpts[1]), "--dataset", str(d / "gigaword_valid.mindrecord"), "--lines", "4",
            "--output", str(d / "again")]
    assert run_cli(tune_decoding.main, [*args, "--beam", "2"]) == 0
    first = json.loads((d / "again.json").read_text())
    assert run_cli(tune_decoding.main, [*args, "--beam", "2,3"]) == 0
    rows = json.loads((d / "again.json").read_text())
    assert rows[0] == first[0] and [r["beam_size"] for r in rows] == [2, 3]
    capsys.readouterr()
    assert run_cli(tune_decoding.main, [*args[:-1], str(d / "missing" / "x"), "--model", str(d / "nope.ckpt")]) == 2
    err = capsys.readouterr().err
    assert "nope.ckpt" in err and "Traceback" not in err
    with pytest.raises(SystemExit) as stop:
        tune_decoding.main([*args, "--beam", "0"])
    assert stop.value.code == 2


def test_the_ngram_ban_is_a_grid_axis_equal_to_eval_py(setup):
    d, ckpts = setup
    out = d / "ngram"
    args = ["--model", str(ckpts[0]), "--dataset", str(d / "gigaword_valid.mindrecord"), "--beam", "3",
            "--output", str(out)]
    assert run_cli(tune_decoding.main, [*args, "--no_repeat_ngram", "0,1"]) == 0
    rows = json.loads((d / "ngram.json").read_text())
    assert [r["no_repeat_ngram_size"] for r in rows] == [0, 1]
    report = eval_rouge(d, ckpts[0], "--decode_config.beam_width=3", "--decode_config.no_repeat_ngram_size=1")
    assert rows[1]["rouge1"] == pytest.approx(report["rouge"]["rouge1"], abs=1e-9)
    hypotheses = (d / "eval" / f"{Path(ckpts[0]).stem}_2.txt").read_text().split("\n")
    assert any(hypotheses) and all(len(set(h.split())) == len(h.split()) for h in hypotheses)  # no word twice
    # the random model repeats words when nothing forbids it: the ban changed what was decoded
    assert (rows[0]["rouge1"], rows[0]["hyp_words"]) != (rows[1]["rouge1"], rows[1]["hyp_words"])
    # a row written before the ban was an axis (no such key) counts as "no ban" when the sweep is run again
    for row in rows:
        row.pop("no_repeat_ngram_size") if row["no_repeat_ngram_size"] == 0 else None
    (d / "ngram.json").write_text(json.dumps(rows))
    assert run_cli(tune_decoding.main, [*args, "--no_repeat_ngram", "0,1,2"]) == 0
    assert [r.get("no_repeat_ngram_size", 0) for r in json.loads((d / "ngram.json").read_text())] == [0, 1, 2]
