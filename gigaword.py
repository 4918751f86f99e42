r"""Build Gigaword headline-generation datasets (MindRecord) from BPE-encoded article/title files.

Inputs are in the harvardnlp ``sumdata`` layout (one article per line, its title on the same line of
the title file), BPE-encoded with apply_bpe_encoding.py. Both ``UNK`` (test files) and ``<unk>``
(train/valid files) map to <unk>. Training pairs longer than --max_len / --max_tgt_len are dropped
and counted; the test split is never filtered or truncated: long articles are kept and their length
recorded (decoding cuts them to the model's length and says so).

Example:
    python gigaword.py --train_src bpe/train.article_bpe.txt --train_ref bpe/train.title_bpe.txt \
        --test_src bpe/input_bpe.txt --test_ref bpe/task1_ref0_bpe.txt \
        --existed_vocab vocab/vocab.txt --noise_prob 0.1 --output_folder data/gigaword
"""

import argparse
import logging
import sys
from pathlib import Path

from src.dataset.builders import PairOptions, build_pairs
from src.dataset.writer import Build
from src.text.dictionary import Dictionary
from src.utils.cli import run_cli
from src.utils.fileio import check_output_folder, require_file, room_for

logger = logging.getLogger("gigaword")
SPLITS = ("train", "valid", "test")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for split in SPLITS:
        p.add_argument(f"--{split}_src", help=f"BPE'd {split} articles")
        p.add_argument(f"--{split}_ref", help=f"BPE'd {split} titles, line-aligned with --{split}_src")
    p.add_argument("--existed_vocab", required=True, help="vocabulary written by apply_bpe_encoding.py")
    p.add_argument("--output_folder", required=True)
    p.add_argument("--noise_prob", type=float, default=0.0,
                   help="replace each training source token by <mask> with this probability")
    p.add_argument("--max_len", type=int, default=64, help="longest training source, tokens with </s>")
    p.add_argument("--max_tgt_len", type=int, default=32, help="longest training title, tokens with </s>")
    p.add_argument("--format", default="mindrecord", help="only mindrecord is supported")
    p.add_argument("--prefix", default="gigaword", help="output names: <prefix>_<split>.mindrecord")
    p.add_argument("--seed", type=int, default=1, help="seed of the source noise")
    p.add_argument("--max_unk_rate", type=float, default=0.2)
    p.add_argument("--processes", type=int, default=1)
    args = p.parse_args(argv)
    if args.format.lower() != "mindrecord":
        p.error(f"--format {args.format}: only mindrecord is written (TFRecord would need TensorFlow)")
    if not 0 <= args.noise_prob < 1:
        p.error("--noise_prob must be in [0, 1)")
    for split in SPLITS:
        if bool(getattr(args, f"{split}_src")) != bool(getattr(args, f"{split}_ref")):
            p.error(f"--{split}_src and --{split}_ref go together")
    if not any(getattr(args, f"{split}_src") for split in SPLITS):
        p.error("give at least one split (--train_src/--train_ref, --valid_..., --test_...)")
    return args


def main(argv=None):
    args = parse_args(argv)
    vocab_path = require_file(args.existed_vocab, "vocabulary")
    vocab = Dictionary.load_from_persisted_dict(vocab_path)
    for split in SPLITS:
        src, ref = getattr(args, f"{split}_src"), getattr(args, f"{split}_ref")
        if src:
            require_file(src, f"--{split}_src")
            require_file(ref, f"--{split}_ref")
    inputs = [getattr(args, f"{split}_{side}") for split in SPLITS for side in ("src", "ref")]
    check_output_folder(args.output_folder, "--output_folder", need_bytes=room_for([f for f in inputs if f]))
    with Build(vocab) as build:  # every split complete before any is published
        for split in SPLITS:
            build_split(args, split, vocab, vocab_path, build)
        build.publish()
    return 0


def build_split(args, split, vocab, vocab_path, build):
    """Encode one split (if given) and hand it to ``build``."""
    src, ref = getattr(args, f"{split}_src"), getattr(args, f"{split}_ref")
    if not src:
        return
    opts = PairOptions(max_len=args.max_len, max_tgt_len=args.max_tgt_len, keep_all=split == "test",
                       noise_prob=args.noise_prob if split == "train" else 0.0, seed=args.seed,
                       max_unk_rate=args.max_unk_rate, processes=args.processes)
    out = Path(args.output_folder) / f"{args.prefix}_{split}.mindrecord"
    stats = build_pairs(src, ref, vocab, vocab_path, out, opts, split, build=build)
    logger.info("%s: %d pairs -> %s; dropped %s; kept longer than max_len: %d; <unk> %.2f%%", split,
                stats.written, out, dict(stats.dropped) or "none", stats.kept_longer_than_max,
                100 * stats.unk_rate)


if __name__ == "__main__":
    sys.exit(run_cli(main))
