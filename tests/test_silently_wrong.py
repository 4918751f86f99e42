"""Nothing silently wrong, round 3: numbers that went wrong (NaN weights, a diverging training), one writer
per output (lock files), what the stop script may signal, a full disk inside the MindRecord writer,
test lines longer than the model's positions, and a training whose warm-up outlasts it.

The bad-input cases of these classes (exit 2, the file named, nothing written) are in test_bad_input.py;
this file holds what needs more than one command: a live holder of a lock, a training that diverges after
good checkpoints, a process the stop script must leave alone.
"""

import contextlib
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from mindspore import Tensor

import news_crawl
from src.training.divergence import CEILING, NON_FINITE_STEPS, WINDOW, DivergenceGuard
from src.utils.checkpoint import CheckpointManager, load_checkpoint, save_checkpoint
from src.utils.cli import run_cli
from src.utils.errors import UserError
from src.utils.output_lock import hold, holder_of, lock_file_for
from tests.helpers import news_corpus, write_lines

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "GLOG_v": "3", "PYTHONPATH": str(ROOT)}
TINY = ["--model_config.hidden_size=16", "--model_config.intermediate_size=32",
        "--model_config.hidden_dropout_prob=0.0", "--model_config.attention_dropout_prob=0.0",
        "--dataset_config.batch_size=8", "--dataset_config.bucket_boundaries=[]",
        "--dataset_config.num_parallel_workers=1", "--checkpoint_options.log_every_steps=1",
        "--learn_rate_config.warmup_steps=2"]


# ------------------------------------------------------------------ the divergence rule (pure Python)


def test_a_decreasing_noisy_loss_never_diverges():
    guard = DivergenceGuard(vocab_size=1000)
    rng = np.random.default_rng(0)
    losses = 7.0 * np.exp(-np.arange(2000) / 400) + 1.0 + rng.normal(0, 0.3, 2000)
    assert [guard.observe(float(x)) for x in losses] == [None] * 2000


def test_an_occasional_overflow_is_not_a_divergence_but_a_run_of_them_is():
    guard = DivergenceGuard(vocab_size=1000)
    pattern = [5.0] * 20 + [math.nan] * (NON_FINITE_STEPS - 1) + [5.0] + [math.inf] * (NON_FINITE_STEPS - 1)
    assert [guard.observe(x) for x in pattern] == [None] * len(pattern)
    reason = guard.observe(math.nan)
    assert reason == f"the loss was nan at {NON_FINITE_STEPS} steps in a row"


def test_a_loss_growing_far_beyond_its_start_diverges():
    guard = DivergenceGuard(vocab_size=50)
    for x in [4.0] * WINDOW:
        assert guard.observe(x) is None
    # a mean of 3 x 4.0 is the limit: just below it is still training
    assert [guard.observe(11.9) for _ in range(WINDOW)] == [None] * WINDOW
    reasons = [guard.observe(12.5) for _ in range(WINDOW)]
    assert reasons[-1] is not None and "beyond 3x its start (4)" in reasons[-1]


def test_a_run_that_went_wrong_in_its_first_steps_is_caught_by_the_ceiling():
    guard = DivergenceGuard(vocab_size=50)  # ln 50 = 3.9: a start of 1e5 is no reference
    reasons = [guard.observe(1e5) for _ in range(WINDOW)]
    assert reasons[:-1] == [None] * (WINDOW - 1)
    assert f"beyond {CEILING:g}x ln(vocab_size)" in reasons[-1]


# ------------------------------------------------------------------ the checkpoint manager


def _entries(value):
    weights = np.ones((4, 3), np.float32)
    weights[1, 2] = value
    return [{"name": "embedding.table", "data": Tensor(weights)}, {"name": "step", "data": Tensor(3)}]


def test_the_manager_never_saves_nan_weights_nor_makes_a_nan_score_the_best(tmp_path):
    manager = CheckpointManager(tmp_path, "ckpt_pretrain", keep_max=2)
    good = manager.save(_entries(1.0), {"phase": "pretrain", "step": 1})
    assert manager.save_if_best(_entries(1.0), {"phase": "pretrain", "step": 1}, 3.0) is not None
    for value in (np.nan, np.inf):
        with pytest.raises(UserError, match=r"ckpt_pretrain_step2.ckpt: NaN or Inf in 1 entries \(not saved\)"):
            manager.save(_entries(value), {"phase": "pretrain", "step": 2})
        with pytest.raises(UserError, match="ckpt_pretrain_best.ckpt: NaN or Inf"):
            manager.save_if_best(_entries(value), {"phase": "pretrain", "step": 2}, 1.0)
    best_bytes = (tmp_path / "ckpt_pretrain_best.ckpt").read_bytes()
    for criterion in (math.nan, -math.inf):  # not finite numbers: never "better"
        assert manager.save_if_best(_entries(1.0), {"phase": "pretrain", "step": 2}, criterion) is None
    assert manager.best_loss == 3.0 and (tmp_path / "ckpt_pretrain_best.ckpt").read_bytes() == best_bytes
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt_pretrain_best.ckpt", good.name]


def test_a_checkpoint_knows_its_bytes(tmp_path):
    path = save_checkpoint(tmp_path / "a.ckpt", _entries(2.0), {"phase": "pretrain", "step": 3})
    params, state = load_checkpoint(path)
    assert state["step"] == 3 and "content_sha256" not in params  # read back whole, the digest is no weight
    data = bytearray(path.read_bytes())
    at = bytes(data).index(np.float32(2.0).tobytes())
    data[at] ^= 0x40  # 2.0 becomes another finite number: same size, same structure
    (tmp_path / "b.ckpt").write_bytes(bytes(data))
    with pytest.raises(UserError, match="b.ckpt: changed or damaged bytes"):
        load_checkpoint(tmp_path / "b.ckpt")


# ------------------------------------------------------------------ one writer per output


HOLDER = """
import sys, time
from src.utils.output_lock import hold
with hold(sys.argv[1]):
    print("held", flush=True)
    time.sleep(120)
"""


@pytest.fixture
def holder(tmp_path):
    """Start a process that holds ``path``; yields it (killed afterwards)."""
    procs = []

    def start(path):
        proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(path)], cwd=ROOT, env=ENV, stdout=subprocess.PIPE,
                                text=True)
        procs.append(proc)
        assert proc.stdout.readline().strip() == "held"
        return proc

    yield start
    for proc in procs:
        proc.kill()
        proc.wait()


def test_a_second_writer_is_refused_with_the_holder_named(tmp_path, holder):
    out = tmp_path / "hyps.txt"
    proc = holder(out)
    with pytest.raises(UserError) as error, hold(out):
        pass
    message = str(error.value)
    assert message.startswith(f"{out}: in use by pid {proc.pid} (started 20")
    assert holder_of(lock_file_for(out))["pid"] == proc.pid
    proc.kill()
    proc.wait()
    with hold(out) as lock:  # the kernel let go of a dead holder's lock: taken over
        assert holder_of(lock)["pid"] == os.getpid()
    assert not lock_file_for(out).exists()  # the holder removes its lock file


def test_a_stale_lock_file_of_a_dead_process_is_taken_over(tmp_path, caplog):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    lock = lock_file_for(tmp_path / "data.mindrecord")
    lock.write_text(json.dumps({"pid": int(dead.stdout), "started": "2000-01-01 00:00:00"}))
    with caplog.at_level("INFO"), hold(tmp_path / "data.mindrecord"):
        assert holder_of(lock)["pid"] == os.getpid()
    assert f"taking over the lock file of pid {int(dead.stdout)}" in caplog.text
    assert not lock.exists()


FORKING_HOLDER = """
import os, sys, time
from src.utils.output_lock import hold
with hold(sys.argv[1]):
    child = os.fork()
    if child == 0:  # a pool worker that will outlive its parent for a while
        os.write(1, b"child running\\n")  # it runs Python code: the fork hooks have run (one write: one line)
        time.sleep(60)
        os._exit(0)
    os.write(1, f"{child}\\n".encode())
    time.sleep(60)
"""


def test_a_forked_child_that_outlives_the_writer_does_not_keep_its_lock(tmp_path):
    out = tmp_path / "data.mindrecord"
    proc = subprocess.Popen([sys.executable, "-c", FORKING_HOLDER, str(out)], cwd=ROOT, env=ENV,
                            stdout=subprocess.PIPE, text=True)
    lines = [proc.stdout.readline().strip() for _ in range(2)]  # the child's pid and its word, in any order
    child = int(next(line for line in lines if line.isdigit()))
    assert "child running" in lines
    try:
        with pytest.raises(UserError, match=f"in use by pid {proc.pid}"), hold(out):
            pass
        proc.kill()
        proc.wait()
        assert Path(f"/proc/{child}").exists()  # the child still runs, with the parent's files
        with hold(out) as lock:
            assert holder_of(lock)["pid"] == os.getpid()
    finally:
        proc.kill()
        proc.wait()
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signal.SIGKILL)


def test_the_same_process_cannot_hold_one_output_twice(tmp_path):
    with hold(tmp_path), pytest.raises(UserError, match=f"in use by pid {os.getpid()}"), hold(tmp_path):
        pass


@pytest.mark.slow
def test_train_eval_and_a_dataset_build_refuse_an_output_in_use(tmp_path, holder, model, capsys):
    news_corpus(tmp_path, 40, seed=4)
    args = ["--src_folder", str(tmp_path / "bpe"), "--existed_vocab", str(tmp_path / "vocab.txt"),
            "--output_folder", str(tmp_path / "data"), "--processes", "1", "--max_len", "16"]
    dataset = tmp_path / "data" / "news_crawl_len_16.mindrecord"
    data_holder = holder(dataset)
    assert run_cli(news_crawl.main, args) == 2
    err = capsys.readouterr().err
    assert f"error: {dataset}: in use by pid {data_holder.pid}" in err and "Traceback" not in err
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == [".news_crawl_len_16.mindrecord.lock"]
    data_holder.kill()
    data_holder.wait()
    assert run_cli(news_crawl.main, args) == 0  # its dead holder's lock is taken over
    assert not list((tmp_path / "data").glob(".*"))

    run = tmp_path / "run"
    run.mkdir()
    run_holder = holder(run)
    done = subprocess.run([sys.executable, "train.py", "--config", "config/tiny.json", "--output", str(run),
                           f"--dataset_config.pre_train_dataset={dataset}", "--max_steps", "1"],
                          cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert f"error: {run}: in use by pid {run_holder.pid} (started " in done.stderr
    assert sorted(p.name for p in run.iterdir()) == [".lock"]  # the holder's lock only: nothing of train.py

    out = tmp_path / "hyps.txt"
    eval_holder = holder(out)
    done = _eval(model, "m.ckpt", out)
    assert done.returncode == 2 and f"error: {out}: in use by pid {eval_holder.pid}" in done.stderr
    assert not out.exists() and not Path(f"{out}.report.json").exists()


# ------------------------------------------------------------------ a full disk inside the MindRecord writer


def _file_size_limit():  # in the child: files past 8 MiB cannot grow, as on a full disk (EFBIG, not ENOSPC)
    import resource
    import signal

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (8 << 20, 8 << 20))


def test_the_mindrecord_writer_is_never_let_near_a_full_disk(tmp_path):
    news_corpus(tmp_path, 30, seed=5)
    out = tmp_path / "o"
    done = subprocess.run([sys.executable, "news_crawl.py", "--src_folder", str(tmp_path / "bpe"), "--existed_vocab",
                           str(tmp_path / "vocab.txt"), "--output_folder", str(out), "--processes", "1",
                           "--max_len", "16"],
                          cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300, preexec_fn=_file_size_limit)
    # MindSpore's own writer would die of a segmentation fault (status -11) here
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert f"error: {out}/news_crawl_len_16.mindrecord.part00000: File too large" in done.stderr
    assert list(out.iterdir()) == []  # no partial part, no temporary folder, no lock


def test_a_disk_without_room_for_the_writer_is_an_error_naming_the_part(tmp_path, monkeypatch, capsys):
    import shutil as shutil_module

    from src.dataset import writer

    news_corpus(tmp_path, 30, seed=5)
    real = shutil_module.disk_usage
    monkeypatch.setattr(writer.shutil, "disk_usage",
                        lambda p: real(p)._replace(free=5 << 20) if ".tmp" in str(p) else real(p))
    out = tmp_path / "o"
    assert run_cli(news_crawl.main, ["--src_folder", str(tmp_path / "bpe"), "--existed_vocab",
                                     str(tmp_path / "vocab.txt"), "--output_folder", str(out), "--processes", "1",
                                     "--max_len", "16"]) == 2
    err = capsys.readouterr().err
    assert f"error: {out}/news_crawl_len_16.mindrecord.part00000: No space left on device: 5 MiB free" in err
    assert "(the disk is full)" in err
    assert list(out.iterdir()) == []


# ------------------------------------------------------------------ the stop script


def _stop(run) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "scripts/stop_training.sh", str(run), "5"], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)


def _start_of(pid) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]


@pytest.fixture
def fake_training(tmp_path):
    """A live process whose command line looks like a training of ``tmp_path / 'other'`` (train.py --output
    other): what the stop script must leave alone when a pid file names it for another run."""
    (tmp_path / "other").mkdir()
    proc = subprocess.Popen([sys.executable, "-c", "import sys, time; print(flush=True); time.sleep(120)", "train.py",
                             "--output", "other"], cwd=tmp_path, stdout=subprocess.PIPE)
    proc.stdout.readline()  # started
    yield proc
    proc.kill()
    proc.wait()


def _alive(proc) -> bool:
    return proc.poll() is None


def test_the_stop_script_never_signals_a_training_of_another_folder(tmp_path, fake_training):
    run = tmp_path / "run"
    run.mkdir()
    cmdline = Path(f"/proc/{fake_training.pid}/cmdline").read_bytes().split(b"\0")
    assert b"train.py" in cmdline  # the stop script's own test would take it for a training
    # a pid file with everything right but the training's run folder: copied from another run, or forged
    (run / "train.pid").write_text(f"{fake_training.pid} {_start_of(fake_training.pid)} {run}\n")
    done = _stop(run)
    assert done.returncode == 2 and f"writes to {tmp_path / 'other'}, not to {run}: nothing signalled" in done.stderr
    time.sleep(0.2)
    assert _alive(fake_training)
    # a pid file with only a pid: never enough
    (run / "train.pid").write_text(f"{fake_training.pid}\n")
    done = _stop(run)
    assert done.returncode == 2 and "nothing signalled" in done.stderr and _alive(fake_training)


# ------------------------------------------------------------------ numbers that go wrong during training


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("diverge")
    news_corpus(d, 80, seed=1, valid_every=8)
    return d


def train(data, out, *extra):
    cmd = [sys.executable, str(ROOT / "train.py"), "--config", str(ROOT / "config/tiny.json"), "--output", str(out),
           f"--dataset_config.pre_train_dataset={data / 'news_crawl_len_16.mindrecord'}",
           f"--dataset_config.valid_dataset={data / 'news_crawl_len_16_valid.mindrecord'}", *TINY, *extra]
    return subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=600)


def snapshot(folder) -> dict:
    return {p.name: p.read_bytes() for p in sorted(Path(folder).iterdir()) if p.is_file()}


@pytest.mark.slow
def test_a_diverging_training_stops_keeps_the_last_good_checkpoint_and_its_best(data, tmp_path):
    out = tmp_path / "run"
    good = train(data, out, "--max_steps", "6", "--checkpoint_options.save_ckpt_steps=3",
                 "--checkpoint_options.eval_every_steps=3")
    assert good.returncode == 0, good.stderr[-3000:]
    before, config = snapshot(out / "checkpoints"), (out / "config.json").read_bytes()
    assert set(before) == {"ckpt_pretrain_step3.ckpt", "ckpt_pretrain_step6.ckpt", "ckpt_pretrain_best.ckpt"}
    # the same run resumed with a learning rate that blows the weights up
    bad = train(data, out, "--max_steps", "60", "--resume", "auto", "--checkpoint_options.save_ckpt_steps=3",
                "--checkpoint_options.eval_every_steps=3", "--learn_rate_config.lr=1e30",
                "--learn_rate_config.min_lr=0", "--learn_rate_config.clip_norm=0")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr, bad.stderr[-3000:]
    last = out / "checkpoints" / "ckpt_pretrain_step6.ckpt"
    assert f"error: {out}: the training diverged at pretrain step " in bad.stderr
    assert f"the last good checkpoint is {last}" in bad.stderr
    assert "lower learn_rate_config.lr (now 1e+30)" in bad.stderr
    assert snapshot(out / "checkpoints") == before  # nothing saved, nothing rotated out, the best untouched
    assert (out / "config.json").read_bytes() == config  # still the config of the newest checkpoint
    for path in (last, out / "checkpoints" / "ckpt_pretrain_best.ckpt"):
        params, _ = load_checkpoint(path)  # finite (load_checkpoint refuses NaN and Inf)
        assert params
    # resumed with the old learning rate, the run goes on from its last good checkpoint
    again = train(data, out, "--max_steps", "9", "--resume", "auto", "--checkpoint_options.save_ckpt_steps=3",
                  "--checkpoint_options.eval_every_steps=3")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "resuming from" in again.stderr and "ckpt_pretrain_step6.ckpt (pretrain, step 6)" in again.stderr
    assert (out / "checkpoints" / "ckpt_pretrain_step9.ckpt").is_file()


@pytest.mark.slow
def test_a_loss_that_explodes_from_the_start_stops_the_run_before_anything_is_saved(data, tmp_path):
    out = tmp_path / "run"
    done = train(data, out, "--max_steps", "60", "--learn_rate_config.lr=100", "--learn_rate_config.clip_norm=0",
                 "--checkpoint_options.save_ckpt_steps=50", "--checkpoint_options.eval_every_steps=50")
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-3000:]
    assert "the training diverged at pretrain step" in done.stderr and "no checkpoint was written" in done.stderr
    assert "ln(vocab_size)" in done.stderr or "its start" in done.stderr or "in a row" in done.stderr
    assert not (out / "checkpoints").exists() and not (out / "config.json").exists()


# ------------------------------------------------------------------ evaluation: cut lines, garbage models


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """A tiny untrained model checkpoint with its config and vocabulary (max_len 8)."""
    from config.config import MassConfig
    from src.transformer.transformer import MassTransformer
    from src.utils.checkpoint import parameter_entries
    from tests.helpers import random_sentences, vocab_for

    d = tmp_path_factory.mktemp("garbage")
    vocab = vocab_for(random_sentences(40, seed=2), d / "vocab.txt")
    cfg = MassConfig.from_json(ROOT / "config/tiny.json").override([
        f"--model_config.vocab_size={len(vocab)}", "--model_config.hidden_size=16",
        "--model_config.intermediate_size=32", f"--model_config.vocab_sha256={vocab.digest()}",
        "--dataset_config.max_len=8", "--dataset_config.bucket_boundaries=[]", "--decode_config.max_decode_length_b=4",
        "--decode_config.beam_width=2"])
    net = MassTransformer(cfg.model_config)
    save_checkpoint(d / "m.ckpt", parameter_entries(net), {"config_json": cfg.to_json_text()})
    huge = {p.name: Tensor(p.asnumpy() * 3e18) for p in net.get_parameters()}  # finite, logits overflow
    save_checkpoint(d / "huge.ckpt", [{"name": n, "data": v} for n, v in huge.items()],
                    {"config_json": cfg.to_json_text()})
    write_lines(d / "src.txt", ["the cat sat on the mat " * 3, "the dog", "a big red house runs " * 2])
    write_lines(d / "ref.txt", ["cat", "dog", "house"])
    return d


def _eval(model, ckpt, out, *extra):
    return subprocess.run([sys.executable, "eval.py", "--checkpoint", str(model / ckpt), "--vocab",
                           str(model / "vocab.txt"), "--test_src", str(model / "src.txt"), "--test_ref",
                           str(model / "ref.txt"), "--output", str(out), *extra],
                          cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_test_lines_longer_than_the_model_are_cut_and_reported(model, tmp_path):
    out = tmp_path / "hyps.txt"
    done = _eval(model, "m.ckpt", out, "--model_config.hidden_dropout_prob=0.3")  # dropout may differ at eval
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"WARNING src.evaluation.evaluate: {model / 'src.txt'}: 2 test line(s) longer than the model's 8" \
           in done.stderr
    report = json.loads(Path(f"{out}.report.json").read_text())
    assert report["sources_cut"] == 2 and report["source_max_len"] == 8 and report["pairs"] == 3
    import hashlib

    assert report["hypotheses_sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()  # the file beside it
    assert "WARNING: sources cut" in Path(f"{out}.summary.txt").read_text()
    assert not list(tmp_path.glob(".*"))  # the lock file went with the evaluation


@pytest.mark.slow
def test_perplexity_cuts_long_test_lines_as_training_did_and_reports_them(model, tmp_path):
    done = _eval(model, "m.ckpt", tmp_path / "ppl.txt", "--metric", "ppl")
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"{model / 'src.txt'}: 2 test line(s) longer than the model's 8" in done.stderr
    report = json.loads((tmp_path / "ppl.txt.report.json").read_text())
    assert (report["sources_cut"], report["targets_cut"], report["pairs"]) == (2, 0, 3)
    assert "WARNING: sources cut" in (tmp_path / "ppl.txt.summary.txt").read_text()
    # the oracle: the same lines cut by hand to 7 words (+ </s>) score the same and report no cut
    short = tmp_path / "short.txt"
    write_lines(short, [" ".join(line.split()[:7]) for line in (model / "src.txt").read_text().splitlines()])
    done = subprocess.run([sys.executable, "eval.py", "--checkpoint", str(model / "m.ckpt"), "--vocab",
                           str(model / "vocab.txt"), "--test_src", str(short), "--test_ref", str(model / "ref.txt"),
                           "--output", str(tmp_path / "short_ppl.txt"), "--metric", "ppl"],
                          cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    by_hand = json.loads((tmp_path / "short_ppl.txt.report.json").read_text())
    assert by_hand["sources_cut"] == 0
    assert by_hand["ppl"]["subword_ppl"] == pytest.approx(report["ppl"]["subword_ppl"], rel=1e-6)


@pytest.mark.slow
def test_a_model_that_produces_garbage_is_still_evaluated_without_a_traceback(model, tmp_path):
    out = tmp_path / "hyps.txt"
    done = _eval(model, "huge.ckpt", out)
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    assert done.returncode in (0, 2), done.stderr[-3000:]
    if done.returncode == 0:
        assert len(out.read_text().splitlines()) == 3
    else:
        assert "error: " in done.stderr and not out.exists()


@pytest.mark.slow
def test_a_warmup_longer_than_the_run_is_a_warning(data, tmp_path):
    done = train(data, tmp_path / "run", "--max_steps", "2", "--learn_rate_config.warmup_steps=100")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "learn_rate_config.warmup_steps 100 is beyond the 2 steps of this phase: the learning rate never " \
           "reaches lr=0.001" in done.stderr


# ------------------------------------------------------------------ an evaluation's output set


def _hyps_only(hypotheses, references, out, *extra):
    return subprocess.run([sys.executable, "eval.py", "--hypotheses", str(hypotheses), "--test_ref", str(references),
                           "--output", str(out), *extra], cwd=ROOT, env=ENV, capture_output=True, text=True,
                          timeout=300)


@pytest.mark.slow
def test_an_evaluation_never_overwrites_what_it_reads(model, tmp_path):
    """--output (or its report / summary) naming an input is refused before any work, the input intact."""
    ref_bytes, ckpt_bytes = (model / "ref.txt").read_bytes(), (model / "m.ckpt").read_bytes()
    for out in (model / "ref.txt", model / "m.ckpt", model / "src.txt"):
        done = _eval(model, "m.ckpt", out)
        assert done.returncode == 2 and "would overwrite an input of this evaluation" in done.stderr, done.stderr
        assert "Traceback" not in done.stderr
    link = tmp_path / "link.txt"  # another name for the references
    link.symlink_to(model / "ref.txt")
    assert _eval(model, "m.ckpt", link).returncode == 2
    assert (model / "ref.txt").read_bytes() == ref_bytes and (model / "m.ckpt").read_bytes() == ckpt_bytes
    assert not (model / "ref.txt.report.json").exists()
    hyps = tmp_path / "h.txt"
    write_lines(hyps, ["cat", "dog", "house"])
    done = _hyps_only(hyps, model / "ref.txt", model / "ref.txt")
    assert done.returncode == 2 and (model / "ref.txt").read_bytes() == ref_bytes


@pytest.mark.slow
def test_a_report_always_describes_the_hypotheses_beside_it(model, tmp_path):
    out = tmp_path / "x.txt"
    assert _eval(model, "m.ckpt", out).returncode == 0
    before = {p.name: p.read_bytes() for p in tmp_path.glob("x.txt*")}
    # a perplexity report or a report of other hypotheses would land beside x.txt: refused, nothing changed
    done = _eval(model, "m.ckpt", out, "--metric", "ppl")
    assert done.returncode == 2 and "writes no hypotheses" in done.stderr
    other = tmp_path / "other.txt"
    write_lines(other, ["cat", "dog", "house"])
    done = _hyps_only(other, model / "ref.txt", out)
    assert done.returncode == 2 and "is not --hypotheses" in done.stderr
    assert {p.name: p.read_bytes() for p in tmp_path.glob("x.txt*")} == before
    # a report path that cannot be written is found before the decoding: the old set stays as it was
    (tmp_path / "y.txt").write_text("old\nold\nold\n")
    (tmp_path / "y.txt.report.json").mkdir()
    done = _eval(model, "m.ckpt", tmp_path / "y.txt")
    assert done.returncode == 2 and "y.txt.report.json" in done.stderr
    assert (tmp_path / "y.txt").read_text() == "old\nold\nold\n"
    # scoring the file in place describes it, and the summary names it
    done = _hyps_only(out, model / "ref.txt", out)
    assert done.returncode == 0, done.stderr[-2000:]
    import hashlib

    report = json.loads(Path(f"{out}.report.json").read_text())
    assert report["hypotheses_sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
    assert f"{out} (sha256 {report['hypotheses_sha256'][:12]})" in Path(f"{out}.summary.txt").read_text()


@pytest.mark.slow
def test_perplexity_of_a_model_that_produces_garbage_is_an_error(model, tmp_path):
    done = _eval(model, "huge.ckpt", tmp_path / "p.txt", "--metric", "ppl")
    assert done.returncode == 2 and "not a finite number" in done.stderr, done.stderr[-2000:]
    assert "Traceback" not in done.stderr and not list(tmp_path.glob("p.txt*"))


def test_empty_references_are_counted_and_all_empty_is_an_error(tmp_path):
    hyps, refs = tmp_path / "h.txt", tmp_path / "r.txt"
    write_lines(hyps, ["the cat", "a dog", "red house"])
    write_lines(refs, ["the cat", "", "red house"])
    done = _hyps_only(hyps, refs, tmp_path / "o.txt")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "1 of 3 reference line(s) are empty" in done.stderr
    assert json.loads((tmp_path / "o.txt.report.json").read_text())["empty_references"] == 1
    assert "WARNING: empty references | 1 of 3" in (tmp_path / "o.txt.summary.txt").read_text()
    write_lines(refs, ["", " ", ""])
    done = _hyps_only(hyps, refs, tmp_path / "o2.txt")
    assert done.returncode == 2 and "every reference line is empty" in done.stderr
    assert not list(tmp_path.glob("o2.txt*"))


def test_a_batch_size_below_one_is_refused(tmp_path):
    for size in ("0", "-1"):
        done = subprocess.run([sys.executable, "eval.py", "--checkpoint", "m.ckpt", "--batch_size", size],
                              cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=120)
        assert done.returncode == 2 and "--batch_size must be at least 1" in done.stderr


@pytest.mark.slow
def test_a_checkpoint_folder_outside_the_run_has_one_writer_too(data, tmp_path):
    """Two runs in different folders sharing an absolute checkpoint_options.ckpt_path: the second is refused
    (the first holds the checkpoint folder too), so no run's folder holds another run's checkpoints."""
    shared = tmp_path / "shared_ckpts"
    with hold(shared):  # a live training of another run folder writing there
        done = train(data, tmp_path / "b", "--max_steps", "2", f"--checkpoint_options.ckpt_path={shared}")
    assert done.returncode == 2 and str(shared) in done.stderr and "in use by pid" in done.stderr, done.stderr[-2000:]
    assert not list(shared.glob("*.ckpt"))
    done = train(data, tmp_path / "b", "--max_steps", "2", f"--checkpoint_options.ckpt_path={shared}")
    assert done.returncode == 0, done.stderr[-2000:]  # free again: the run takes it, and lets it go
    assert list(shared.glob("*_step2.ckpt")) and not (shared / ".lock").exists()


def test_averaging_never_overwrites_an_input(tmp_path, capsys):
    import weights_average
    from config.config import MassConfig
    from src.transformer.transformer import MassTransformer
    from src.utils.checkpoint import parameter_entries, save_npz

    cfg = MassConfig.from_json(ROOT / "config/tiny.json").override(
        ["--model_config.vocab_size=40", "--model_config.hidden_size=16", "--model_config.intermediate_size=32"])
    net = MassTransformer(cfg.model_config)
    save_checkpoint(tmp_path / "a.ckpt", parameter_entries(net), {"config_json": cfg.to_json_text()})
    save_npz(tmp_path / "b.npz", {p.name: p.asnumpy() for p in net.get_parameters()}, config_json=cfg.to_json_text())
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    for out in ("b.npz", "b"):  # "b" is written as b.npz
        assert run_cli(weights_average.main, ["--input_files", f"{tmp_path / 'a.ckpt'},{tmp_path / 'b.npz'}",
                                              "--output_file", str(tmp_path / out)]) == 2
        assert "is one of the checkpoints averaged" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


@pytest.mark.slow
def test_a_checkpoint_without_a_stored_config_is_evaluated_with_a_warning(model, tmp_path):
    """A plain MindSpore checkpoint (no config inside): the given --config is trusted, and the log says so."""
    import mindspore as ms

    from src.utils.checkpoint import load_checkpoint

    params, state = load_checkpoint(model / "m.ckpt")
    (tmp_path / "cfg.json").write_text(state["config_json"])
    ms.save_checkpoint([{"name": n, "data": v} for n, v in params.items()], str(tmp_path / "plain.ckpt"))
    done = subprocess.run([sys.executable, "eval.py", "--checkpoint", str(tmp_path / "plain.ckpt"), "--config",
                           str(tmp_path / "cfg.json"), "--vocab", str(model / "vocab.txt"), "--test_src",
                           str(model / "src.txt"), "--test_ref", str(model / "ref.txt"), "--output",
                           str(tmp_path / "h.txt")], cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "plain.ckpt stores no config" in done.stderr and "taken on trust" in done.stderr
