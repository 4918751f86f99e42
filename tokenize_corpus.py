"""Tokenize raw text corpora, one sentence per line (ModelZoo's tokenize_corpus.py).

Each ``<name>.txt`` of ``--corpus_folder`` becomes ``<output_folder>/<name>_tokenized.txt`` with the
tokens of each sentence joined by single spaces. Empty sentences and sentences longer than
``--max_tokens`` tokens are dropped (and counted), as ModelZoo did.

    python tokenize_corpus.py --corpus_folder raw/ --output_folder tokenized/ --tokenizer nltk --pool_size 4
"""

import argparse
import logging
import os
import sys
from collections import Counter
from pathlib import Path

from tqdm import tqdm

from src.utils.cli import run_cli
from src.utils.errors import UserError
from src.utils.fileio import atomic_open, count_lines, text_files
from src.utils.parallel import CHUNK_LINES, chunked_lines, close_pool, make_pool, ordered_pool_map
from src.utils.tokenizer import PROTECTED_TOKENS, TOKENIZERS, word_tokenize_many

logger = logging.getLogger("tokenize_corpus")

_CONFIG = {"tokenizer": "nltk", "max_tokens": 175, "lowercase": False, "keep_lines": False, "hash_digits": False}
_DIGITS = str.maketrans("0123456789", "##########")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus_folder", required=True,
                        help="Folder of *.txt files, or one file (several: comma-separated).")
    parser.add_argument("--output_folder", required=True, help="Where <name>_tokenized.txt go (created).")
    parser.add_argument("--tokenizer", default="nltk", choices=TOKENIZERS, help="nltk (English) or jieba.")
    parser.add_argument("--pool_size", type=int, default=2, help="Worker processes (capped at cpu count).")
    parser.add_argument("--max_tokens", type=int, default=175,
                        help="Drop sentences with more tokens than this (ModelZoo: 175).")
    parser.add_argument("--lowercase", action="store_true", help="Lower-case the tokens (not <unk>/UNK).")
    parser.add_argument("--hash_digits", action="store_true",
                        help="Replace every digit by '#' (the Gigaword convention: '3.5' -> '#.#').")
    parser.add_argument("--keep_lines", action="store_true",
                        help="Drop nothing: line i of the output is line i of the input (for line-aligned "
                             "source/target files); empty lines stay empty, long lines are kept.")
    return parser


def _configure(tokenizer, max_tokens, lowercase, keep_lines=False, hash_digits=False):
    """Pool initializer (and in-process set-up): the settings every chunk is tokenized with."""
    _CONFIG.update(tokenizer=tokenizer, max_tokens=max_tokens, lowercase=lowercase, keep_lines=keep_lines,
                   hash_digits=hash_digits)


def tokenize_lines(lines, tokenizer="nltk", max_tokens=175, lowercase=False, keep_lines=False, hash_digits=False):
    """Tokenize sentences -> (output block, Counter of written/empty/too_long).

    >>> tokenize_lines(["Hi!", "", "a b c"], max_tokens=2)
    ('Hi !\\n', Counter({'read': 3, 'written': 1, 'empty': 1, 'too_long': 1}))
    >>> tokenize_lines(["Rates rose 3.5 percent."], lowercase=True, hash_digits=True)[0]
    'rates rose #.# percent .\\n'
    """
    out = []
    stats = Counter(written=0, empty=0, too_long=0)
    for tokens in word_tokenize_many(lines, tokenizer):
        if not tokens:
            stats["empty"] += 1
            if keep_lines:
                out.append("")
        elif len(tokens) > max_tokens and not keep_lines:
            stats["too_long"] += 1
        else:
            if lowercase:
                tokens = [t if t in PROTECTED_TOKENS else t.lower() for t in tokens]
            if hash_digits:
                tokens = [t.translate(_DIGITS) for t in tokens]
            out.append(" ".join(tokens))
    stats["written"] = len(out)
    stats["read"] = len(lines)
    return "".join(line + "\n" for line in out), stats


def _tokenize_chunk(lines):
    return tokenize_lines(lines, **_CONFIG)


def tokenize_file(src, dst, pool, pool_size) -> Counter:
    """Tokenize one file into ``dst`` (atomically), in chunks, ordered; return its statistics."""
    stats = Counter(read=0, written=0, empty=0, too_long=0)
    with atomic_open(dst) as out, tqdm(total=count_lines(src), desc=f"tokenize {src.name}", unit=" lines",
                                       unit_scale=True, leave=False) as bar:
        for block, chunk_stats in ordered_pool_map(pool, _tokenize_chunk, chunked_lines(src, CHUNK_LINES),
                                                   2 * pool_size + 2):
            out.write(block)
            stats.update(chunk_stats)
            bar.update(chunk_stats["read"])
    return stats


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.pool_size < 1:
        raise UserError(f"--pool_size must be >= 1, got {args.pool_size}")
    if args.max_tokens < 1:
        raise UserError(f"--max_tokens must be >= 1, got {args.max_tokens}")
    inputs = text_files(args.corpus_folder)
    out_dir = Path(args.output_folder)
    pool_size = min(args.pool_size, os.cpu_count() or 1)
    settings = (args.tokenizer, args.max_tokens, args.lowercase, args.keep_lines, args.hash_digits)
    totals = Counter(read=0, written=0, empty=0, too_long=0)
    _configure(*settings)
    pool = make_pool(pool_size, _configure, settings)
    failed = True
    try:
        for src in inputs:
            dst = out_dir / f"{src.stem}_tokenized.txt"
            stats = tokenize_file(src, dst, pool, pool_size)
            logger.info("%s -> %s: %s", src, dst, dict(stats))
            totals.update(stats)
        failed = False
    finally:
        close_pool(pool, failed)
    result = {
        "files": len(inputs),
        "lines_read": totals["read"],
        "lines_written": totals["written"],
        "dropped": {"empty": totals["empty"], "too_long": totals["too_long"]},
    }
    logger.info("tokenized %d file(s): %d lines read, %d written, dropped %d empty and %d longer than %d "
                "tokens", result["files"], result["lines_read"], result["lines_written"], totals["empty"],
                totals["too_long"], args.max_tokens)
    return result


if __name__ == "__main__":
    sys.exit(run_cli(main))
