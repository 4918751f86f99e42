"""Probe 27 fixes: a test set's reference file is the very file it was built from (absolute path, sha256 in
the manifest; a changed file is refused before decoding), and the stop script signals only the holder of the
run folder's lock (never a process that merely looks like its training)."""

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import eval as eval_script
import gigaword
import src.evaluation.evaluate as evaluate_module
from config.config import MassConfig
from src.dataset.writer import file_sha256, manifest_path
from src.transformer.transformer import MassTransformer
from src.utils.checkpoint import parameter_entries, save_checkpoint
from src.utils.cli import run_cli
from src.utils.output_lock import holder_of
from tests.helpers import random_sentences, vocab_for, write_lines

ROOT = Path(__file__).resolve().parents[1]
N_TEST = 6


@contextlib.contextmanager
def working_folder(path):
    before = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


# ------------------------------------------------------------------ F5: the test set's references


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A tiny test set built from relative paths (as a user types them) in ``d``, and a tiny model."""
    d = tmp_path_factory.mktemp("refs")
    arts = random_sentences(N_TEST, seed=21, min_words=4, max_words=8)
    titles = random_sentences(N_TEST, seed=22, min_words=2, max_words=4)
    write_lines(d / "raw" / "test.article.txt", arts)
    write_lines(d / "raw" / "test.title.txt", titles)
    vocab = vocab_for(arts + titles, d / "vocab.txt")
    with working_folder(d):
        assert gigaword.main(["--test_src", "raw/test.article.txt", "--test_ref", "raw/test.title.txt",
                              "--existed_vocab", "vocab.txt", "--output_folder", "data"]) == 0
    cfg = MassConfig.from_json("config/tiny.json").override([
        f"--model_config.vocab_size={len(vocab)}", "--model_config.hidden_size=16",
        "--model_config.intermediate_size=32", "--model_config.compute_type=float32",
        "--decode_config.beam_width=1", "--decode_config.max_decode_length_b=3"])
    ckpt = save_checkpoint(d / "model.ckpt", parameter_entries(MassTransformer(cfg.model_config)),
                           {"config_json": cfg.to_json_text()})
    return d, ckpt


def _eval(built, output, *extra):
    d, ckpt = built
    return run_cli(eval_script.main, ["--checkpoint", str(ckpt), "--pynative", "--test_dataset",
                                      str(d / "data" / "gigaword_test.mindrecord"), "--vocab", str(d / "vocab.txt"),
                                      "--output", str(output), "--tokenized_output", *extra])


def test_the_manifest_records_each_source_file_absolute_with_its_sha256_and_lines(built):
    d, _ = built
    manifest = json.loads(manifest_path(d / "data" / "gigaword_test.mindrecord").read_text())
    files = [d / "raw" / "test.article.txt", d / "raw" / "test.title.txt"]
    assert manifest["sources"] == [str(f) for f in files]
    assert manifest["source_files"] == [{"path": str(f), "sha256": file_sha256(f), "lines": N_TEST} for f in files]


def test_references_changed_since_the_build_are_refused_before_decoding(built, tmp_path, capsys, monkeypatch):
    d, _ = built
    ref = d / "raw" / "test.title.txt"
    good = ref.read_text()
    keep = write_lines(tmp_path / "kept.txt", good.splitlines())
    out = tmp_path / "hyps.txt"
    decode_all = evaluate_module.decode_all
    try:
        ref.write_text("".join(line + "\n" for line in reversed(good.splitlines())))  # reordered: same lines
        monkeypatch.setattr(evaluate_module, "decode_all", lambda *_, **__: pytest.fail("decoded"))
        assert _eval(built, out) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: {ref}: changed since the test set {d / 'data' / 'gigaword_test.mindrecord'} "
                              "was built (sha256 ")
        assert "give the right file with --test_ref" in err and "Traceback" not in err
        assert not list(tmp_path.glob("hyps.txt*"))  # nothing written
        # the right file given with --test_ref is taken (the changed one is not looked at)
        monkeypatch.setattr(evaluate_module, "decode_all", decode_all)
        assert _eval(built, out, "--test_ref", str(keep)) == 0
    finally:
        ref.write_text(good)
    report = json.loads((tmp_path / "hyps.txt.report.json").read_text())
    assert report["references"] == str(keep) and report["rouge"]["pairs"] == N_TEST


def test_another_working_folder_never_lends_its_own_file_at_the_same_relative_path(built, tmp_path):
    d, _ = built
    elsewhere = tmp_path / "elsewhere"
    write_lines(elsewhere / "raw" / "test.title.txt", ["x y z"] * N_TEST)  # a foreign file, same relative path
    with working_folder(elsewhere):
        assert _eval(built, tmp_path / "hyps.txt") == 0
    report = json.loads((tmp_path / "hyps.txt.report.json").read_text())
    assert report["references"] == str(d / "raw" / "test.title.txt")


def test_an_old_manifest_without_digests_still_works_but_two_candidate_files_are_refused(built, tmp_path, capsys,
                                                                                         caplog, monkeypatch):
    d, _ = built
    dataset = d / "data" / "gigaword_test.mindrecord"
    path = manifest_path(dataset)
    new = path.read_text()
    old = json.loads(new)
    old["sources"] = ["raw/test.article.txt", "raw/test.title.txt"]  # as given to an older build, from d
    old.pop("source_files", None)
    beside = d / "data" / "raw" / "test.title.txt"
    try:
        path.write_text(json.dumps(old))
        # an old manifest, from the build's folder: its reference file, unverified (a warning)
        with working_folder(d):
            assert _eval(built, tmp_path / "old.txt") == 0
        assert "records no sha256 of its reference file" in caplog.text
        report = json.loads((tmp_path / "old.txt.report.json").read_text())
        assert report["references"] == "raw/test.title.txt" and report["rouge"]["pairs"] == N_TEST
        # another file at that relative path beside the dataset: which one was meant is unknown
        monkeypatch.setattr(evaluate_module, "decode_all", lambda *_, **__: pytest.fail("decoded"))
        write_lines(beside, ["x y z"] * N_TEST)
        with working_folder(d):
            assert _eval(built, tmp_path / "amb.txt") == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: {dataset}: its manifest names the reference file raw/test.title.txt relative")
        assert "two different files could be meant" in err and not (tmp_path / "amb.txt").exists()
    finally:
        path.write_text(new)
        beside.unlink(missing_ok=True)


# ------------------------------------------------------------------ F14: the stop script


def _stop(run) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "scripts/stop_training.sh", str(run), "5"], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)


def _start_of(pid) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]


def _spawn(run, code):
    """A live python whose command line reads like a training of ``run`` (``... train.py --output run``),
    running ``code`` (which prints a line once it is ready)."""
    proc = subprocess.Popen([sys.executable, "-c", code, "train.py", "--output", str(run)], cwd=ROOT,
                            stdout=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(ROOT)})
    proc.stdout.readline()
    return proc


LOOK_ALIKE = "import time; print(flush=True); time.sleep(120)"
HOLDER = ("import sys, time; from src.utils.output_lock import hold\n"
          "with hold(sys.argv[-1]):\n    print(flush=True); time.sleep(120)")


@pytest.fixture
def procs():
    started = []
    yield started
    for proc in started:
        proc.kill()
        proc.wait()


def test_the_stop_script_signals_only_the_holder_of_the_run_folders_lock(tmp_path, procs):
    run = tmp_path / "run"
    run.mkdir()
    look_alike = _spawn(run, LOOK_ALIKE)
    procs.append(look_alike)
    (run / "train.pid").write_text(f"{look_alike.pid} {_start_of(look_alike.pid)} {run}\n")
    # its command line says train.py --output run, but it holds no lock of run
    done = _stop(run)
    assert done.returncode == 2, done.stderr
    assert f"error: {run}/.lock: no process holds {run}" in done.stderr and "nothing signalled" in done.stderr
    time.sleep(0.3)
    assert look_alike.poll() is None
    # the lock held by another process (the real training): the look-alike is still left alone
    holder = _spawn(run, HOLDER)
    procs.append(holder)
    assert holder_of(run / ".lock")["pid"] == holder.pid
    done = _stop(run)
    assert done.returncode == 2 and f"held by pid {holder.pid}, not by process {look_alike.pid}" in done.stderr
    assert "nothing signalled" in done.stderr
    time.sleep(0.3)
    assert look_alike.poll() is None and holder.poll() is None
    # a lock file whose holder is gone (its pid now another process's): refused too
    record = holder_of(run / ".lock")
    holder.kill()
    holder.wait()
    (run / ".lock").write_text(json.dumps({**record, "pid": look_alike.pid, "start_ticks": 1}) + "\n")
    done = _stop(run)
    assert done.returncode == 2 and "is no longer running" in done.stderr and "nothing signalled" in done.stderr
    time.sleep(0.3)
    assert look_alike.poll() is None
    # the holder itself, named by the pid file: stopped
    real = _spawn(run, HOLDER)
    procs.append(real)
    (run / "train.pid").write_text(f"{real.pid} {_start_of(real.pid)} {run}\n")
    reaper = threading.Thread(target=real.wait)  # as its launcher would: no zombie left for the script to wait on
    reaper.start()
    done = _stop(run)
    reaper.join(timeout=10)
    assert done.returncode == 0 and "stopped" in done.stderr, done.stderr
    assert real.returncode == -signal.SIGTERM and look_alike.poll() is None
