"""Malformed input, every script: exit status 2, ``error: <file>[:<line>]: ...`` naming the culprit, no
traceback, and no output under a final name.

Each case builds its bad input in a fresh folder from one shared, valid world (corpus, vocabulary, BPE
codes, datasets, a tiny checkpoint, a run's metrics), runs the script as a user would (in this process
through ``run_cli`` for the Python scripts; in a subprocess for the shell scripts and for train.py cases
that need MindSpore's device set-up), and checks the message and what was (not) written.
"""

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import mindspore as ms
import numpy as np
import pytest

import apply_bpe_encoding
import cornell_dialog
import eval as eval_script
import export
import gigaword
import news_crawl
import tokenize_corpus
import train
import weights_average
from config.config import MassConfig
from scripts import plot_curves
from src.text.dictionary import Dictionary
from src.transformer.transformer import MassTransformer
from src.utils.checkpoint import parameter_entries, save_checkpoint
from src.utils.cli import run_cli
from tests.helpers import random_sentences, vocab_for, write_lines

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "GLOG_v": "3", "PYTHONPATH": str(ROOT)}


# ------------------------------------------------------------------ the valid world the cases spoil


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    d = tmp_path_factory.mktemp("world")
    lines = random_sentences(60, seed=3, min_words=4, max_words=9)
    write_lines(d / "raw" / "news.txt", [s.capitalize() + " ." for s in lines])
    write_lines(d / "bpe" / "news.txt", lines)
    vocab = vocab_for(lines, d / "vocab.txt")
    other = Dictionary.from_counts({w: 1 for w in reversed(sorted({t for s in lines for t in s.split()}))})
    other.persistence(d / "other_vocab.txt")
    (d / "codes.txt").write_text("#version: 0.2\nt h\nth e</w>\n", encoding="utf-8")
    assert (
        news_crawl.main(
            [
                "--src_folder",
                str(d / "bpe"),
                "--existed_vocab",
                str(d / "vocab.txt"),
                "--output_folder",
                str(d / "data"),
                "--processes",
                "1",
                "--max_len",
                "16",
                "--valid_every",
                "6",
            ]
        )
        == 0
    )
    write_lines(d / "art.txt", lines[:30])
    write_lines(d / "tit.txt", [" ".join(s.split()[:3]) for s in lines[:30]])
    pairs = [
        "--train_src",
        str(d / "art.txt"),
        "--train_ref",
        str(d / "tit.txt"),
        "--valid_src",
        str(d / "art.txt"),
        "--valid_ref",
        str(d / "tit.txt"),
        "--test_src",
        str(d / "art.txt"),
        "--test_ref",
        str(d / "tit.txt"),
    ]
    assert gigaword.main([*pairs, "--existed_vocab", str(d / "vocab.txt"), "--output_folder", str(d / "data")]) == 0
    assert (
        gigaword.main([*pairs, "--existed_vocab", str(d / "other_vocab.txt"), "--output_folder", str(d / "other")]) == 0
    )
    assert gigaword.main([*pairs, "--existed_vocab", str(d / "vocab.txt"), "--output_folder", str(d / "rebuilt")]) == 0
    cfg = MassConfig.from_json(ROOT / "config/tiny.json").override(
        [
            f"--model_config.vocab_size={len(vocab)}",
            "--model_config.hidden_size=16",
            "--model_config.intermediate_size=32",
            f"--model_config.vocab_sha256={vocab.digest()}",
            "--decode_config.max_decode_length_b=4",
        ]
    )
    model = MassTransformer(cfg.model_config)
    entries = parameter_entries(model)
    state = {"config_json": cfg.to_json_text(), "phase": "pretrain", "step": 2, "epoch": 0, "batch_in_epoch": 2}
    save_checkpoint(d / "ckpt" / "m_step1.ckpt", entries, {**state, "step": 1})
    save_checkpoint(d / "ckpt" / "m_step2.ckpt", entries, state)
    run = d / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text('{"step": 1, "phase": "pretrain", "loss": 3.0}\n', encoding="utf-8")
    return d


@dataclass
class Case:
    script: object  # a module with main(argv), or a list (a command run in a subprocess)
    argv: object  # callable(world, tmp) -> argument list
    message: str  # a fragment of the error message (format: {w} world, {t} case folder)
    setup: object = None  # callable(world, tmp): spoil something
    absent: list = field(default_factory=list)  # paths (format strings) that must not exist afterwards
    logs: list = field(default_factory=list)  # the only files it may write (a run's config and log)


def W(path):
    return lambda w, t: str(w / path)


def spoil_manifest(data_folder, name, change):
    def setup(w, t):
        shutil.copytree(w / data_folder, t / "data")
        path = t / "data" / f"{name}.manifest.json"
        manifest = json.loads(path.read_text())
        change(manifest, t / "data")
        path.write_text(json.dumps(manifest))

    return setup


def copy_data(w, t):
    shutil.copytree(w / "data", t / "data")


def truncate(relative, size=100):
    def setup(w, t):
        copy_data(w, t)
        path = t / relative
        path.write_bytes(path.read_bytes()[:size])

    return setup


def bad_bytes(relative, content=b"good line\n\xff\xfe bad\n"):
    def setup(w, t):
        path = t / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)

    return setup


def text_file(relative, text):
    def setup(w, t):
        path = t / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")

    return setup


def checkpoint_with(name, change):
    """A copy of the world's checkpoint whose run state or tensors are spoiled by ``change``."""

    def setup(w, t):
        from mindspore.train import checkpoint_pb2

        proto = checkpoint_pb2.Checkpoint()
        proto.ParseFromString((w / "ckpt" / "m_step2.ckpt").read_bytes())
        change(proto)
        (t / name).write_bytes(proto.SerializeToString())

    return setup


def _short_tensor(proto):
    proto.value[0].tensor.tensor_content = proto.value[0].tensor.tensor_content[:40]


def _state_entry(proto, tag):
    return next(v for v in proto.value if v.tag == tag)


def _bad_config(proto):
    _state_entry(proto, "config_json").tensor.tensor_content = "{not json".encode("utf-32-le")  # MindSpore's str


def _two_steps(proto):
    entry = _state_entry(proto, "step")
    entry.tensor.dims[:] = [2]
    entry.tensor.tensor_content = np.array(
        [1, 2], dtype=np.int64 if entry.tensor.tensor_type == "Int64" else np.int32
    ).tobytes()


def _mismatched_refs(w, t):
    write_lines(t / "src.txt", ["the cat sat"] * 4)
    write_lines(t / "ref.txt", ["cat"] * 3)


def train_argv(*extra):
    return lambda w, t: [
        "--config",
        str(ROOT / "config/tiny.json"),
        "--output",
        str(t / "run"),
        f"--dataset_config.pre_train_dataset={t / 'data' / 'news_crawl_len_16.mindrecord'}",
        *[e.format(w=w, t=t) for e in extra],
    ]


def eval_argv(*extra, ckpt="{w}/ckpt/m_step2.ckpt"):
    return lambda w, t: ["--checkpoint", ckpt.format(w=w, t=t), "--pynative", *[e.format(w=w, t=t) for e in extra]]


def fmt(*args):
    return lambda w, t: [a.format(w=w, t=t) for a in args]


NEWS = ["--existed_vocab", "{w}/vocab.txt", "--processes", "1", "--max_len", "16"]
GIGA = ["--train_src", "{w}/art.txt", "--train_ref", "{w}/tit.txt", "--existed_vocab", "{w}/vocab.txt"]
CKPT = "{w}/ckpt/m_step2.ckpt"

CASES = {
    # tokenize_corpus.py
    "tok_missing_corpus": Case(
        tokenize_corpus, fmt("--corpus_folder", "{t}/nope", "--output_folder", "{t}/o"), "{t}/nope"
    ),
    "tok_output_is_file": Case(
        tokenize_corpus,
        fmt("--corpus_folder", "{w}/raw", "--output_folder", "{w}/vocab.txt"),
        "{w}/vocab.txt: is a file",
    ),
    "tok_output_under_file": Case(
        tokenize_corpus,
        fmt("--corpus_folder", "{w}/raw", "--output_folder", "{w}/vocab.txt/sub"),
        "{w}/vocab.txt: is a file",
    ),
    "tok_not_utf8": Case(
        tokenize_corpus,
        fmt("--corpus_folder", "{t}/in", "--output_folder", "{t}/o"),
        "{t}/in/a.txt:2: bytes that are not valid utf-8",
        bad_bytes("in/a.txt"),
        ["{t}/o/a_tokenized.txt"],
    ),
    "tok_pool_zero": Case(
        tokenize_corpus,
        fmt("--corpus_folder", "{w}/raw", "--output_folder", "{t}/o", "--pool_size", "0"),
        "--pool_size must be >= 1",
    ),
    "tok_no_txt": Case(
        tokenize_corpus,
        fmt("--corpus_folder", "{t}/in", "--output_folder", "{t}/o"),
        "no *.txt file in {t}/in",
        text_file("in/notes.md", "x\n"),
    ),
    # apply_bpe_encoding.py
    "bpe_missing_codes": Case(
        apply_bpe_encoding,
        fmt(
            "--codes",
            "{t}/none.codes",
            "--src_folder",
            "{w}/bpe",
            "--existed_vocab",
            "{w}/vocab.txt",
            "--output_folder",
            "{t}/o",
        ),
        "{t}/none.codes",
    ),
    "bpe_empty_codes": Case(
        apply_bpe_encoding,
        fmt(
            "--codes",
            "{t}/c.txt",
            "--src_folder",
            "{w}/bpe",
            "--existed_vocab",
            "{w}/vocab.txt",
            "--output_folder",
            "{t}/o",
        ),
        "{t}/c.txt: no BPE merge",
        text_file("c.txt", "#version: 0.2\n"),
        ["{t}/o/news_bpe.txt"],
    ),
    "bpe_bad_codes_line": Case(
        apply_bpe_encoding,
        fmt(
            "--codes",
            "{t}/c.txt",
            "--src_folder",
            "{w}/bpe",
            "--existed_vocab",
            "{w}/vocab.txt",
            "--output_folder",
            "{t}/o",
        ),
        "{t}/c.txt:3: a BPE code",
        text_file("c.txt", "#version: 0.2\nt h\nthree symbols here\n"),
    ),
    "bpe_output_is_file": Case(
        apply_bpe_encoding,
        fmt(
            "--codes",
            "{w}/codes.txt",
            "--src_folder",
            "{w}/bpe",
            "--existed_vocab",
            "{w}/vocab.txt",
            "--output_folder",
            "{w}/vocab.txt",
        ),
        "{w}/vocab.txt: is a file",
    ),
    "bpe_vocab_path_is_folder": Case(
        apply_bpe_encoding,
        fmt(
            "--codes", "{w}/codes.txt", "--src_folder", "{w}/bpe", "--output_folder", "{t}/o", "--vocab_path", "{w}/raw"
        ),
        "{w}/raw: is a folder",
        None,
        ["{t}/o/news_bpe.txt"],
    ),
    "bpe_missing_src": Case(
        apply_bpe_encoding,
        fmt(
            "--codes",
            "{w}/codes.txt",
            "--src_folder",
            "{t}/nope",
            "--existed_vocab",
            "{w}/vocab.txt",
            "--output_folder",
            "{t}/o",
        ),
        "{t}/nope",
    ),
    "bpe_not_utf8": Case(
        apply_bpe_encoding,
        fmt(
            "--codes",
            "{w}/codes.txt",
            "--src_folder",
            "{t}/in",
            "--existed_vocab",
            "{w}/vocab.txt",
            "--output_folder",
            "{t}/o",
        ),
        "{t}/in/a.txt:2:",
        bad_bytes("in/a.txt"),
        ["{t}/o/a_bpe.txt"],
    ),
    "bpe_bad_existed_vocab": Case(
        apply_bpe_encoding,
        fmt(
            "--codes",
            "{w}/codes.txt",
            "--src_folder",
            "{w}/bpe",
            "--output_folder",
            "{t}/o",
            "--existed_vocab",
            "{t}/v.txt",
        ),
        "{t}/v.txt:2",
        text_file("v.txt", "#mass-vocab v1\ncat\t3\ndog\tmany\n"),
    ),
    # news_crawl.py
    "news_missing_vocab": Case(
        news_crawl,
        fmt(
            "--src_folder", "{w}/bpe", "--output_folder", "{t}/o", "--existed_vocab", "{t}/nope.txt", "--processes", "1"
        ),
        "{t}/nope.txt",
    ),
    "news_bad_vocab": Case(
        news_crawl,
        fmt("--src_folder", "{w}/bpe", "--output_folder", "{t}/o", "--existed_vocab", "{t}/v.txt"),
        "{t}/v.txt:1",
        text_file("v.txt", "one two three\n"),
    ),
    "news_output_is_file": Case(
        news_crawl,
        fmt("--src_folder", "{w}/bpe", "--output_folder", "{w}/vocab.txt", *NEWS),
        "{w}/vocab.txt: is a file",
    ),
    "news_not_utf8": Case(
        news_crawl,
        fmt("--src_folder", "{t}/in", "--output_folder", "{t}/o", *NEWS),
        "{t}/in/a.txt:2:",
        bad_bytes("in/a.txt"),
        ["{t}/o/news_crawl_len_16.mindrecord.manifest.json"],
    ),
    "news_no_txt": Case(
        news_crawl,
        fmt("--src_folder", "{t}/in", "--output_folder", "{t}/o", *NEWS),
        "no *.txt file",
        text_file("in/a.md", "x\n"),
    ),
    # gigaword.py
    "giga_line_mismatch": Case(
        gigaword,
        fmt(
            "--train_src",
            "{w}/art.txt",
            "--train_ref",
            "{t}/short.txt",
            "--existed_vocab",
            "{w}/vocab.txt",
            "--output_folder",
            "{t}/o",
        ),
        "{t}/short.txt has 2",
        text_file("short.txt", "a\nb\n"),
        ["{t}/o/gigaword_train.mindrecord.manifest.json"],
    ),
    "giga_valid_fails_nothing_published": Case(
        gigaword,
        fmt(*GIGA, "--valid_src", "{w}/art.txt", "--valid_ref", "{t}/short.txt", "--output_folder", "{t}/o"),
        "{t}/short.txt has 2",
        text_file("short.txt", "a\nb\n"),
        ["{t}/o/gigaword_train.mindrecord.manifest.json"],
    ),
    "giga_output_is_file": Case(gigaword, fmt(*GIGA, "--output_folder", "{w}/vocab.txt"), "{w}/vocab.txt: is a file"),
    "giga_missing_ref": Case(
        gigaword,
        fmt(
            "--train_src",
            "{w}/art.txt",
            "--train_ref",
            "{t}/nope.txt",
            "--existed_vocab",
            "{w}/vocab.txt",
            "--output_folder",
            "{t}/o",
        ),
        "{t}/nope.txt",
    ),
    # cornell_dialog.py: inputs checked before anything is written
    "cornell_missing_vocab": Case(
        cornell_dialog,
        fmt(
            "--raw_folder",
            "{t}/raw",
            "--output_folder",
            "{t}/o",
            "--existed_vocab",
            "{t}/nope.txt",
            "--codes",
            "{w}/codes.txt",
        ),
        "{t}/nope.txt",
        text_file("raw/movie_lines.txt", ""),
        ["{t}/o"],
    ),
    "cornell_missing_codes": Case(
        cornell_dialog,
        fmt(
            "--raw_folder",
            "{t}/raw",
            "--output_folder",
            "{t}/o",
            "--existed_vocab",
            "{w}/vocab.txt",
            "--codes",
            "{t}/nope.codes",
        ),
        "{t}/nope.codes",
        text_file("raw/movie_lines.txt", ""),
        ["{t}/o"],
    ),
    "cornell_missing_raw": Case(
        cornell_dialog, fmt("--raw_folder", "{t}/nope", "--output_folder", "{t}/o"), "{t}/nope"
    ),
    # train.py: every check runs before the device is set up and before any training
    "train_output_is_file": Case(train, train_argv("--output={w}/vocab.txt"), "{w}/vocab.txt: is a file", copy_data),
    "train_no_manifest": Case(train, train_argv(), "no manifest", lambda w, t: (t / "data").mkdir()),
    "train_valid_other_vocabulary": Case(
        train,
        train_argv(
            "--dataset_config.valid_dataset={w}/other/gigaword_valid.mindrecord",
            "--dataset_config.fine_tune_dataset={w}/data/gigaword_train.mindrecord",
        ),
        "different vocabularies",
        copy_data,
        ["{t}/run/config.json"],
    ),
    "train_valid_other_build": Case(
        train,
        lambda w, t: [
            "--config",
            str(ROOT / "config/tiny.json"),
            "--output",
            str(t / "run"),
            f"--dataset_config.fine_tune_dataset={w / 'data' / 'gigaword_train.mindrecord'}",
            f"--dataset_config.valid_dataset={w / 'rebuilt' / 'gigaword_valid.mindrecord'}",
        ],
        "from another build",
        None,
        ["{t}/run/config.json"],
    ),
    "train_unknown_override": Case(train, train_argv("--model_config.hiden_size=8"), "hiden_size", copy_data),
    "train_bad_config_json": Case(
        train,
        lambda w, t: ["--config", str(t / "c.json"), "--output", str(t / "run")],
        "{t}/c.json",
        text_file("c.json", '{"model_config": {\n  "hidden_size": ,\n}\n'),
    ),
    "train_truncated_part": Case(
        train,
        train_argv(),
        "news_crawl_len_16.mindrecord.part00000: 100 bytes",
        truncate("data/news_crawl_len_16.mindrecord.part00000"),
    ),
    "train_missing_db": Case(
        train,
        train_argv(),
        "part00000.db",
        lambda w, t: (copy_data(w, t), (t / "data" / "news_crawl_len_16.mindrecord.part00000.db").unlink()),
    ),
    "train_manifest_names_foreign_file": Case(
        train,
        train_argv(),
        "not a part of this dataset",
        spoil_manifest("data", "news_crawl_len_16.mindrecord", lambda m, d: m.update(files=["notes.txt"])),
    ),
    "train_manifest_not_json": Case(
        train,
        train_argv(),
        "news_crawl_len_16.mindrecord.manifest.json: not a valid",
        lambda w, t: (copy_data(w, t), (t / "data" / "news_crawl_len_16.mindrecord.manifest.json").write_text("{")),
    ),
    "train_manifest_wrong_count": Case(
        train,
        train_argv(),
        "manifest says 7",
        spoil_manifest("data", "news_crawl_len_16.mindrecord", lambda m, d: m.update(examples=7)),
    ),
    "train_ids_beyond_vocabulary": Case(  # a manifest that claims a smaller vocabulary than its ids use
        [sys.executable, "train.py"],
        train_argv("--max_steps", "1", "--model_config.hidden_size=16", "--model_config.intermediate_size=32"),
        "news_crawl_len_16.mindrecord: example",
        spoil_manifest(
            "data", "news_crawl_len_16.mindrecord", lambda m, d: (m.update(vocab_size=8), m.pop("vocab_sha256"))
        ),
        logs=["{t}/run/config.json", "{t}/run/train.log"],
    ),
    # eval.py
    "eval_ppl_unpaired": Case(
        eval_script,
        eval_argv(
            "--test_src",
            "{t}/src.txt",
            "--test_ref",
            "{t}/ref.txt",
            "--vocab",
            "{w}/vocab.txt",
            "--metric",
            "ppl",
            "--output",
            "{t}/o.txt",
        ),
        "{t}/ref.txt: 3 lines for the 4 sources",
        _mismatched_refs,
        ["{t}/o.txt", "{t}/o.txt.report.json"],
    ),
    "eval_rouge_unpaired": Case(
        eval_script,
        eval_argv(
            "--test_src",
            "{t}/src.txt",
            "--test_ref",
            "{t}/ref.txt",
            "--vocab",
            "{w}/vocab.txt",
            "--output",
            "{t}/o.txt",
        ),
        "{t}/ref.txt: 3 lines",
        _mismatched_refs,
        ["{t}/o.txt"],
    ),
    "eval_dataset_unpaired_ref": Case(
        eval_script,
        eval_argv(
            "--test_dataset={w}/data/gigaword_test.mindrecord", "--test_ref", "{t}/ref.txt", "--output", "{t}/o.txt"
        ),
        "{t}/ref.txt: 3 lines for the 30 sources",
        _mismatched_refs,
        ["{t}/o.txt"],
    ),
    "eval_output_is_folder": Case(
        eval_script,
        eval_argv("--test_dataset={w}/data/gigaword_test.mindrecord", "--output", "{w}/raw"),
        "{w}/raw: is a folder",
    ),
    "eval_output_under_file": Case(
        eval_script,
        eval_argv("--test_dataset={w}/data/gigaword_test.mindrecord", "--output", "{w}/vocab.txt/h.txt"),
        "{w}/vocab.txt: is a file",
    ),
    "eval_truncated_checkpoint": Case(
        eval_script,
        eval_argv(
            "--vocab",
            "{w}/vocab.txt",
            "--output",
            "{t}/o.txt",
            "--test_dataset={w}/data/gigaword_test.mindrecord",
            ckpt="{t}/m.ckpt",
        ),
        "{t}/m.ckpt: not a readable",
        text_file("m.ckpt", "garbage"),
        ["{t}/o.txt"],
    ),
    "eval_short_tensor": Case(
        eval_script,
        eval_argv("--test_dataset={w}/data/gigaword_test.mindrecord", "--output", "{t}/o.txt", ckpt="{t}/m.ckpt"),
        "{t}/m.ckpt: truncated or corrupt",
        checkpoint_with("m.ckpt", _short_tensor),
        ["{t}/o.txt"],
    ),
    "eval_config_not_json": Case(
        eval_script,
        eval_argv("--test_dataset={w}/data/gigaword_test.mindrecord", "--output", "{t}/o.txt", ckpt="{t}/m.ckpt"),
        "'config_json' is not valid JSON",
        checkpoint_with("m.ckpt", _bad_config),
    ),
    "eval_two_steps": Case(
        eval_script,
        eval_argv("--test_dataset={w}/data/gigaword_test.mindrecord", "--output", "{t}/o.txt", ckpt="{t}/m.ckpt"),
        "'step' holds 2 values",
        checkpoint_with("m.ckpt", _two_steps),
    ),
    "eval_test_set_other_vocabulary": Case(
        eval_script,
        eval_argv("--test_dataset={w}/other/gigaword_test.mindrecord", "--output", "{t}/o.txt"),
        "ids would mean other words",
        None,
        ["{t}/o.txt"],
    ),
    "eval_vocab_file_other_vocabulary": Case(
        eval_script,
        eval_argv(
            "--test_dataset={w}/data/gigaword_test.mindrecord",
            "--vocab",
            "{w}/other_vocab.txt",
            "--output",
            "{t}/o.txt",
        ),
        "{w}/other_vocab.txt was encoded",
    ),
    "eval_corrupt_npz": Case(
        eval_script,
        eval_argv("--test_dataset={w}/data/gigaword_test.mindrecord", "--output", "{t}/o.txt", ckpt="{t}/m.npz"),
        "{t}/m.npz: not a readable .npz",
        bad_bytes("m.npz", b"PK\x03\x04 not a zip"),
    ),
    "eval_src_without_ref": Case(
        eval_script,
        eval_argv("--test_src", "{w}/art.txt", "--vocab", "{w}/vocab.txt", "--output", "{t}/o.txt"),
        "--test_src needs --test_ref",
    ),
    # weights_average.py
    "avg_output_is_folder": Case(
        weights_average,
        fmt("--input_files", CKPT, "--output_file", "{t}/o.npz"),
        "{t}/o.npz: is a folder",
        lambda w, t: (t / "o.npz").mkdir(),
    ),
    "avg_truncated": Case(
        weights_average,
        fmt("--input_files", "{t}/a.ckpt", "--output_file", "{t}/o.npz"),
        "{t}/a.ckpt: not a readable",
        text_file("a.ckpt", "xx"),
        ["{t}/o.npz"],
    ),
    "avg_corrupt_npz": Case(
        weights_average,
        fmt("--input_files", "{t}/a.npz", "--output_file", "{t}/o.npz"),
        "{t}/a.npz: not a readable .npz",
        bad_bytes("a.npz", b"\x93NUMPY junk"),
        ["{t}/o.npz"],
    ),
    "avg_no_step_checkpoints": Case(
        weights_average,
        fmt("--input_folder", "{t}/in", "--output_file", "{t}/o.npz"),
        "no <prefix>_step<N>.ckpt file in {t}/in",
        text_file("in/x_best.ckpt", "x"),
    ),
    "avg_last_zero": Case(
        weights_average,
        fmt("--input_folder", "{w}/ckpt", "--last", "0", "--output_file", "{t}/o"),
        "--last must be at least 1",
    ),
    "avg_same_weights_twice": Case(
        weights_average,
        fmt("--input_folder", "{w}/ckpt", "--output_file", "{t}/o.npz"),
        "holds the same weights as",
        None,
        ["{t}/o.npz"],
    ),
    "avg_non_numeric_npz": Case(
        weights_average,
        fmt("--input_files", "{t}/a.npz", "--output_file", "{t}/o.npz"),
        "{t}/a.npz: entries that are not numbers: embedding.table",
        lambda w, t: np.savez(t / "a.npz", **{"embedding.table": np.array(["a", "b"])}),
        ["{t}/o.npz"],
    ),
    # scripts/plot_curves.py
    "curves_output_is_folder": Case(plot_curves, fmt("{w}/run", "--output", "{w}/raw"), "{w}/raw: is a folder"),
    "curves_not_utf8": Case(
        plot_curves,
        fmt("{t}/r", "--output", "{t}/c.png"),
        "{t}/r/metrics.jsonl:2: bytes",
        bad_bytes("r/metrics.jsonl", b'{"step": 1, "loss": 2}\n\xff\n'),
        ["{t}/c.png"],
    ),
    "curves_not_json": Case(
        plot_curves,
        fmt("{t}/r", "--output", "{t}/c.png"),
        "{t}/r/metrics.jsonl:2: not a JSON",
        text_file("r/metrics.jsonl", '{"step": 1, "loss": 2}\n{"step": 2,\n'),
        ["{t}/c.png"],
    ),
    # export.py
    "export_truncated": Case(
        export,
        fmt("--ckpt_file", "{t}/a.ckpt", "--file_name", "{t}/m"),
        "{t}/a.ckpt: not a readable",
        text_file("a.ckpt", "x"),
        ["{t}/m.mindir"],
    ),
    "export_output_under_file": Case(
        export, fmt("--ckpt_file", CKPT, "--file_name", "{w}/vocab.txt/m"), "{w}/vocab.txt: is a file"
    ),
    # shell scripts
    "subword_output_is_folder": Case(
        ["bash", "scripts/learn_subword.sh"], fmt("-i", "{w}/bpe", "-o", "{w}/raw"), "{w}/raw: is a folder"
    ),
    "subword_not_utf8": Case(
        ["bash", "scripts/learn_subword.sh"],
        fmt("-i", "{t}/in", "-o", "{t}/codes"),
        "{t}/in/a.txt:2: bytes that are not valid UTF-8",
        bad_bytes("in/a.txt"),
        ["{t}/codes"],
    ),
    "subword_empty": Case(
        ["bash", "scripts/learn_subword.sh"],
        fmt("-i", "{t}/e.txt", "-o", "{t}/codes"),
        "{t}/e.txt: no text",
        text_file("e.txt", "\n \n"),
        ["{t}/codes"],
    ),
    "subword_missing_input": Case(
        ["bash", "scripts/learn_subword.sh"], fmt("-i", "{t}/nope", "-o", "{t}/codes"), "input not found: {t}/nope"
    ),
    "launcher_output_is_file": Case(
        ["bash", "scripts/run_cpu.sh"],
        fmt("-t", "t", "-c", "config/tiny.json", "-o", "{w}/vocab.txt"),
        "{w}/vocab.txt: is a file",
    ),
    "stop_garbage_pid_file": Case(
        ["bash", "scripts/stop_training.sh"],
        fmt("{t}/r"),
        "{t}/r/train.pid: not a pid file",
        text_file("r/train.pid", "hello\n"),
    ),
    "stop_pid_reused": Case(
        ["bash", "scripts/stop_training.sh"],
        fmt("{t}/r"),
        "is not the job that wrote it",
        lambda w, t: text_file("r/train.pid", f"{os.getpid()} 1 {t / 'r'}\n")(w, t),
        ["{t}/r/train.pid"],
    ),
}



# ------------------------------------------------------------------ round 3: nothing silently wrong


def spoiled_weights(name, value=np.nan, change=None):
    """A copy of the world's checkpoint (``.ckpt``: with its run state, written by save_checkpoint) or its
    weights (``.npz``, written by NumPy, as a foreign tool would) with one weight set to ``value``, or
    ``change(state)`` applied to its run state."""

    def setup(w, t):
        from mindspore import Tensor

        from src.utils.checkpoint import load_checkpoint

        params, state = load_checkpoint(w / "ckpt" / "m_step2.ckpt")
        arrays = {n: p.asnumpy() for n, p in params.items()}
        arrays["embedding.table"][3, 2] = value
        if name.endswith(".npz"):
            np.savez(t / name, **arrays)
            return
        if change is not None:
            state = change(state)
        save_checkpoint(t / name, [{"name": n, "data": Tensor(v)} for n, v in arrays.items()], state)

    return setup


def flip_byte(relative, source, where=None):
    """A copy of ``source`` (a world path, or a folder copied whole) with one byte changed, its size kept:
    at ``where(data)``, else in the middle of the file."""

    def setup(w, t):
        if (w / source).is_dir():
            shutil.copytree(w / source, t / source)
        else:
            (t / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(w / source, t / relative)
        path = t / relative
        data = bytearray(path.read_bytes())
        at = where(bytes(data)) if where else len(data) // 2
        data[at] ^= 0x01
        path.write_bytes(bytes(data))

    return setup


def _inside_embedding(data):  # a byte inside the embedding table's values
    from mindspore.train import checkpoint_pb2

    proto = checkpoint_pb2.Checkpoint()
    proto.ParseFromString(data)
    content = next(v.tensor.tensor_content for v in proto.value if v.tag == "embedding.table")
    return data.index(content) + len(content) // 2


def npz_of_world(w, t):
    from src.utils.checkpoint import read_weights, save_npz

    save_npz(t / "w.npz", read_weights(w / "ckpt" / "m_step2.ckpt"))


def world_config(name, *overrides):
    """The world checkpoint's own config (as stored in it), with ``overrides``, written to ``name``."""

    def setup(w, t):
        from src.utils.checkpoint import config_of, load_checkpoint

        _, state = load_checkpoint(w / "ckpt" / "m_step2.ckpt")
        MassConfig.from_dict(config_of(state)).override(list(overrides)).to_json(t / name)

    return setup


# the world checkpoint's model: tiny.json with these sizes
WORLD_MODEL = ["--model_config.hidden_size=16", "--model_config.intermediate_size=32"]
EVAL_OUT = ["--test_dataset={w}/data/gigaword_test.mindrecord", "--output", "{t}/o.txt"]
EVAL_ABSENT = ["{t}/o.txt", "{t}/o.txt.report.json", "{t}/o.txt.summary.txt"]
TRAIN_LOG = ["{t}/run/train.log"]  # a failed train.py leaves its log, never config.json or a checkpoint


def long_sources(w, t):
    write_lines(t / "src.txt", ["the cat sat " * 30, "the dog"])
    write_lines(t / "ref.txt", ["cat", "dog"])


CASES.update({
    # NaN / Inf in weights (class 4): refused by every reader, nothing written
    "eval_nan_checkpoint": Case(eval_script, eval_argv(*EVAL_OUT, ckpt="{t}/m.ckpt"), "{t}/m.ckpt: NaN or Inf",
                                spoiled_weights("m.ckpt"), EVAL_ABSENT),
    "eval_inf_npz": Case(eval_script, eval_argv("--config", "{t}/c.json", *EVAL_OUT, ckpt="{t}/m.npz"),
                         "{t}/m.npz: NaN or Inf", lambda w, t: (spoiled_weights("m.npz", np.inf)(w, t),
                                                                world_config("c.json")(w, t)), EVAL_ABSENT),
    "avg_nan_input": Case(weights_average, fmt("--input_files", "{w}/ckpt/m_step1.ckpt,{t}/m_step3.ckpt",
                                               "--output_file", "{t}/o.npz"),
                          "{t}/m_step3.ckpt: NaN or Inf", spoiled_weights("m_step3.ckpt"), ["{t}/o.npz"]),
    "avg_inf_npz_input": Case(weights_average, fmt("--input_files", "{t}/m.npz", "--output_file", "{t}/o.npz"),
                              "{t}/m.npz: NaN or Inf", spoiled_weights("m.npz", -np.inf), ["{t}/o.npz"]),
    "export_nan_checkpoint": Case(export, fmt("--ckpt_file", "{t}/m.ckpt", "--file_name", "{t}/m"),
                                  "{t}/m.ckpt: NaN or Inf", spoiled_weights("m.ckpt"), ["{t}/m.mindir"]),
    "train_existed_ckpt_nan": Case(
        [sys.executable, "train.py"], train_argv(*WORLD_MODEL, "--checkpoint_options.existed_ckpt={t}/m.ckpt"),
        "{t}/m.ckpt: NaN or Inf", lambda w, t: (copy_data(w, t), spoiled_weights("m.ckpt")(w, t)),
        ["{t}/run/config.json", "{t}/run/checkpoints"], logs=TRAIN_LOG),
    "train_resume_inf": Case(
        [sys.executable, "train.py"], train_argv(*WORLD_MODEL, "--resume", "{t}/m_step2.ckpt"),
        "{t}/m_step2.ckpt: NaN or Inf", lambda w, t: (copy_data(w, t), spoiled_weights("m_step2.ckpt", np.inf)(w, t)),
        ["{t}/run/config.json", "{t}/run/checkpoints"], logs=TRAIN_LOG),
    # a config that does not match its weights (class 2): both values named, nothing written
    "eval_config_other_heads": Case(
        eval_script, eval_argv("--config", "{t}/c.json", *EVAL_OUT),
        "model_config.num_attention_heads: 4 here, 2 in the checkpoint",
        world_config("c.json", "--model_config.num_attention_heads=4"), EVAL_ABSENT),
    "eval_config_other_positions": Case(
        eval_script, eval_argv("--config", "{t}/c.json", *EVAL_OUT),
        "model_config.max_position_embeddings: 128 here, 64 in the checkpoint",
        world_config("c.json", "--model_config.max_position_embeddings=128"), EVAL_ABSENT),
    "eval_override_other_layers": Case(
        eval_script, eval_argv(*EVAL_OUT, "--model_config.num_decoder_layers=3"),
        "model_config.num_decoder_layers: 3 here, 2 in the checkpoint", None, EVAL_ABSENT),
    "eval_override_other_activation": Case(
        eval_script, eval_argv(*EVAL_OUT, "--model_config.hidden_act=gelu"),
        "may differ from the checkpoint's config", None, EVAL_ABSENT),
    "eval_config_other_vocabulary_size": Case(
        eval_script, eval_argv("--config", "{t}/c.json", *EVAL_OUT), "model_config.vocab_size: 99 here",
        world_config("c.json", "--model_config.vocab_size=99"), EVAL_ABSENT),
    "train_existed_ckpt_other_heads": Case(
        [sys.executable, "train.py"],
        train_argv(*WORLD_MODEL, "--model_config.num_attention_heads=4",
                   "--checkpoint_options.existed_ckpt={w}/ckpt/m_step2.ckpt"),
        "model_config.num_attention_heads: 4 here, 2 in the checkpoint", copy_data,
        ["{t}/run/config.json", "{t}/run/checkpoints"], logs=TRAIN_LOG),
    "train_resume_other_size": Case(
        [sys.executable, "train.py"], train_argv("--resume", "{w}/ckpt/m_step2.ckpt"),
        "model_config.hidden_size: 32 here, 16 in the checkpoint", copy_data,
        ["{t}/run/config.json", "{t}/run/checkpoints"], logs=TRAIN_LOG),
    "train_run_folder_of_another_model": Case(
        [sys.executable, "train.py"], train_argv(*WORLD_MODEL),
        "{t}/run/config.json: the run folder holds a run of another model: model_config.hidden_size: 16 here, "
        "64 in that run",
        lambda w, t: (copy_data(w, t), (t / "run").mkdir(),
                      MassConfig.from_json(ROOT / "config/tiny.json").override(
                          ["--model_config.hidden_size=64"]).to_json(t / "run" / "config.json")),
        ["{t}/run/checkpoints"], logs=TRAIN_LOG),
    # resume from weights without their optimizer state (class 6)
    "train_resume_missing_optimizer": Case(
        [sys.executable, "train.py"], train_argv(*WORLD_MODEL, "--resume", "{w}/ckpt/m_step2.ckpt"),
        "{w}/ckpt/m_step2.ckpt: cannot resume: ", copy_data,
        ["{t}/run/config.json", "{t}/run/checkpoints"], logs=TRAIN_LOG),
    # changed bytes, same size (class 3)
    "eval_checkpoint_byte_changed": Case(
        eval_script, eval_argv(*EVAL_OUT, ckpt="{t}/m.ckpt"), "{t}/m.ckpt: changed or damaged bytes",
        flip_byte("m.ckpt", "ckpt/m_step2.ckpt", _inside_embedding), EVAL_ABSENT),
    "export_checkpoint_byte_changed": Case(
        export, fmt("--ckpt_file", "{t}/m.ckpt", "--file_name", "{t}/m"), "{t}/m.ckpt: changed or damaged bytes",
        flip_byte("m.ckpt", "ckpt/m_step2.ckpt", _inside_embedding), ["{t}/m.mindir"]),
    "avg_npz_byte_changed": Case(
        weights_average, fmt("--input_files", "{t}/m.npz", "--output_file", "{t}/o.npz"),
        "{t}/m.npz: not a readable .npz",
        lambda w, t: (npz_of_world(w, t), flip_byte("m.npz", "w.npz")(t, t)), ["{t}/o.npz"]),
    "train_part_byte_changed": Case(
        train, train_argv(), "news_crawl_len_16.mindrecord.part00000: changed or damaged bytes",
        flip_byte("data/news_crawl_len_16.mindrecord.part00000", "data", lambda d: 200)),
    "train_index_byte_changed": Case(
        train, train_argv(), "news_crawl_len_16.mindrecord.part00000.db: changed or damaged bytes",
        flip_byte("data/news_crawl_len_16.mindrecord.part00000.db", "data")),
    "eval_test_part_byte_changed": Case(
        eval_script, eval_argv("--test_dataset={t}/data/gigaword_test.mindrecord", "--output", "{t}/o.txt"),
        "gigaword_test.mindrecord.part00000: changed or damaged bytes",
        flip_byte("data/gigaword_test.mindrecord.part00000", "data"),
        EVAL_ABSENT),
    # degenerate inputs and settings (class 5)
    "eval_empty_test_src": Case(
        eval_script, eval_argv("--test_src", "{t}/e.txt", "--test_ref", "{t}/e.txt", "--vocab", "{w}/vocab.txt",
                               "--output", "{t}/o.txt"),
        "{t}/e.txt: no test line", text_file("e.txt", ""), EVAL_ABSENT),
    "eval_beam_zero": Case(eval_script, eval_argv(*EVAL_OUT, "--decode_config.beam_width=0"),
                           "decode_config.beam_width: must be positive", None, EVAL_ABSENT),
    "train_max_steps_negative": Case(train, train_argv("--max_steps", "-3"), "--max_steps must be >= 0", copy_data),
    "train_lr_zero": Case(train, train_argv("--learn_rate_config.lr=0"), "learn_rate_config.lr: must be positive",
                          copy_data),
    "train_fragment_ratio_zero": Case(train, train_argv("--mask_config.mask_ratio=0"),
                                      "mask_config.mask_ratio: must lie in (0, 1]", copy_data),
    "tok_empty_corpus": Case(tokenize_corpus, fmt("--corpus_folder", "{t}/in", "--output_folder", "{t}/o"),
                             "{t}/in/a.txt: no text", text_file("in/a.txt", "\n  \n"), ["{t}/o/a_tokenized.txt"]),
    "tok_everything_dropped": Case(  # main() returns the statistics; the command line refuses
        [sys.executable, "tokenize_corpus.py"],
        fmt("--corpus_folder", "{t}/in", "--output_folder", "{t}/o", "--max_tokens", "2"),
        "no line left after tokenization (2 read: 0 empty, 2 longer than 2 tokens)",
        text_file("in/a.txt", "the cat sat\nthe dog ran\n"), ["{t}/o/a_tokenized.txt"],
        logs=["{t}/o/text_options.json"]),
    "bpe_empty_input": Case(
        apply_bpe_encoding, fmt("--codes", "{w}/codes.txt", "--src_folder", "{t}/in", "--existed_vocab",
                                "{w}/vocab.txt", "--output_folder", "{t}/o"),
        "{t}/in/a.txt: no text", text_file("in/a.txt", ""), ["{t}/o/a_bpe.txt"]),
    "news_everything_dropped": Case(
        news_crawl, fmt("--src_folder", "{t}/in", "--output_folder", "{t}/o", "--existed_vocab", "{w}/vocab.txt",
                        "--processes", "1", "--max_len", "16", "--min_len", "12"),
        "no example left", text_file("in/a.txt", "the cat sat on the mat\n"),
        ["{t}/o/news_crawl_len_16.mindrecord.manifest.json"]),
    # the stop script never signals what it did not start (class 6)
    "stop_pid_file_without_start_time": Case(
        ["bash", "scripts/stop_training.sh"], fmt("{t}/r"), "it must hold the process id, its start time",
        lambda w, t: text_file("r/train.pid", f"{os.getpid()}\n")(w, t)),
})

@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input_is_a_clear_error(name, world, tmp_path, capsys):
    case = CASES[name]
    values = {"w": world, "t": tmp_path}
    if case.setup is not None:
        case.setup(world, tmp_path)
    before = files_under(tmp_path, world)
    argv = [str(a) for a in case.argv(world, tmp_path)]
    if isinstance(case.script, list):
        done = subprocess.run([*case.script, *argv], cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
        status, err = done.returncode, done.stderr
    else:
        mode = ms.get_context("mode")
        try:
            status = run_cli(case.script.main, argv)
        except SystemExit as usage:  # argparse's own usage errors: "<prog>: error: ...", status 2
            status = usage.code
        err = capsys.readouterr().err
        assert ms.get_context("mode") == mode  # nothing reached the device set-up
    message = case.message.format(**values)
    assert status == 2, err[-2000:]
    assert "Traceback" not in err and "error: " in err, err[-2000:]
    assert message in err, err[-2000:]
    for pattern in case.absent:
        assert not Path(pattern.format(**values)).exists(), pattern
    written = {str(p) for p in files_under(tmp_path, world) - before}
    assert written == {log.format(**values) for log in case.logs} & written  # nothing else, not even a temporary


def files_under(*folders) -> set:
    return {p for folder in folders for p in Path(folder).rglob("*") if p.is_file()}


def test_there_are_at_least_fifty_cases_across_every_script():
    scripts = {c.script.__name__ if not isinstance(c.script, list) else c.script[-1] for c in CASES.values()}
    assert len(CASES) >= 50
    assert {
        "tokenize_corpus",
        "apply_bpe_encoding",
        "news_crawl",
        "gigaword",
        "cornell_dialog",
        "train",
        "eval",
        "weights_average",
        "export",
        "scripts.plot_curves",
        "scripts/learn_subword.sh",
    } <= scripts


# ------------------------------------------------------------------ a write that fails half-way (full disk)


def _file_size_limit():  # in the child: writes past 1,000 bytes fail with EFBIG, as on a full disk
    import resource
    import signal

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (1000, 1000))


WRITE_FAILURES = {
    "tokenize_corpus": (
        ["tokenize_corpus.py", "--corpus_folder", "{w}/raw", "--output_folder", "{t}/o"],
        "{t}/o/news_tokenized.txt",
    ),
    "apply_bpe_encoding": (
        [
            "apply_bpe_encoding.py",
            "--codes",
            "{w}/codes.txt",
            "--src_folder",
            "{w}/bpe",
            "--existed_vocab",
            "{w}/vocab.txt",
            "--output_folder",
            "{t}/o",
        ],
        "{t}/o/news_bpe.txt",
    ),
    "weights_average": (
        ["weights_average.py", "--input_files", "{w}/ckpt/m_step1.ckpt", "--output_file", "{t}/a.npz"],
        "{t}/a.npz",
    ),
    "train": (
        [
            "train.py",
            "--config",
            str(ROOT / "config/tiny.json"),
            "--output",
            "{t}/run",
            "--dataset_config.pre_train_dataset={w}/data/news_crawl_len_16.mindrecord",
        ],
        "{t}/run/config.json",
    ),
}


@pytest.mark.parametrize("name", sorted(WRITE_FAILURES))
def test_a_failed_write_is_a_clear_error_and_leaves_nothing(name, world, tmp_path):
    argv, target = WRITE_FAILURES[name]
    values = {"w": world, "t": tmp_path}
    done = subprocess.run(
        [sys.executable, *[a.format(**values) for a in argv]],
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=_file_size_limit,
    )
    target = target.format(**values)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert f"error: {target}: File too large" in done.stderr, done.stderr[-2000:]
    assert not Path(target).exists()
    assert [p for p in tmp_path.rglob("*") if p.name.startswith(".")] == []  # no temporary left
