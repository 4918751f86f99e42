"""train.py end to end (in subprocesses, as users run it): phases, metrics, checkpoints, resume that
continues exactly, clean stop on SIGTERM through the launcher scripts, config errors."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import gigaword
from src.training.metrics_log import read_metrics
from tests.helpers import news_corpus, write_lines

pytestmark = pytest.mark.slow  # end to end: trains models in subprocesses

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "GLOG_v": "3", "PYTHONPATH": str(ROOT)}
# a tiny, deterministic model: dropout off (its random state is not part of a checkpoint)
TINY = ["--model_config.hidden_size=16", "--model_config.intermediate_size=32",
        "--model_config.hidden_dropout_prob=0.0", "--model_config.attention_dropout_prob=0.0",
        "--dataset_config.batch_size=8", "--dataset_config.bucket_boundaries=[]",
        "--dataset_config.num_parallel_workers=1", "--checkpoint_options.log_every_steps=1",
        "--learn_rate_config.warmup_steps=2"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("train_data")
    lines = news_corpus(d, 80, seed=1, valid_every=8)
    write_lines(d / "a.txt", lines[:40])
    write_lines(d / "t.txt", [" ".join(s.split()[:3]) for s in lines[:40]])
    assert gigaword.main(["--train_src", str(d / "a.txt"), "--train_ref", str(d / "t.txt"),
                          "--existed_vocab", str(d / "vocab.txt"), "--output_folder", str(d)]) == 0
    return d


def train(data, out, *extra, expect=0):
    cmd = [sys.executable, str(ROOT / "train.py"), "--config", str(ROOT / "config/tiny.json"), "--output", str(out),
           f"--dataset_config.pre_train_dataset={data / 'news_crawl_len_16.mindrecord'}", *TINY, *extra]
    proc = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=600)
    assert proc.returncode == expect, proc.stderr[-3000:]
    return proc


def losses(out, phase="pretrain"):
    records = read_metrics(out / "metrics.jsonl")
    return {r["step"]: r["loss"] for r in records if r.get("phase") == phase and "loss" in r}


def test_pretrain_then_finetune_writes_metrics_config_and_checkpoints(data, tmp_path):
    out = tmp_path / "run"
    train(data, out, f"--dataset_config.fine_tune_dataset={data / 'gigaword_train.mindrecord'}",
          f"--dataset_config.valid_dataset={data / 'news_crawl_len_16_valid.mindrecord'}",
          "--dataset_config.epochs=2", "--checkpoint_options.eval_every_steps=0")
    saved = json.loads((out / "config.json").read_text())
    assert saved["model_config"]["vocab_size"] > 5  # filled in from the dataset manifest
    records = read_metrics(out / "metrics.jsonl")
    pre = [r for r in records if r.get("phase") == "pretrain" and "loss" in r]
    fine = [r for r in records if r.get("phase") == "finetune" and "loss" in r]
    valid = [r for r in records if "valid_loss" in r]
    assert len(pre) == 2 * 9 and len(fine) == 2 * 5       # 72 / 8 -> 9 batches, 40 / 8 -> 5 per epoch
    assert [r["step"] for r in pre] == list(range(1, 19))
    assert len(valid) == 2 and all(r["valid_ppl"] > 1 for r in valid)  # end of each pre-training epoch
    assert pre[1]["lr"] > pre[0]["lr"]                       # warm-up
    ckpts = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert "ckpt_pretrain_step18.ckpt" in ckpts and "ckpt_finetune_step10.ckpt" in ckpts
    assert "ckpt_pretrain_best.ckpt" in ckpts


def test_dynamic_shapes_from_the_config_train_like_one_graph_per_shape(data, tmp_path):
    """dynamic_shapes=true (one graph for all shapes) and max_static_shapes=1 (the first shape's own
    graph, the others through the dynamic one) train like a graph per shape."""
    runs = {}
    for option in ("dynamic_shapes=false", "dynamic_shapes=true", "max_static_shapes=1"):
        out = tmp_path / option.replace("=", "_")
        proc = train(data, out, f"--dataset_config.{option}", "--dataset_config.epochs=1")
        log = proc.stderr + (out / "train.log").read_text()
        assert ("compiled once, with dynamic batch shapes" in log) == (option == "dynamic_shapes=true")
        assert ("past the first 1 shapes" in log) == (option == "max_static_shapes=1")
        runs[option] = losses(out)
    default = runs["dynamic_shapes=false"]
    assert len(default) == 9 and len({round(v, 4) for v in default.values()}) > 1
    assert runs["dynamic_shapes=true"] == pytest.approx(default, rel=1e-4)
    assert runs["max_static_shapes=1"] == pytest.approx(default, rel=1e-4)


def test_resume_continues_exactly(data, tmp_path):
    straight, split = tmp_path / "straight", tmp_path / "split"
    train(data, straight, "--dataset_config.epochs=2")
    train(data, split, "--dataset_config.epochs=2", "--max_steps=7")   # stops mid-epoch (9 batches)
    assert sorted(losses(split)) == list(range(1, 8))
    train(data, split, "--dataset_config.epochs=2", "--resume=auto")
    expected, got = losses(straight), losses(split)
    assert sorted(got) == sorted(expected) == list(range(1, 19))
    for step in range(1, 19):
        assert got[step] == pytest.approx(expected[step], rel=1e-5, abs=1e-6), step


def test_train_py_trains_with_the_configs_dropout(data, tmp_path):
    """The model's dropout is active in train.py's steps (until 2026-12-08 it never was): the same seed
    and batches give other losses with dropout 0.3 than with 0, and the same losses twice with 0.3."""
    runs = {}
    for name, p in (("off", 0.0), ("on", 0.3), ("on_again", 0.3)):
        train(data, tmp_path / name, "--max_steps=3", f"--model_config.hidden_dropout_prob={p}",
              f"--model_config.attention_dropout_prob={p}")
        runs[name] = losses(tmp_path / name)
    assert sorted(runs["off"]) == sorted(runs["on"]) == [1, 2, 3]
    assert all(abs(runs["on"][s] - runs["off"][s]) > 1e-3 for s in (1, 2, 3))
    assert runs["on"] == runs["on_again"]


def test_mixed_pairs_take_their_share_of_steps_and_resume_exactly(data, tmp_path):
    mix = [f"--dataset_config.mix_dataset={data / 'gigaword_train.mindrecord'}", "--dataset_config.mix_ratio=0.4",
           "--dataset_config.mix_from_step=2", "--dataset_config.epochs=2"]
    straight, split = tmp_path / "straight", tmp_path / "split"
    train(data, straight, *mix)
    records = [r for r in read_metrics(straight / "metrics.jsonl") if "loss" in r]
    # steps 0..s-1 of the epochs' 18 own batches plus the mixed ones: step s mixes when floor((s+1)0.4) > floor(0.4s)
    total = len(records)
    due = [s for s in range(total) if s >= 2 and int((s + 1) * 0.4) > int(s * 0.4)]
    assert sum(r["mixed_steps"] for r in records) == len(due) and total == 18 + len(due)
    train(data, split, *mix, "--max_steps=9")
    train(data, split, *mix, "--resume=auto")
    expected, got = losses(straight), losses(split)
    assert sorted(got) == sorted(expected) == list(range(1, total + 1))
    for step in expected:
        assert got[step] == pytest.approx(expected[step], rel=1e-5, abs=1e-6), step


def test_existed_ckpt_initialises_the_model(data, tmp_path):
    first = tmp_path / "first"
    train(data, first, "--max_steps=3")
    ckpt = first / "checkpoints" / "ckpt_pretrain_step3.ckpt"
    second = tmp_path / "second"
    train(data, second, "--max_steps=1", f"--checkpoint_options.existed_ckpt={ckpt}")
    fresh = tmp_path / "fresh"
    train(data, fresh, "--max_steps=1")
    assert losses(second)[1] < losses(fresh)[1]  # starts from the trained weights


def test_config_errors_are_reported_without_traceback(data, tmp_path):
    proc = train(data, tmp_path / "x", "--model_config.hidden_sise=8", expect=2)
    assert "hidden_sise" in proc.stderr and "Traceback" not in proc.stderr
    proc = train(data, tmp_path / "x", "--dataset_config.batch_size=\"8\"", expect=2)
    assert "batch_size" in proc.stderr and "Traceback" not in proc.stderr
    proc = train(data, tmp_path / "x", "--bogus", expect=2)
    assert "unrecognized arguments: --bogus" in proc.stderr


def test_launcher_and_stop_training_write_a_final_checkpoint(data, tmp_path):
    out = tmp_path / "run"
    cmd = ["bash", str(ROOT / "scripts/run_cpu.sh"), "-t", "t", "-c", str(ROOT / "config/tiny.json"), "-o", str(out),
           "--", f"--dataset_config.pre_train_dataset={data / 'news_crawl_len_16.mindrecord'}", *TINY,
           "--dataset_config.epochs=1000"]
    job = subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 300
        while time.time() < deadline and not (out / "metrics.jsonl").exists():
            time.sleep(0.5)
        assert (out / "train.pid").exists()
        stop = subprocess.run(["bash", str(ROOT / "scripts/stop_training.sh"), str(out), "120"], capture_output=True,
                              text=True, timeout=200)
        assert stop.returncode == 0, stop.stderr
        assert job.wait(timeout=60) == 0
    finally:
        if job.poll() is None:
            job.send_signal(signal.SIGKILL)
    last_step = max(losses(out))
    assert (out / "checkpoints" / f"ckpt_pretrain_step{last_step}.ckpt").exists()
    assert not (out / "train.pid").exists()
    bad = subprocess.run(["bash", str(ROOT / "scripts/run_cpu.sh"), "-t", "t", "--bogus"], capture_output=True,
                         text=True)
    assert bad.returncode == 2 and "unknown option --bogus" in bad.stderr


def test_best_by_rouge_keeps_the_checkpoint_with_the_best_validation_rouge(data, tmp_path):
    from src.utils.checkpoint import load_checkpoint

    out = tmp_path / "rouge"
    pairs = data / "gigaword_train.mindrecord"
    train(data, out, f"--dataset_config.fine_tune_dataset={pairs}", f"--dataset_config.valid_dataset={pairs}",
          "--dataset_config.pre_train_dataset=", "--dataset_config.epochs=3", "--checkpoint_options.eval_every_steps=5",
          "--checkpoint_options.best_by=rouge", "--checkpoint_options.valid_rouge_lines=6",
          "--learn_rate_config.lr=0.01", "--decode_config.beam_width=2", "--decode_config.max_decode_length_b=5",
          "--decode_config.min_decode_length=3")
    valid = [r for r in read_metrics(out / "metrics.jsonl") if "valid_rouge" in r]
    assert [r["step"] for r in valid] == [5, 10, 15]
    for r in valid:
        assert r["valid_rouge_pairs"] == 6
        assert r["valid_rouge"] == pytest.approx((r["valid_rouge1"] + r["valid_rouge2"] + r["valid_rougeL"]) / 3)
        assert 0.0 <= r["valid_copy_rate"] <= 1.0 and r["valid_ref_copy_rate"] == 1.0  # titles = first words
    assert max(r["valid_rouge"] for r in valid) > 0.0  # some hypothesis words are title words
    best = max(valid, key=lambda r: (r["valid_rouge"], -r["step"]))  # the first of equal scores is kept
    _, state = load_checkpoint(out / "checkpoints" / "ckpt_finetune_best.ckpt")
    assert state["step"] == best["step"] and state["valid_rouge"] == pytest.approx(best["valid_rouge"])
    _, last = load_checkpoint(out / "checkpoints" / "ckpt_finetune_step15.ckpt")
    assert last["best_valid_rouge"] == pytest.approx(best["valid_rouge"])
    # the in-loop score is what eval.py computes offline for that checkpoint on the same pairs, at the best
    # step and at the last one (whose decoding graph was compiled at the first validation, steps before)
    write_lines(tmp_path / "src6.txt", (data / "a.txt").read_text().splitlines()[:6])
    write_lines(tmp_path / "ref6.txt", (data / "t.txt").read_text().splitlines()[:6])
    by_step = {r["step"]: r for r in valid}
    for name, record in (("ckpt_finetune_best.ckpt", best), ("ckpt_finetune_step15.ckpt", by_step[15])):
        proc = subprocess.run([sys.executable, str(ROOT / "eval.py"), "--checkpoint", str(out / "checkpoints" / name),
                               "--test_src", str(tmp_path / "src6.txt"), "--test_ref", str(tmp_path / "ref6.txt"),
                               "--vocab", str(data / "vocab.txt"), "--tokenized_output",
                               "--output", str(tmp_path / f"{name}.txt")],
                              env=ENV, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
        offline = json.loads((tmp_path / f"{name}.txt.report.json").read_text())["rouge"]
        for key in ("rouge1", "rouge2", "rougeL"):
            assert offline[key] == pytest.approx(record[f"valid_{key}"], abs=1e-9), (name, key)


def test_best_by_names_any_scorer_and_its_in_loop_score_is_what_eval_computes(data, tmp_path):
    from src.utils.checkpoint import load_checkpoint

    out = tmp_path / "chrf"
    pairs = data / "gigaword_train.mindrecord"
    train(data, out, f"--dataset_config.fine_tune_dataset={pairs}", f"--dataset_config.valid_dataset={pairs}",
          "--dataset_config.pre_train_dataset=", "--dataset_config.epochs=2", "--checkpoint_options.eval_every_steps=5",
          "--checkpoint_options.best_by=chrf", "--checkpoint_options.valid_rouge_lines=6",
          "--learn_rate_config.lr=0.01", "--decode_config.beam_width=2", "--decode_config.max_decode_length_b=5",
          "--decode_config.min_decode_length=3")
    valid = [r for r in read_metrics(out / "metrics.jsonl") if "valid_chrf" in r]
    assert [r["step"] for r in valid] == [5, 10] and all(r["valid_chrf_pairs"] == 6 for r in valid)
    assert not any("valid_rouge" in r for r in valid)
    assert max(r["valid_chrf"] for r in valid) > 0.0
    best = max(valid, key=lambda r: (r["valid_chrf"], -r["step"]))  # the first of equal scores is kept
    _, state = load_checkpoint(out / "checkpoints" / "ckpt_finetune_best.ckpt")
    assert state["step"] == best["step"] and state["valid_chrf"] == pytest.approx(best["valid_chrf"])
    _, last = load_checkpoint(out / "checkpoints" / "ckpt_finetune_step10.ckpt")
    assert last["best_valid_chrf"] == pytest.approx(best["valid_chrf"])
    write_lines(tmp_path / "src6.txt", (data / "a.txt").read_text().splitlines()[:6])
    write_lines(tmp_path / "ref6.txt", (data / "t.txt").read_text().splitlines()[:6])
    proc = subprocess.run([sys.executable, str(ROOT / "eval.py"), "--checkpoint",
                           str(out / "checkpoints" / "ckpt_finetune_best.ckpt"), "--metric", "chrf",
                           "--test_src", str(tmp_path / "src6.txt"), "--test_ref", str(tmp_path / "ref6.txt"),
                           "--vocab", str(data / "vocab.txt"), "--tokenized_output",
                           "--output", str(tmp_path / "h.txt")],
                          env=ENV, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    offline = json.loads((tmp_path / "h.txt.report.json").read_text())["chrf"]
    assert offline["chrf"] == pytest.approx(best["valid_chrf"], abs=1e-9)
    # a metric nobody registered is refused before training
    proc = train(data, tmp_path / "bad", f"--dataset_config.fine_tune_dataset={pairs}",
                 "--dataset_config.pre_train_dataset=", "--checkpoint_options.best_by=meteor", expect=2)
    assert "checkpoint_options.best_by: unknown 'meteor'; choose from loss, rouge" in proc.stderr
    assert "Traceback" not in proc.stderr
