"""Tokenize whole text files, one sentence per line, in parallel and in order (tokenize_corpus.py,
cornell_dialog.py).

Each line becomes its tokens (src/text/tokenizer.py) joined by single spaces, normalised by
src/text/normalize.py; empty lines and lines longer than ``max_tokens`` tokens are dropped (and
counted) unless ``keep_lines`` keeps every line aligned with its input.
"""

import contextlib
import logging
import os
from collections import Counter
from pathlib import Path

from tqdm import tqdm

from src.text import text_options
from src.text.normalize import normalize_tokens
from src.text.tokenizer import word_tokenize_many
from src.utils.errors import UserError
from src.utils.fileio import atomic_path, count_lines
from src.utils.parallel import CHUNK_LINES, chunked_lines, close_pool, make_pool, ordered_pool_map

logger = logging.getLogger(__name__)

_CONFIG = {"tokenizer": "nltk", "max_tokens": 175, "lowercase": False, "keep_lines": False, "hash_digits": False}


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
            out.append(" ".join(normalize_tokens(tokens, lowercase=lowercase, hash_digits=hash_digits)))
    stats["written"] = len(out)
    stats["read"] = len(lines)
    return "".join(line + "\n" for line in out), stats


def _tokenize_chunk(lines):
    return tokenize_lines(lines, **_CONFIG)


def tokenize_file(src, dst, pool, pool_size) -> Counter:
    """Tokenize one file into ``dst`` (a temporary path: the caller publishes it), in chunks, ordered; return
    its statistics."""
    stats = Counter(read=0, written=0, empty=0, too_long=0)
    with open(dst, "w", encoding="utf-8", newline="\n") as out, \
            tqdm(total=count_lines(src), desc=f"tokenize {src.name}", unit=" lines", unit_scale=True,
                 leave=False) as bar:
        for block, chunk_stats in ordered_pool_map(pool, _tokenize_chunk, chunked_lines(src, CHUNK_LINES),
                                                   2 * pool_size + 2):
            out.write(block)
            stats.update(chunk_stats)
            bar.update(chunk_stats["read"])
    return stats


def _outputs(inputs, out_dir: Path) -> list[Path]:
    """``<out_dir>/<name>_tokenized.txt`` of each input; a UserError when two inputs would write one output."""
    outputs, seen = [], {}
    for src in inputs:
        dst = out_dir / f"{Path(src).stem}_tokenized.txt"
        if dst in seen:
            raise UserError(f"{seen[dst]} and {src}: both would be tokenized into {dst}; rename one of them")
        seen[dst] = src
        outputs.append(dst)
    return outputs


def tokenize_files(inputs, out_dir, *, tokenizer="nltk", max_tokens=175, lowercase=False, keep_lines=False,
                   hash_digits=False, pool_size=2, require_output=False) -> dict:
    """Tokenize each input file into ``<out_dir>/<name>_tokenized.txt``; return the statistics.

    Every output is written under a temporary name; only when all of them are complete (and, with
    ``require_output``, at least one line was written: a UserError otherwise) are they renamed into place
    and their options recorded in ``text_options.json``. A failing run leaves the previous outputs and
    their options exactly as they were. While the outputs are being renamed, the options of the files
    being replaced are forgotten: an interruption leaves unknown options, never wrong ones."""
    out_dir = Path(out_dir)
    inputs = [Path(p) for p in inputs]
    outputs = _outputs(inputs, out_dir)
    pool_size = min(pool_size, os.cpu_count() or 1)
    settings = (tokenizer, max_tokens, lowercase, keep_lines, hash_digits)
    totals = Counter(read=0, written=0, empty=0, too_long=0)
    _configure(*settings)
    with contextlib.ExitStack() as temporaries:  # on leaving without error: each output renamed into place
        pool = make_pool(pool_size, _configure, settings)
        failed = True
        try:
            for src, dst in zip(inputs, outputs, strict=True):
                stats = tokenize_file(src, temporaries.enter_context(atomic_path(dst)), pool, pool_size)
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
        if require_output and totals["written"] == 0:
            names = ", ".join(str(p) for p in inputs[:5]) + (" ..." if len(inputs) > 5 else "")
            raise UserError(f"{names}: no line left after tokenization ({totals['read']} read: {totals['empty']} "
                            f"empty, {totals['too_long']} longer than {max_tokens} tokens): nothing written")
        for dst in outputs:
            text_options.record(dst, None)
    entry = text_options.options(tokenizer, lowercase, hash_digits)
    for dst in outputs:
        text_options.record(dst, entry)
    logger.info("tokenized %d file(s): %d lines read, %d written, dropped %d empty and %d longer than %d "
                "tokens", result["files"], result["lines_read"], result["lines_written"], totals["empty"],
                totals["too_long"], max_tokens)
    return result
