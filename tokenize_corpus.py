"""Tokenize raw text corpora, one sentence per line (ModelZoo's tokenize_corpus.py).

Each ``<name>.txt`` of ``--corpus_folder`` becomes ``<output_folder>/<name>_tokenized.txt`` with the
tokens of each sentence joined by single spaces. Empty sentences and sentences longer than
``--max_tokens`` tokens are dropped (and counted), as ModelZoo did.

    python tokenize_corpus.py --corpus_folder raw/ --output_folder tokenized/ --tokenizer nltk --pool_size 4
"""

import argparse
import sys

from src.text.corpus import tokenize_files
from src.text.tokenizer import TOKENIZERS
from src.utils.cli import add_normalization_options, run_cli
from src.utils.errors import UserError
from src.utils.fileio import check_output_folder, require_text, text_files


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus_folder", required=True,
                        help="Folder of *.txt files, or one file (several: comma-separated).")
    parser.add_argument("--output_folder", required=True, help="Where <name>_tokenized.txt go (created).")
    parser.add_argument("--tokenizer", default="nltk", choices=TOKENIZERS, help="nltk (English) or jieba.")
    parser.add_argument("--pool_size", type=int, default=2, help="Worker processes (capped at cpu count).")
    parser.add_argument("--max_tokens", type=int, default=175,
                        help="Drop sentences with more tokens than this (ModelZoo: 175).")
    add_normalization_options(parser)
    parser.add_argument("--keep_lines", action="store_true",
                        help="Drop nothing: line i of the output is line i of the input (for line-aligned "
                             "source/target files); empty lines stay empty, long lines are kept.")
    return parser


def main(argv=None, require_output=False):
    """Tokenize; returns the statistics. With ``require_output`` (the command line), a run in which every
    line was dropped is an error, and nothing is written (the previous outputs stay as they were)."""
    args = build_parser().parse_args(argv)
    if args.pool_size < 1:
        raise UserError(f"--pool_size must be >= 1, got {args.pool_size}")
    if args.max_tokens < 1:
        raise UserError(f"--max_tokens must be >= 1, got {args.max_tokens}")
    inputs = text_files(args.corpus_folder)
    require_text(inputs, "--corpus_folder files")
    check_output_folder(args.output_folder, "--output_folder")
    return tokenize_files(inputs, args.output_folder, tokenizer=args.tokenizer, max_tokens=args.max_tokens,
                          lowercase=args.lowercase, keep_lines=args.keep_lines, hash_digits=args.hash_digits,
                          pool_size=args.pool_size, require_output=require_output)


def command(argv=None):
    """The command line: :func:`main`, and an error (exit 2) when every line was dropped, checked before
    anything is published (:func:`main` itself returns the statistics, as its callers expect)."""
    return main(argv, require_output=True)


if __name__ == "__main__":
    sys.exit(run_cli(command))
