r"""Build the MASS pre-training dataset (MindRecord) from BPE-encoded monolingual text.

Each non-empty line becomes one example: its token ids followed by </s>. Masks are NOT drawn here:
train.py draws a new MASS mask for every example every epoch. ``--static_mask`` instead writes
ModelZoo's fixed 6-column layout, masked once, for comparison.

Example:
    python news_crawl.py --src_folder data/bpe --existed_vocab vocab/vocab.txt \
        --output_folder data/mindrecord --max_len 64 --valid_every 100
"""

import argparse
import logging
import sys
from pathlib import Path

from src.dataset.builders import MonoOptions, build_monolingual
from src.text.dictionary import Dictionary
from src.utils.cli import run_cli
from src.utils.errors import UserError
from src.utils.fileio import check_output_folder, require_file, room_for, text_files

logger = logging.getLogger("news_crawl")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--src_folder", required=True, help="folder of BPE'd *.txt files (or one file)")
    p.add_argument("--existed_vocab", required=True, help="vocabulary written by apply_bpe_encoding.py")
    p.add_argument("--output_folder", required=True, help="where the dataset and its manifest go")
    p.add_argument("--prefix", default="", help="only input files whose name starts with this")
    p.add_argument("--max_len", type=int, default=64,
                   help="longest sentence kept, in tokens with </s> (longer lines are dropped and counted)")
    p.add_argument("--min_len", type=int, default=5, help="shortest sentence kept, in tokens with </s>")
    p.add_argument("--suffix", default="", help="appended to the output name")
    p.add_argument("--valid_every", type=int, default=0,
                   help="send every N-th input line to a validation dataset (0: none)")
    p.add_argument("--static_mask", action="store_true",
                   help="ModelZoo layout: mask once now (uniform start, all <mask>), fixed length")
    p.add_argument("--mask_ratio", type=float, default=0.5, help="fragment ratio for --static_mask")
    p.add_argument("--seed", type=int, default=1, help="seed of the static masks")
    p.add_argument("--max_unk_rate", type=float, default=0.2,
                   help="stop with an error if more than this share of tokens is <unk>")
    p.add_argument("--processes", type=int, default=2, help="worker processes for encoding")
    args = p.parse_args(argv)
    if not 1 <= args.min_len <= args.max_len:
        p.error("need 1 <= --min_len <= --max_len")
    if not 0 < args.mask_ratio <= 1:
        p.error("--mask_ratio must be in (0, 1]")
    if args.processes < 1 or args.valid_every < 0:
        p.error("--processes must be >= 1, --valid_every >= 0")
    return args


def output_paths(args):
    name = f"news_crawl_len_{args.max_len}" + (f"_{args.suffix}" if args.suffix else "")
    if args.static_mask:
        name += "_static"
    folder = Path(args.output_folder)
    return folder / f"{name}.mindrecord", folder / f"{name}_valid.mindrecord"


def main(argv=None):
    args = parse_args(argv)
    vocab_path = require_file(args.existed_vocab, "vocabulary")
    vocab = Dictionary.load_from_persisted_dict(vocab_path)
    files = text_files(args.src_folder, args.prefix)
    train_out, valid_out = output_paths(args)
    # room for the ids (int32, about twice the BPE text) before the build starts
    check_output_folder(args.output_folder, "--output_folder", need_bytes=room_for(files))
    opts = MonoOptions(min_len=args.min_len, max_len=args.max_len, static_mask=args.static_mask,
                       mask_ratio=args.mask_ratio, seed=args.seed, valid_every=args.valid_every,
                       max_unk_rate=args.max_unk_rate, processes=args.processes)
    stats, n_valid = build_monolingual(files, vocab, vocab_path, train_out, valid_out, opts)
    if stats.written == 0:
        raise UserError("no sentence was kept")
    logger.info("read %d lines from %d file(s); wrote %d training examples to %s%s; dropped %s; "
                "<unk> rate %.2f%%", stats.lines, len(files), stats.written, train_out,
                f" and {n_valid} validation examples to {valid_out}" if n_valid else "",
                dict(stats.dropped) or "none", 100 * stats.unk_rate)
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
