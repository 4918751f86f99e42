"""Streaming dataset builders: text lines -> token ids -> filters -> MindRecord, with counted drops.

Every line is either written or counted under a named reason (``empty``, ``too_long``, ``too_short``),
and the counts go into the manifest. Memory does not grow with the corpus: lines are read lazily and
written in blocks.
"""

import logging
import os
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
from tqdm import tqdm

from src.dataset import schema
from src.dataset.modelzoo import to_modelzoo_record
from src.dataset.writer import Build, MindRecordDatasetWriter, file_sha256
from src.language_model import example_rng
from src.language_model.loose_masked_language_model import loose_mask
from src.language_model.noise_channel_language_model import add_noise
from src.text import text_options
from src.text.dictionary import EOS_ID, Dictionary
from src.utils.errors import UserError
from src.utils.fileio import count_lines, iter_lines
from src.utils.parallel import chunked_lines, close_pool, make_pool, ordered_pool_map

logger = logging.getLogger(__name__)

UNK_CHECK_AFTER = 2000  # tokens seen before the <unk> rate is first checked (fail fast on a wrong vocab)


@dataclass
class BuildStats:
    """Counts for the manifest: lines read, examples written, drops by reason, <unk> rate."""

    lines: int = 0
    written: int = 0
    dropped: Counter = field(default_factory=Counter)
    tokens: int = 0
    unk_tokens: int = 0
    longest: int = 0
    kept_longer_than_max: int = 0

    def count_tokens(self, ids, unk_id):
        self.tokens += len(ids)
        self.unk_tokens += int(np.count_nonzero(ids == unk_id))
        self.longest = max(self.longest, len(ids))

    def merge(self, other: "BuildStats"):
        self.lines += other.lines
        self.written += other.written
        self.dropped.update(other.dropped)
        self.tokens += other.tokens
        self.unk_tokens += other.unk_tokens
        self.longest = max(self.longest, other.longest)
        self.kept_longer_than_max += other.kept_longer_than_max

    @property
    def unk_rate(self) -> float:
        return self.unk_tokens / self.tokens if self.tokens else 0.0

    def check_unk_rate(self, max_rate, source):
        if self.tokens >= UNK_CHECK_AFTER and self.unk_rate > max_rate:
            raise UserError(
                f"{source}: {self.unk_rate:.1%} of the tokens are <unk> (limit {max_rate:.0%}); the "
                "vocabulary does not match the data (was it built from the same BPE codes?)")

    def as_dict(self) -> dict:
        return {"lines": self.lines, "written": self.written, "dropped": dict(self.dropped),
                "tokens": self.tokens, "unk_tokens": self.unk_tokens, "unk_rate": round(self.unk_rate, 6),
                "longest": self.longest, "kept_longer_than_max_len": self.kept_longer_than_max}


# ---------------------------------------------------------------- parallel encoding of text lines

_worker_vocab: Dictionary | None = None


def _init_worker(vocab_path):
    global _worker_vocab
    _worker_vocab = Dictionary.load_from_persisted_dict(vocab_path)


def _encode_chunk(numbered_lines):
    return [(line_no, encode_text(_worker_vocab, line)) for line_no, line in numbered_lines]


def encode_text(vocab, line):
    """Token ids of a BPE'd line plus ``</s>``, or None for an empty or whitespace-only line."""
    return vocab.encode_line(line) if line.strip() else None


def encode_file(path, vocab: Dictionary, vocab_path, processes=1):
    """Yield ``(line_no, ids or None for an empty line)`` for every line of ``path``, in order.

    With ``processes > 1`` the lookups run in a pool (each worker loads the vocabulary once); worker
    errors surface here.
    """
    if processes <= 1:
        for line_no, line in iter_lines(path):
            yield line_no, encode_text(vocab, line)
        return
    pool = make_pool(processes, _init_worker, (str(vocab_path),))
    failed = True
    try:
        for encoded in ordered_pool_map(pool, _encode_chunk, chunked_lines(path, numbered=True), 2 * processes + 2):
            yield from encoded
        failed = False
    finally:
        close_pool(pool, failed)


def _progress(path, desc):
    return tqdm(total=count_lines(path), desc=desc, unit=" lines", mininterval=1.0, leave=False)


# ---------------------------------------------------------------- monolingual (pre-training)

MONO_PART_LINES = 50_000  # lines per part file (one task for a worker process)


@dataclass
class MonoOptions:
    min_len: int = 1            # in tokens, </s> included
    max_len: int = 64
    static_mask: bool = False   # ModelZoo's fixed 6-column, masked-once layout
    mask_ratio: float = 0.5
    seed: int = 1
    valid_every: int = 0        # every N-th input line goes to the valid split (0: no valid split)
    max_unk_rate: float = 0.2
    processes: int = 1
    part_lines: int = MONO_PART_LINES


def _mono_tasks(paths, opts, outputs):
    """Cut the input into parts: ``(part_no, ordinal of the part's first line, path, lines, part paths)``.

    The example ``index`` is the line's ordinal over all input files, so it does not depend on how
    many lines other parts dropped, and parts can be written independently."""
    part_no, ordinal = 0, 0
    for path in paths:
        for lines in chunked_lines(path, opts.part_lines, numbered=True):
            yield part_no, ordinal, str(path), lines, {k: str(o.part_path(part_no)) for k, o in outputs.items()}
            part_no, ordinal = part_no + 1, ordinal + len(lines)


def _write_mono_part(task, opts, kind, vocab=None):
    """Encode, filter and write one part (in a worker process); returns (rows per split, stats)."""
    from src.dataset.writer import PartFile

    _, ordinal, path, lines, part_paths = task
    vocab = vocab or _worker_vocab
    stats = BuildStats()
    parts = {split: PartFile(p, kind) for split, p in part_paths.items()}
    for offset, (line_no, line) in enumerate(lines):
        stats.lines += 1
        ids = encode_text(vocab, line)
        reason = _mono_drop_reason(ids, opts)
        if reason:
            stats.dropped[reason] += 1
            continue
        stats.count_tokens(ids, vocab.unk)
        stats.check_unk_rate(opts.max_unk_rate, f"{path}:{line_no}")
        index = ordinal + offset
        split = "valid" if opts.valid_every and (index + 1) % opts.valid_every == 0 else "train"
        row = _mono_row(ids, index, opts)
        if row is None:
            stats.dropped["too_long_for_static_mask"] += 1
            continue
        parts[split].write(row)
    return {split: part.close() for split, part in parts.items()}, stats


def build_monolingual(paths, vocab: Dictionary, vocab_path, train_out, valid_out, opts: MonoOptions):
    """Write pre-training datasets from BPE'd text files; returns (train_stats, valid_count).

    Parts of ``opts.part_lines`` lines are encoded and written by ``opts.processes`` workers at once."""
    import functools

    from src.dataset.writer import DatasetOutput, remove_dataset

    kind = schema.KIND_MODELZOO if opts.static_mask else schema.KIND_MONO
    outputs = {}
    try:
        outputs["train"] = DatasetOutput(train_out, kind)
        if opts.valid_every:
            outputs["valid"] = DatasetOutput(valid_out, kind)
    except BaseException:  # e.g. the validation set is being built by another process
        for output in outputs.values():
            output.close()
        raise
    stats, counts = BuildStats(), Counter()
    if opts.processes > 1:
        pool, work = make_pool(opts.processes, _init_worker, (str(vocab_path),)), functools.partial(
            _write_mono_part, opts=opts, kind=kind)
    else:
        pool, work = None, functools.partial(_write_mono_part, opts=opts, kind=kind, vocab=vocab)
    failed = True
    total = sum(count_lines(p) for p in paths)
    try:
        with tqdm(total=total, desc="encode+write", unit=" lines", mininterval=1.0, leave=False) as bar:
            for rows, part_stats in ordered_pool_map(pool, work, _mono_tasks(paths, opts, outputs),
                                                     opts.processes + 1):
                counts.update(rows)
                stats.merge(part_stats)
                bar.update(part_stats.lines)
        failed = False
        stats.written = counts["train"]
        options = {k: getattr(opts, k) for k in ("min_len", "max_len", "static_mask", "mask_ratio", "seed",
                                                 "valid_every")}
        common = {"vocab_path": str(vocab_path), "options": options, **source_manifest(paths),
                  "text": text_options.common(paths, "the input files")}
        with Build(vocab) as build:
            build.add(outputs["train"], counts["train"], {**common, "split": "train", "stats": stats.as_dict()})
            if counts["valid"]:
                build.add(outputs["valid"], counts["valid"], {**common, "split": "valid"})
            else:  # a validation set from an earlier build would no longer match this training set
                remove_dataset(valid_out)
                if "valid" in outputs:
                    logger.warning("no sentence went to the validation split (too few lines for --valid_every)")
            build.publish()
    finally:
        close_pool(pool, failed)
        for output in outputs.values():
            output.close()
    return stats, counts["valid"]


def source_manifest(paths) -> dict:
    """What a manifest records of the files a dataset was built from: ``sources``, their absolute paths, and
    ``source_files``, per file its absolute path, sha256 and line count. eval.py takes a test set's references
    from that very file (never one that happens to lie at the same relative path in another working folder),
    and refuses it once its bytes have changed (edited or reordered references would be scored against the
    wrong hypotheses)."""
    records = [{"path": os.path.abspath(p), "sha256": file_sha256(p), "lines": count_lines(p)} for p in paths]
    return {"sources": [r["path"] for r in records], "source_files": records}


def _mono_drop_reason(ids, opts):
    if ids is None:
        return "empty"
    if len(ids) > opts.max_len:
        return "too_long"
    if len(ids) < opts.min_len:
        return "too_short"
    return None


def _mono_row(ids, index, opts):
    if not opts.static_mask:
        return {schema.IDS: ids, schema.INDEX: index}
    example = loose_mask(ids, rng=example_rng(opts.seed, 0, index), mask_ratio=opts.mask_ratio)
    return to_modelzoo_record(example, opts.max_len)


# ---------------------------------------------------------------- pairs (fine-tuning, test)

@dataclass
class PairOptions:
    max_len: int = 64           # source cap (tokens, </s> included); longer training pairs are dropped
    max_tgt_len: int = 64
    keep_all: bool = False      # test splits: nothing filtered or truncated, lengths recorded
    noise_prob: float = 0.0     # source tokens replaced by <mask> (training only)
    seed: int = 1
    max_unk_rate: float = 0.2
    processes: int = 1


def iter_pair_ids(src_path, tgt_path, vocab, vocab_path, processes=1):
    """Yield ``(line_no, src_ids, tgt_ids)``; a line-count mismatch is an error naming both files."""
    n_src, n_tgt = count_lines(src_path), count_lines(tgt_path)
    if n_src != n_tgt:
        raise UserError(f"{src_path} has {n_src} lines but {tgt_path} has {n_tgt}: sources and targets "
                        "must pair line by line")
    src_iter = encode_file(src_path, vocab, vocab_path, processes)
    tgt_iter = encode_file(tgt_path, vocab, vocab_path, processes)
    for (line_no, src), (_, tgt) in zip(src_iter, tgt_iter, strict=True):
        yield line_no, src, tgt


def build_pairs(src_path, tgt_path, vocab: Dictionary, vocab_path, out_path, opts: PairOptions,
                split: str, extra_manifest=None, build: Build | None = None) -> BuildStats:
    """Write one split of (source, target) pairs; returns the build statistics. With ``build``, the
    split is only handed to it, to be published with the build's other splits (``build.publish()``);
    without, it is published at once as a build of its own."""
    own_build = build is None
    build = Build(vocab) if own_build else build
    stats = BuildStats()
    with MindRecordDatasetWriter(out_path, schema.KIND_PAIR) as writer, \
            _progress(src_path, f"{split} pairs") as bar:
        for line_no, src, tgt in iter_pair_ids(src_path, tgt_path, vocab, vocab_path, opts.processes):
            bar.update()
            stats.lines += 1
            row = _pair_row(src, tgt, line_no - 1, opts, stats)  # index = the source line, 0-based
            if row is None:
                continue
            stats.count_tokens(row[schema.SOURCE_IDS], vocab.unk)
            stats.check_unk_rate(opts.max_unk_rate, f"{src_path}:{line_no}")
            writer.write(row)
            stats.written += 1
        options = {k: getattr(opts, k) for k in ("max_len", "max_tgt_len", "keep_all", "noise_prob", "seed")}
        sources = source_manifest([src_path, tgt_path])
        for record in sources["source_files"]:
            if record["lines"] != stats.lines:  # rewritten while it was read: the digest would describe another file
                raise UserError(f"{record['path']}: changed while the dataset was being built ({stats.lines} lines "
                                f"read, {record['lines']} now): build it again")
        writer.finish_into(build, {"split": split, "vocab_path": str(vocab_path), "options": options,
                                   **sources, "stats": stats.as_dict(),
                                   "text": text_options.common([src_path, tgt_path], "sources and targets"),
                                   **(extra_manifest or {})})
        if own_build:
            with build:
                build.publish()
    return stats


def _pair_row(src, tgt, index, opts, stats):
    eos_only = np.array([EOS_ID], dtype=np.int32)
    if opts.keep_all:
        if src is None or tgt is None:
            stats.dropped["empty_kept"] += 1  # counted, still written: test sets keep every line
        src = eos_only if src is None else src
        tgt = eos_only if tgt is None else tgt
        if len(src) > opts.max_len:
            stats.kept_longer_than_max += 1
    else:
        if src is None or tgt is None:
            stats.dropped["empty"] += 1
            return None
        if len(src) > opts.max_len or len(tgt) > opts.max_tgt_len:
            stats.dropped["too_long"] += 1
            return None
        if opts.noise_prob > 0:
            src = add_noise(src, rng=example_rng(opts.seed, 0, index), prob=opts.noise_prob)
    return {schema.SOURCE_IDS: src, schema.TARGET_IDS: tgt, schema.INDEX: index,
            schema.SOURCE_LENGTH: len(src)}
