"""Streaming dataset builders: text lines -> token ids -> filters -> MindRecord, with counted drops.

Every line is either written or counted under a named reason (``empty``, ``too_long``, ``too_short``),
and the counts go into the manifest. Memory does not grow with the corpus: lines are read lazily and
written in blocks.
"""

import logging
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
from tqdm import tqdm

from src.dataset import schema
from src.dataset.writer import MindRecordDatasetWriter
from src.language_model import example_rng
from src.language_model.loose_masked_language_model import loose_mask, to_modelzoo_record
from src.language_model.noise_channel_language_model import add_noise
from src.utils.dictionary import Dictionary
from src.utils.errors import UserError
from src.utils.fileio import count_lines, iter_lines
from src.utils.parallel import close_pool, make_pool, ordered_pool_map

logger = logging.getLogger(__name__)

CHUNK_LINES = 2000
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


def _numbered_chunks(path, size=CHUNK_LINES):
    chunk = []
    for item in iter_lines(path):
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


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
        for encoded in ordered_pool_map(pool, _encode_chunk, _numbered_chunks(path), 2 * processes + 2):
            yield from encoded
        failed = False
    finally:
        close_pool(pool, failed)


def _progress(path, desc):
    return tqdm(total=count_lines(path), desc=desc, unit=" lines", mininterval=1.0, leave=False)


# ---------------------------------------------------------------- monolingual (pre-training)

@dataclass
class MonoOptions:
    min_len: int = 1            # in tokens, </s> included
    max_len: int = 64
    static_mask: bool = False   # ModelZoo's fixed 6-column, masked-once layout
    mask_ratio: float = 0.5
    seed: int = 1
    valid_every: int = 0        # every N-th kept sentence goes to the valid split (0: no valid split)
    max_unk_rate: float = 0.2
    processes: int = 1


def build_monolingual(paths, vocab: Dictionary, vocab_path, train_out, valid_out, opts: MonoOptions,
                      shard_num=1):
    """Write pre-training datasets from BPE'd text files; returns (train_stats, valid_count)."""
    kind = schema.KIND_MODELZOO if opts.static_mask else schema.KIND_MONO
    stats = BuildStats()
    writers = {"train": MindRecordDatasetWriter(train_out, kind, shard_num)}
    if opts.valid_every:
        writers["valid"] = MindRecordDatasetWriter(valid_out, kind, 1)
    counts = Counter()
    kept = 0
    try:
        for path in paths:
            with _progress(path, path.name) as bar:
                for line_no, ids in encode_file(path, vocab, vocab_path, opts.processes):
                    bar.update()
                    stats.lines += 1
                    reason = _mono_drop_reason(ids, opts)
                    if reason:
                        stats.dropped[reason] += 1
                        continue
                    stats.count_tokens(ids, vocab.unk)
                    stats.check_unk_rate(opts.max_unk_rate, f"{path}:{line_no}")
                    kept += 1
                    split = "valid" if opts.valid_every and kept % opts.valid_every == 0 else "train"
                    row = _mono_row(ids, counts[split], opts)
                    if row is None:
                        stats.dropped["too_long_for_static_mask"] += 1
                        continue
                    writers[split].write(row)
                    counts[split] += 1
        stats.written = counts["train"]
        options = {k: getattr(opts, k) for k in ("min_len", "max_len", "static_mask", "mask_ratio", "seed",
                                                 "valid_every")}
        common = {"vocab_size": len(vocab), "vocab_path": str(vocab_path), "options": options,
                  "sources": [str(p) for p in paths]}
        writers["train"].finish({**common, "split": "train", "stats": stats.as_dict()})
        if counts["valid"]:
            writers["valid"].finish({**common, "split": "valid"})
        elif "valid" in writers:
            logger.warning("no sentence went to the validation split (too few sentences for --valid_every)")
    finally:
        for w in writers.values():
            w.close()
    return stats, counts["valid"]


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
                split: str, shard_num=1, extra_manifest=None) -> BuildStats:
    """Write one split of (source, target) pairs; returns the build statistics."""
    stats = BuildStats()
    with MindRecordDatasetWriter(out_path, schema.KIND_PAIR, shard_num) as writer, \
            _progress(src_path, f"{split} pairs") as bar:
        for line_no, src, tgt in iter_pair_ids(src_path, tgt_path, vocab, vocab_path, opts.processes):
            bar.update()
            stats.lines += 1
            row = _pair_row(src, tgt, stats.written, opts, stats)
            if row is None:
                continue
            stats.count_tokens(row[schema.SOURCE_IDS], vocab.unk)
            stats.check_unk_rate(opts.max_unk_rate, f"{src_path}:{line_no}")
            writer.write(row)
            stats.written += 1
        options = {k: getattr(opts, k) for k in ("max_len", "max_tgt_len", "keep_all", "noise_prob", "seed")}
        writer.finish({"split": split, "vocab_size": len(vocab), "vocab_path": str(vocab_path),
                       "options": options, "sources": [str(src_path), str(tgt_path)],
                       "stats": stats.as_dict(), **(extra_manifest or {})})
    return stats


def _pair_row(src, tgt, index, opts, stats):
    eos_only = np.array([2], dtype=np.int32)
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
