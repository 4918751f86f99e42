"""The data-preparation writers under failure: two builds of one Cornell folder, an empty Cornell corpus, a
failing tokenize_corpus.py run over a good earlier output, and a MindRecord write that fails as the disk fills.
Each runs the real script on tiny inputs and checks the exit status, the message and what is on disk."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import cornell_dialog
import news_crawl
import tokenize_corpus
from src.text import text_options
from src.utils.cli import run_cli
from tests.helpers import news_corpus, random_sentences, vocab_for, write_cornell, write_lines

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "GLOG_v": "3", "PYTHONPATH": str(ROOT)}


def snapshot(folder) -> dict:
    """Every file under ``folder`` (hidden ones included) -> its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(Path(folder).rglob("*")) if p.is_file()}


# ------------------------------------------------------------------ two cornell_dialog.py runs, one folder

# cornell_dialog.py, paused once its raw text is written (stdin says when to go on)
PAUSED_CORNELL = """
import sys
import cornell_dialog
from src.utils.cli import run_cli

real = cornell_dialog.write_raw_pairs

def write_then_wait(*args, **kwargs):
    paths = real(*args, **kwargs)
    print("written", flush=True)
    sys.stdin.readline()
    return paths

cornell_dialog.write_raw_pairs = write_then_wait
sys.exit(run_cli(cornell_dialog.main, sys.argv[1:]))
"""


def test_a_second_cornell_build_of_a_folder_in_use_is_refused_before_it_writes(tmp_path, capsys):
    raw_a = write_cornell(tmp_path / "A", [[f"first {i} here", f"second {i} there", f"third {i}"] for i in range(40)])
    raw_b = write_cornell(tmp_path / "B", [[f"other {i} line", f"more {i} words", f"end {i}"] for i in range(40)])
    out = tmp_path / "out"
    args = ["--output_folder", str(out), "--valid_percent", "10", "--test_percent", "10"]
    a = subprocess.Popen([sys.executable, "-c", PAUSED_CORNELL, "--raw_folder", str(raw_a), *args], cwd=ROOT,
                         env=ENV, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert a.stdout.readline().strip() == "written", a.stderr.read()[-2000:]
        during = snapshot(out)
        assert "cornell_train_src.txt" in during
        status = run_cli(cornell_dialog.main, ["--raw_folder", str(raw_b), *args])
        err = capsys.readouterr().err
        assert status == 2, err[-2000:]
        assert f"error: {out}: in use by pid {a.pid}" in err and "Traceback" not in err, err[-2000:]
        assert snapshot(out) == during  # the refused run touched nothing
        a.stdin.write("\n")
        a.stdin.flush()
        _, a_err = a.communicate(timeout=120)
    finally:
        if a.poll() is None:
            a.kill()
            a.wait()
    assert a.returncode == 0, a_err[-2000:]
    texts = (out / "cornell_train_src.txt").read_text() + (out / "cornell_test_src.txt").read_text()
    assert "first" in texts and "other" not in texts  # run A's text, not B's
    assert not (out / ".lock").exists()  # released at the end
    # the folder is free again: run B now succeeds
    assert run_cli(cornell_dialog.main, ["--raw_folder", str(raw_b), *args]) == 0
    assert "other" in (out / "cornell_train_src.txt").read_text()


# ------------------------------------------------------------------ an empty Cornell corpus


@pytest.mark.parametrize("corpus", ["empty", "only_empty_lines"])
def test_a_cornell_corpus_without_pairs_is_an_error_and_publishes_nothing(tmp_path, capsys, corpus):
    good = write_cornell(tmp_path / "good", [[f"hello {i}", f"hi {i}"] for i in range(20)])
    out = tmp_path / "out"
    assert run_cli(cornell_dialog.main, ["--raw_folder", str(good), "--output_folder", str(out)]) == 0
    before = snapshot(out)
    capsys.readouterr()
    raw = tmp_path / "raw"
    if corpus == "empty":
        raw.mkdir()
        (raw / "movie_lines.txt").write_bytes(b"")
        (raw / "movie_conversations.txt").write_bytes(b"")
    else:
        write_cornell(raw, [["", "  "], ["said once"]])
    status = run_cli(cornell_dialog.main, ["--raw_folder", str(raw), "--output_folder", str(out)])
    err = capsys.readouterr().err
    assert status == 2, err[-2000:]
    assert f"error: {raw / 'movie_lines.txt'}, {raw / 'movie_conversations.txt'}: no dialog pair" in err, err
    assert "Traceback" not in err
    assert snapshot(out) == before  # the earlier build is untouched
    fresh = tmp_path / "fresh"
    assert run_cli(cornell_dialog.main, ["--raw_folder", str(raw), "--output_folder", str(fresh)]) == 2
    assert snapshot(fresh) == {}  # nothing published


# ------------------------------------------------------------------ a failing tokenize_corpus.py run


def test_a_failing_tokenize_run_leaves_the_previous_output_and_options_as_they_were(tmp_path, capsys):
    good, long = tmp_path / "good", tmp_path / "long"
    write_lines(good / "a.txt", ["The Cat sat.", "A Dog ran!"])
    write_lines(long / "a.txt", [" ".join(["w"] * 300)])
    out = tmp_path / "out"
    assert run_cli(tokenize_corpus.command, ["--corpus_folder", str(good), "--output_folder", str(out),
                                             "--pool_size", "1", "--lowercase"]) == 0
    before = snapshot(out)
    assert before["a_tokenized.txt"] == b"the cat sat .\na dog ran !\n"
    capsys.readouterr()
    status = run_cli(tokenize_corpus.command, ["--corpus_folder", str(long), "--output_folder", str(out),
                                               "--pool_size", "1"])
    err = capsys.readouterr().err
    assert status == 2, err[-2000:]
    assert "no line left after tokenization (1 read: 0 empty, 1 longer than 175 tokens): nothing written" in err
    assert snapshot(out) == before  # the output, its options (lowercase) and no temporary left
    assert text_options.lookup(out / "a_tokenized.txt")["lowercase"] is True


def test_a_tokenize_run_failing_on_a_later_file_publishes_none(tmp_path, capsys):
    out = tmp_path / "out"
    write_lines(tmp_path / "v1" / "a.txt", ["old text ."])
    assert run_cli(tokenize_corpus.command, ["--corpus_folder", str(tmp_path / "v1"), "--output_folder", str(out),
                                             "--pool_size", "1"]) == 0
    before = snapshot(out)
    write_lines(tmp_path / "v2" / "a.txt", ["New text ."])
    (tmp_path / "v2" / "b.txt").write_bytes(b"fine\ncaf\xe9\n")
    status = run_cli(tokenize_corpus.command, ["--corpus_folder", str(tmp_path / "v2"), "--output_folder", str(out),
                                               "--pool_size", "1", "--lowercase"])
    err = capsys.readouterr().err
    assert status == 2 and "b.txt:2" in err, err[-2000:]
    assert snapshot(out) == before  # a.txt's new output was complete, but is not published alone


# ------------------------------------------------------------------ the disk fills inside the MindRecord writer

MINDSPORE_COMMIT_ERROR = ("Unexpected error. [Internal ERROR] Failed to write mindrecord meta files.\n"
                          "Line of code : 1156\n"
                          "File         : mindspore/ccsrc/minddata/mindrecord/io/shard_writer.cc\n")


@pytest.fixture
def disk(monkeypatch):
    """``disk.fill()``: from now on the disk reports no free space (as after another process filled it)."""
    from mindspore.mindrecord import FileWriter

    real = shutil.disk_usage

    class Disk:
        full = False
        writer = FileWriter

        def fill(self):
            self.full = True

    state = Disk()
    monkeypatch.setattr(shutil, "disk_usage", lambda p: real(p)._replace(free=0) if state.full else real(p))
    return state


def leftovers(folder) -> list:
    return sorted(str(p.relative_to(folder)) for p in Path(folder).rglob("*"))


@pytest.mark.parametrize("step", ["commit", "write_raw_data"])
def test_a_mindrecord_write_failing_on_a_full_disk_is_a_clear_error(tmp_path, capsys, monkeypatch, disk, step):
    news_corpus(tmp_path, 30, seed=2)

    def failing(self, *args, **kwargs):
        disk.fill()
        raise RuntimeError(MINDSPORE_COMMIT_ERROR)

    monkeypatch.setattr(disk.writer, step, failing)
    out = tmp_path / "out"
    status = run_cli(news_crawl.main, ["--src_folder", str(tmp_path / "bpe"), "--existed_vocab",
                                       str(tmp_path / "vocab.txt"), "--output_folder", str(out), "--processes", "1",
                                       "--max_len", "16", "--valid_every", "0"])
    err = capsys.readouterr().err
    assert status == 2, err[-2000:]
    assert "Traceback" not in err
    part = out / "news_crawl_len_16.mindrecord.part00000"
    assert f"error: {part}: No space left on device" in err, err[-2000:]
    assert "Failed to write mindrecord meta files" in err and err.rstrip().endswith("(the disk is full)"), err
    assert leftovers(out) == []  # no part, no index, no temporary folder


def test_a_mindrecord_write_failing_with_room_left_is_still_a_clear_error(tmp_path, capsys, monkeypatch, disk):
    """A failed commit of the second split of a build (the first one complete, waiting to be published):
    an error naming the part, and neither split's parts left behind."""
    for split in ("train", "test"):
        write_lines(tmp_path / "bpe" / f"{split}_src.txt", random_sentences(12, seed=5))
        write_lines(tmp_path / "bpe" / f"{split}_tgt.txt", random_sentences(12, seed=6))
    vocab_for(random_sentences(12, seed=5) + random_sentences(12, seed=6), tmp_path / "vocab.txt")
    real_commit, commits = disk.writer.commit, []

    def second_fails(self):
        commits.append(self)
        if len(commits) == 2:
            raise RuntimeError(MINDSPORE_COMMIT_ERROR)
        return real_commit(self)

    monkeypatch.setattr(disk.writer, "commit", second_fails)
    out = tmp_path / "out"
    status = run_cli(cornell_dialog.main, ["--src_folder", str(tmp_path / "bpe"), "--existed_vocab",
                                           str(tmp_path / "vocab.txt"), "--output_folder", str(out)])
    err = capsys.readouterr().err
    assert status == 2, err[-2000:]
    assert "Traceback" not in err
    assert f"error: {out / 'cornell_test.mindrecord.part00000'}: the MindRecord writer could not commit" in err, err
    assert "is the disk full" in err
    assert leftovers(out) == []  # the finished train split's parts went with the failed one's
