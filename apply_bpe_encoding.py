r"""Apply BPE codes to tokenized text and build the vocabulary (ModelZoo's apply_bpe_encoding.py).

Each ``<name>.txt`` of ``--src_folder`` becomes ``<output_folder>/<name>_bpe.txt``; the output tokens are
counted into a :class:`Dictionary` (optionally shrunk) that is written to ``--vocab_path``. With
``--existed_vocab`` only the BPE is applied (test/valid files) and the out-of-vocabulary rate is logged.

    python apply_bpe_encoding.py --codes all.bpe.codes --src_folder tokenized/ \
        --output_folder bpe/ --vocab_path vocab.txt --threshold 5 --processes 4
"""

import argparse
import logging
import os
import sys

from src.text.byte_pair_encoding import DEFAULT_GLOSSARIES, apply_bpe_to_files
from src.text.dictionary import Dictionary
from src.utils.cli import run_cli
from src.utils.errors import UserError
from src.utils.fileio import check_output_file, check_output_folder, require_file, require_text, text_files

logger = logging.getLogger("apply_bpe_encoding")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--codes", required=True, help="BPE codes file (subword-nmt learn-bpe output).")
    parser.add_argument("--src_folder", required=True, help="Folder of tokenized *.txt files, or one file.")
    parser.add_argument("--output_folder", required=True, help="Where <name>_bpe.txt go (created).")
    parser.add_argument("--prefix", default="", help="Only files whose name starts with this prefix.")
    parser.add_argument("--vocab_path", default=None,
                        help="Write the vocabulary here (required unless --existed_vocab).")
    parser.add_argument("--threshold", type=int, default=None,
                        help="Shrink the vocabulary to symbols with frequency > threshold.")
    parser.add_argument("--multiple_of", type=int, default=1,
                        help="With --threshold: keep extra symbols until the size is a multiple of this.")
    parser.add_argument("--processes", type=int, default=2, help="Worker processes (capped at cpu count).")
    parser.add_argument("--glossaries", nargs="*", default=list(DEFAULT_GLOSSARIES),
                        help="Tokens (regular expressions, as in subword-nmt) never split by BPE.")
    parser.add_argument("--existed_vocab", default=None,
                        help="Only apply BPE; report the OOV rate against this vocabulary, write none.")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.existed_vocab is None and args.vocab_path is None:
        raise UserError("give --vocab_path (to build the vocabulary) or --existed_vocab (to only apply BPE)")
    if args.processes < 1:
        raise UserError(f"--processes must be >= 1, got {args.processes}")
    if args.multiple_of < 1:
        raise UserError(f"--multiple_of must be >= 1, got {args.multiple_of}")
    require_file(args.codes, "BPE codes file")
    existed = Dictionary.load_from_persisted_dict(args.existed_vocab) if args.existed_vocab else None
    processes = min(args.processes, os.cpu_count() or 1)

    inputs = text_files(args.src_folder, args.prefix)
    require_text(inputs, "--src_folder files")
    out_dir = check_output_folder(args.output_folder, "--output_folder")
    if args.vocab_path is not None:
        check_output_file(args.vocab_path, "--vocab_path")
    pairs = [(src, out_dir / f"{src.stem}_bpe.txt") for src in inputs]
    counts, lines = apply_bpe_to_files(args.codes, pairs, processes=processes, glossaries=args.glossaries)
    stats = {"files": len(pairs), "lines": lines, "tokens": sum(counts.values()), "types": len(counts)}

    if existed is not None:
        oov = sum(freq for token, freq in counts.items() if token not in existed)
        stats["oov_tokens"] = oov
        logger.info("OOV against %s: %d of %d tokens (%.3f%%)", args.existed_vocab, oov, stats["tokens"],
                    100.0 * oov / max(stats["tokens"], 1))
    if args.vocab_path is not None:
        vocab = Dictionary.from_counts(counts)
        if args.threshold is not None:
            vocab = vocab.shrink(args.threshold, multiple_of=args.multiple_of)
        vocab.persistence(args.vocab_path)
        stats["vocab_size"] = len(vocab)
    logger.info("BPE applied: %s", ", ".join(f"{k}={v}" for k, v in stats.items()))
    return stats


if __name__ == "__main__":
    sys.exit(run_cli(main))
