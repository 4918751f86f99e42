"""After a crash: temporaries never look like results and the next writer removes them; workers die with
their parent; a killed dataset build publishes nothing; a killed training resumes exactly and leaves
nothing behind; a resumed run lists each step once; a finished run resumes to "nothing to do"."""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import news_crawl
from src.training.metrics_log import drop_after, read_metrics
from src.utils.checkpoint import STEP_RE, read_weights, step_checkpoints
from src.utils.fileio import TEMP_RE, atomic_open, atomic_path, remove_stale_temps, temporary_dir_for
from tests.helpers import news_corpus

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "GLOG_v": "3", "PYTHONPATH": str(ROOT)}


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def leftovers(folder) -> list[str]:
    return sorted(p.name for p in Path(folder).rglob("*") if TEMP_RE.match(p.name))


# ------------------------------------------------------------------ temporaries

def test_temporaries_are_hidden_folders_that_never_look_like_results(tmp_path):
    with atomic_path(tmp_path / "ckpt_pretrain_step5.ckpt") as tmp:
        tmp.write_bytes(b"data")
        entries = list(tmp_path.iterdir())
        assert len(entries) == 1 and entries[0].is_dir() and TEMP_RE.match(entries[0].name)
        assert tmp.name == "ckpt_pretrain_step5.ckpt"        # the writer sees the final name...
        assert step_checkpoints(tmp_path) == [] and not STEP_RE.match(entries[0].name)  # ...nobody else does
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt_pretrain_step5.ckpt"]


def test_a_failed_write_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError), atomic_open(tmp_path / "out.txt") as handle:
        handle.write("half")
        raise RuntimeError("disk on fire")
    assert list(tmp_path.iterdir()) == []


def test_stale_temporaries_of_dead_writers_are_removed_live_ones_and_others_kept(tmp_path):
    dead = dead_pid()
    stale_dir = tmp_path / f".data.mindrecord.{dead}.abcd1234.tmp"
    stale_dir.mkdir()
    (stale_dir / "data.mindrecord.part00000").write_bytes(b"x")
    stale_file = tmp_path / f".vocab.txt.{dead}.zzzz9999.tmp"
    stale_file.write_text("x")
    live = temporary_dir_for(tmp_path / "model.ckpt")     # ours, this process is alive
    foreign = [tmp_path / ".hidden_notes", tmp_path / f"notes.{dead}.abcd1234.tmp", tmp_path / "result.txt"]
    for path in foreign:
        path.write_text("keep me")
    removed = remove_stale_temps(tmp_path)
    assert sorted(removed) == sorted([stale_dir, stale_file])
    assert live.is_dir() and all(p.exists() for p in foreign)


def test_the_next_write_cleans_the_folder(tmp_path):
    stale = tmp_path / f".old.ckpt.{dead_pid()}.abcd1234.tmp"
    stale.mkdir()
    with atomic_open(tmp_path / "new.txt") as handle:
        handle.write("x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new.txt"]


# ------------------------------------------------------------------ metrics after a resume

def test_resume_drops_the_abandoned_records(tmp_path):
    path = tmp_path / "metrics.jsonl"
    records = [{"phase": "pretrain", "step": s, "loss": 1.0} for s in (1, 2, 3, 4)]
    records.insert(2, {"phase": "pretrain", "step": 2, "valid_loss": 2.0})
    records.append({"phase": "finetune", "step": 1, "loss": 1.0})
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    assert drop_after(path, "pretrain", 2) == 3
    assert [(r["phase"], r["step"]) for r in read_metrics(path)] == [("pretrain", 1), ("pretrain", 2), ("pretrain", 2)]
    assert drop_after(path, "pretrain", 2) == 0


# ------------------------------------------------------------------ kill -9 of a dataset build

@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    d = tmp_path_factory.mktemp("kill_corpus")
    news_corpus(d, 6000, seed=5, min_words=4, max_words=12)
    return d


def children_of(pid) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def alive(pid) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as handle:  # a zombie is dead, only not yet reaped
        return handle.read().rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.slow
def test_killed_dataset_build_publishes_nothing_and_its_workers_die(corpus, tmp_path):
    out = tmp_path / "data"
    argv = [sys.executable, str(ROOT / "news_crawl.py"), "--src_folder", str(corpus / "bpe"), "--existed_vocab",
            str(corpus / "vocab.txt"), "--output_folder", str(out), "--processes", "2", "--max_len", "16",
            "--valid_every", "10"]
    rng = random.Random(7)
    for _ in range(3):
        proc = subprocess.Popen(argv, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 60
        while not children_of(proc.pid) and time.time() < deadline:  # the pool is up
            time.sleep(0.05)
        time.sleep(rng.uniform(0.0, 1.5))
        workers = children_of(proc.pid)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        deadline = time.time() + 10
        while any(alive(w) for w in workers) and time.time() < deadline:
            time.sleep(0.1)
        assert not any(alive(w) for w in workers), "pool workers outlived their parent"
        manifests = sorted(p.name for p in out.glob("*.manifest.json")) if out.exists() else []
        assert manifests in ([], ["news_crawl_len_16.mindrecord.manifest.json",
                                  "news_crawl_len_16_valid.mindrecord.manifest.json"])  # all or nothing
    assert news_crawl.main(argv[2:]) == 0
    assert leftovers(out) == []
    train = json.loads((out / "news_crawl_len_16.mindrecord.manifest.json").read_text())
    valid = json.loads((out / "news_crawl_len_16_valid.mindrecord.manifest.json").read_text())
    assert train["build"]["id"] == valid["build"]["id"] and train["vocab_sha256"] == valid["vocab_sha256"]


# ------------------------------------------------------------------ kill -9 of a training run

TINY = ["--model_config.hidden_size=16", "--model_config.intermediate_size=32",
        "--model_config.hidden_dropout_prob=0.0", "--model_config.attention_dropout_prob=0.0",
        "--dataset_config.batch_size=8", "--dataset_config.bucket_boundaries=[]",
        "--dataset_config.num_parallel_workers=1", "--checkpoint_options.log_every_steps=1",
        "--checkpoint_options.save_ckpt_steps=1", "--checkpoint_options.keep_ckpt_max=3",
        "--learn_rate_config.warmup_steps=2", "--dataset_config.epochs=1"]


@pytest.fixture(scope="module")
def small_data(tmp_path_factory):
    d = tmp_path_factory.mktemp("kill_train")
    news_corpus(d, 160, seed=9, valid_every=0)
    return d


def train_cmd(data, out, *extra):
    return [sys.executable, str(ROOT / "train.py"), "--config", str(ROOT / "config/tiny.json"), "--output", str(out),
            f"--dataset_config.pre_train_dataset={data / 'news_crawl_len_16.mindrecord'}", *TINY, *extra]


@pytest.mark.slow
def test_killed_training_resumes_exactly_and_leaves_nothing_behind(small_data, tmp_path):
    full = tmp_path / "full"
    subprocess.run(train_cmd(small_data, full), env=ENV, check=True, capture_output=True, timeout=600)
    expected = read_weights(step_checkpoints(full / "checkpoints")[-1])
    last_step = int(STEP_RE.match(step_checkpoints(full / "checkpoints")[-1].name).group(2))

    out = tmp_path / "killed"
    rng = random.Random(11)
    for _ in range(3):  # kill at random moments: with a checkpoint every step, often inside a write
        proc = subprocess.Popen(train_cmd(small_data, out, "--resume", "auto"), env=ENV, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
        start = time.time()
        while time.time() - start < 90 and not any(out.glob("checkpoints/*_step*.ckpt")):
            if proc.poll() is not None:
                break
            time.sleep(0.05)
        time.sleep(rng.uniform(0.0, 2.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    done = subprocess.run(train_cmd(small_data, out, "--resume", "auto"), env=ENV, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert leftovers(out) == []
    final = step_checkpoints(out / "checkpoints")[-1]
    assert int(STEP_RE.match(final.name).group(2)) == last_step
    got = read_weights(final)
    assert set(got) == set(expected)
    for name in expected:
        np.testing.assert_array_equal(got[name], expected[name], err_msg=name)
    steps = [r["step"] for r in read_metrics(out / "metrics.jsonl") if "loss" in r and r.get("phase") == "pretrain"]
    assert steps == sorted(set(steps)) == list(range(1, last_step + 1))  # each step listed once

    again = subprocess.run(train_cmd(small_data, out, "--resume", "auto"), env=ENV, capture_output=True, text=True,
                           timeout=600)
    assert again.returncode == 0 and "nothing to do" in again.stderr
    assert step_checkpoints(out / "checkpoints")[-1] == final  # no step past the end


@pytest.mark.slow
def test_resume_auto_takes_the_highest_step_not_the_newest_file(small_data, tmp_path):
    """A copied run folder (cp -r, rsync) or a touched checkpoint changes file times: --resume auto still
    resumes from the last phase's highest step."""
    out = tmp_path / "run"
    done = subprocess.run(train_cmd(small_data, out, "--max_steps", "4"), env=ENV, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    older = step_checkpoints(out / "checkpoints")[0]
    assert older.name.endswith("_step2.ckpt")
    os.utime(older)  # the oldest step is now the newest file
    again = subprocess.run(train_cmd(small_data, out, "--max_steps", "5", "--resume", "auto"), env=ENV,
                           capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "ckpt_pretrain_step4.ckpt (pretrain, step 4)" in again.stderr
    steps = [r["step"] for r in read_metrics(out / "metrics.jsonl") if "loss" in r]
    assert steps == [1, 2, 3, 4, 5]
