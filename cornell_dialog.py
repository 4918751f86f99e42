r"""Build Cornell movie-dialog response-generation datasets (MindRecord).

Two ways in:
1. From the raw corpus (--raw_folder with movie_lines.txt and movie_conversations.txt): consecutive
   utterances become (context, response) pairs, split by conversation into train/valid/test with a
   stable hash. The raw pairs are written as text (cornell_<split>_src.txt / _tgt.txt, the references
   for evaluation). With --codes and --existed_vocab the pairs are also tokenized, BPE-encoded and
   written as MindRecord in the same run.
2. From pre-split, BPE'd files as ModelZoo did (--src_folder with <prefix>*src*.txt and
   <prefix>*tgt*.txt for --train_prefix, --valid_prefix and --test_prefix) and --existed_vocab.

Examples:
    python cornell_dialog.py --raw_folder ../shared/data/cornell-movie-dialogs --output_folder data/cornell \
        --codes vocab/all.bpe.codes --existed_vocab vocab/vocab.txt
    python cornell_dialog.py --src_folder data/cornell_bpe --existed_vocab vocab/vocab.txt \
        --output_folder data/cornell
"""

import argparse
import logging
import sys

from src.dataset.builders import PairOptions, build_pairs
from src.dataset.cornell import SPLITS, dialog_pairs, encode_raw_pairs, prefixed_pairs, write_raw_pairs
from src.dataset.writer import Build, remove_dataset
from src.text.dictionary import Dictionary
from src.utils.cli import add_normalization_options, run_cli
from src.utils.fileio import check_output_folder, count_lines, require_dir, require_file
from src.utils.output_lock import hold

logger = logging.getLogger("cornell_dialog")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--raw_folder", help="folder with movie_lines.txt and movie_conversations.txt")
    src.add_argument("--src_folder", help="folder of pre-split BPE'd <prefix>*src*.txt / *tgt*.txt files")
    p.add_argument("--output_folder", required=True)
    p.add_argument("--existed_vocab", help="vocabulary (required to write MindRecord)")
    p.add_argument("--codes", help="BPE codes, to tokenize and encode raw pairs in this run")
    add_normalization_options(p, ", with --codes")
    p.add_argument("--train_prefix", default="train")
    p.add_argument("--valid_prefix", default="valid")
    p.add_argument("--test_prefix", default="test")
    p.add_argument("--valid_percent", type=float, default=5.0, help="raw mode: share of conversations")
    p.add_argument("--test_percent", type=float, default=5.0, help="raw mode: share of conversations")
    p.add_argument("--noise_prob", type=float, default=0.0, help="source noise for training pairs")
    p.add_argument("--max_len", type=int, default=32, help="longest context, tokens with </s>")
    p.add_argument("--max_tgt_len", type=int, default=32, help="longest response, tokens with </s>")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--processes", type=int, default=2)
    args = p.parse_args(argv)
    if args.src_folder and not args.existed_vocab:
        p.error("--src_folder needs --existed_vocab")
    if args.codes and not args.existed_vocab:
        p.error("--codes needs --existed_vocab")
    held_out = args.valid_percent + args.test_percent
    if args.valid_percent < 0 or args.test_percent < 0 or held_out >= 100:
        p.error("--valid_percent and --test_percent must be >= 0 and add up to less than 100")
    return args


def main(argv=None):
    args = parse_args(argv)
    # inputs checked before anything is written
    vocab_path = require_file(args.existed_vocab, "vocabulary") if args.existed_vocab else None
    vocab = Dictionary.load_from_persisted_dict(vocab_path) if vocab_path else None
    if args.codes:
        require_file(args.codes, "BPE codes")
    out = check_output_folder(args.output_folder, "--output_folder")
    with hold(out):  # one build per folder, from before its first file is written to after its last
        return write_outputs(args, out, vocab, vocab_path)


def write_outputs(args, out, vocab, vocab_path):
    """Everything the run writes into ``out`` (held by the caller)."""
    if args.raw_folder:
        folder = require_dir(args.raw_folder, "--raw_folder")
        pairs, dropped = dialog_pairs(folder / "movie_lines.txt", folder / "movie_conversations.txt",
                                      args.valid_percent, args.test_percent)
        raw = write_raw_pairs(pairs, out)
        logger.info("pairs: %s; dropped: %s; text written to %s",
                    {s: len(p) for s, p in pairs.items()}, dict(dropped) or "none", out)
        if not args.codes:
            logger.info("no --codes given: tokenize and BPE these files, then run again with --src_folder")
            return 0
        bpe = encode_raw_pairs(raw, require_file(args.codes, "BPE codes"), args.processes,
                               lowercase=args.lowercase, hash_digits=args.hash_digits)
    else:
        prefixes = {split: getattr(args, f"{split}_prefix") for split in SPLITS}
        bpe = prefixed_pairs(require_dir(args.src_folder, "--src_folder"), prefixes)
    with Build(vocab) as build:  # every split complete before any is published
        for split, (src, tgt) in bpe.items():
            if count_lines(src) == 0:
                logger.warning("%s: no pairs, nothing written", split)
                remove_dataset(out / f"cornell_{split}.mindrecord")  # an older build's split would not match
                continue
            opts = PairOptions(max_len=args.max_len, max_tgt_len=args.max_tgt_len, keep_all=split == "test",
                               noise_prob=args.noise_prob if split == "train" else 0.0, seed=args.seed)
            stats = build_pairs(src, tgt, vocab, vocab_path, out / f"cornell_{split}.mindrecord", opts, split,
                                build=build)
            logger.info("%s: %d pairs encoded, dropped %s, <unk> %.2f%%", split, stats.written,
                        dict(stats.dropped) or "none", 100 * stats.unk_rate)
        build.publish()
    return 0

if __name__ == "__main__":
    sys.exit(run_cli(main))
