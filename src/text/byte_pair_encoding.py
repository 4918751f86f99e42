"""Byte-pair encoding: learn codes (subword-nmt) and apply them (our own, faster, identical output).

:class:`BytePairEncoder` applies a subword-nmt codes file (``#version: 0.2`` or the older 0.1 format) and
gives exactly what ``subword-nmt apply-bpe -c CODES [--glossaries ...]`` gives, with the ``@@ ``
continuation marker. It is faster because every distinct token is segmented once and its output string is
memoized, so a sentence costs one dict lookup per token and one join.

Worked example with the codes ``h e``, ``l l``, ``he ll`` (in that rank order; version 0.2 marks the
word-final symbol with ``</w>``, so the last ``l`` of "hell" is ``l</w>`` and no code joins it)::

    "hello" -> h e l l o</w> -> he l l o</w> -> he ll o</w> -> hell o</w> -> "hell@@ o"
    "hell"  -> h e l l</w>   -> he l l</w>                                  -> "he@@ l@@ l"

:func:`apply_bpe_to_files` runs the encoder over files with a process pool (each worker builds the
encoder once) and counts the output tokens for the vocabulary.
"""

import logging
import os
import re
from collections import Counter

from tqdm import tqdm

from src.text import text_options
from src.utils.errors import UserError, where
from src.utils.fileio import atomic_open, count_lines, iter_lines, require_file
from src.utils.parallel import CHUNK_LINES, chunked_lines, close_pool, make_pool, ordered_pool_map

logger = logging.getLogger(__name__)

SEPARATOR = "@@"
END_OF_WORD = "</w>"
DEFAULT_GLOSSARIES = ("<unk>", "UNK")
# The memo holds one entry per distinct token; web-scale corpora have tens of millions of (mostly
# once-seen) tokens, so it is emptied when it reaches this size to keep memory bounded.
MAX_CACHE_ENTRIES = 2_000_000
_STRIP = "\r\n "  # subword-nmt strips exactly these characters around a line and splits on " "


# ---- codes ------------------------------------------------------------------------------------------
def read_codes(codes_path):
    """Parse a subword-nmt codes file -> ``(ranks, version)``.

    ``ranks`` maps a pair ``(left, right)`` to its merge priority (0 = first learnt); a duplicated pair
    keeps its first rank, as subword-nmt does. Trailing blank lines are ignored; any other line that is
    not two space-separated symbols is a UserError naming file and line.
    """
    path = require_file(codes_path, "BPE codes file")
    ranks: dict[tuple[str, str], int] = {}
    version = (0, 1)
    pending_blank = None
    rank = 0
    for line_no, line in iter_lines(path):
        if line_no == 1 and line.startswith("#version:"):
            version = _parse_version(line, path)
            continue
        item = line.strip(_STRIP)
        if not item:
            pending_blank = pending_blank or line_no
            continue
        if pending_blank is not None:
            raise UserError(f"{where(path, pending_blank)}: blank line in the BPE codes")
        pair = item.split(" ")
        if len(pair) != 2 or not pair[0] or not pair[1]:
            raise UserError(
                f"{where(path, line_no)}: a BPE code must be exactly two symbols separated by one space, "
                f"got {line[:60]!r}"
            )
        ranks.setdefault((pair[0], pair[1]), rank)
        rank += 1
    if not ranks:
        raise UserError(f"{path}: no BPE merge in this codes file (empty, or only a header): learn the codes "
                        "again (scripts/learn_subword.sh)")
    return ranks, version


def _parse_version(line, path):
    text = re.sub(r"(\.0+)*$", "", line.split()[-1])
    try:
        version = tuple(int(x) for x in text.split("."))
    except ValueError:
        raise UserError(f"{where(path, 1)}: unreadable version line {line!r}") from None
    if version not in ((0, 1), (0, 2)):
        raise UserError(f"{where(path, 1)}: unsupported BPE codes version {line!r} (0.1 and 0.2 are)")
    return version


# ---- glossaries (subword-nmt semantics: each glossary is a regular expression) ----------------------
def _isolate(segments, whole, inner):
    """Split each segment around matches of one glossary, as subword-nmt's ``isolate_glossary`` does."""
    out = []
    for segment in segments:
        if whole.match(segment) or not inner.search(segment):
            out.append(segment)
            continue
        parts = inner.split(segment)
        parts, ending = parts[:-1], parts[-1]
        out.extend(part for part in parts if part)
        if ending != "":
            out.append(ending.strip(_STRIP))
    return out


class BytePairEncoder:
    """Apply BPE codes to tokens; output identical to subword-nmt's ``apply-bpe``.

    >>> encoder = BytePairEncoder("codes.txt")          # doctest: +SKIP
    >>> encoder.encode_line("the lowest <unk>")          # doctest: +SKIP
    'the low@@ est <unk>'
    """

    def __init__(self, codes_path, glossaries=DEFAULT_GLOSSARIES, separator=SEPARATOR):
        self.codes_path = str(codes_path)
        self.ranks, self.version = read_codes(codes_path)
        self.separator = separator
        self._joiner = separator + " "
        self.glossaries = tuple(glossaries or ())
        if self.glossaries:
            self._whole_glossary = re.compile("^({})$".format("|".join(self.glossaries)))
            self._isolators = [
                (re.compile("^" + g + "$"), re.compile(f"({g})")) for g in self.glossaries
            ]
        else:
            self._whole_glossary = None
            self._isolators = []
        # token -> its segmentation, pieces joined by "@@ " ("low@@ est"); never empty
        self._cache: dict[str, str] = {}

    def __len__(self):
        return len(self.ranks)

    # -- one word ---------------------------------------------------------------------------------------
    def _merge(self, word: str) -> list[str]:
        """BPE-segment one glossary-free word: repeatedly merge the adjacent pair of lowest rank.

        All non-overlapping occurrences of the best pair are merged left to right in one pass.
        """
        if len(word) == 1:
            return [word]
        if self.version == (0, 1):
            symbols = list(word) + [END_OF_WORD]
        else:
            symbols = list(word[:-1]) + [word[-1] + END_OF_WORD]
        ranks = self.ranks
        while len(symbols) > 1:
            best_rank, best = None, None
            for pair in zip(symbols, symbols[1:], strict=False):  # adjacent pairs
                rank = ranks.get(pair)
                if rank is not None and (best_rank is None or rank < best_rank):
                    best_rank, best = rank, pair
            if best is None:
                break
            left, right = best
            merged = left + right
            out = []
            i, n = 0, len(symbols)
            while i < n:
                if i < n - 1 and symbols[i] == left and symbols[i + 1] == right:
                    out.append(merged)
                    i += 2
                else:
                    out.append(symbols[i])
                    i += 1
            symbols = out
        last = symbols[-1]
        if last == END_OF_WORD:
            symbols.pop()
        elif last.endswith(END_OF_WORD):
            symbols[-1] = last[: -len(END_OF_WORD)]
        return symbols

    def _segment_piece(self, piece: str) -> list[str]:
        if self._whole_glossary is not None and self._whole_glossary.match(piece):
            return [piece]
        return self._merge(piece)

    def _encode_new(self, token: str) -> str:
        segments = [token]
        for whole, inner in self._isolators:
            segments = _isolate(segments, whole, inner)
        pieces = [out for segment in segments if segment for out in self._segment_piece(segment)]
        encoded = self._joiner.join(pieces)
        if len(self._cache) >= MAX_CACHE_ENTRIES:
            self._cache.clear()
        self._cache[token] = encoded
        return encoded

    def encode_token(self, token: str) -> str:
        """The segmentation of one non-empty token as a string: ``"lowest"`` -> ``"low@@ est"``."""
        cached = self._cache.get(token)
        return cached if cached is not None else self._encode_new(token)

    # -- sequences ----------------------------------------------------------------------------------------
    def encode_tokens(self, tokens) -> list[str]:
        """Segment a list of tokens -> list of subword units (``@@`` on all but word-final units)."""
        get = self._cache.get
        new = self._encode_new
        out = []
        for token in tokens:
            if token:
                out.extend((get(token) or new(token)).split(" "))
        return out

    def encode_line(self, line: str) -> str:
        """Segment a space-tokenized line (without its newline), keeping leading/trailing blanks as
        subword-nmt does."""
        body = line.strip(_STRIP)
        if len(body) != len(line):
            return self._encode_padded(line, body)
        tokens = body.split(" ")
        if "" in tokens:  # double spaces: subword-nmt drops the empty tokens
            tokens = [token for token in tokens if token]
        get = self._cache.get
        new = self._encode_new
        return " ".join([get(token) or new(token) for token in tokens])

    def _encode_padded(self, line, body):
        lead = len(line) - len(line.lstrip(_STRIP))
        trail = len(line) - len(line.rstrip(_STRIP))
        out = line[:lead] + (self.encode_line(body) if body else "")
        if trail and trail != len(line):
            out += line[-trail:]
        return out


# ---- learning -----------------------------------------------------------------------------------------
def learn_bpe(input_paths, codes_path, num_merges: int, min_frequency: int = 2) -> None:
    """Learn ``num_merges`` BPE merges jointly over ``input_paths`` with subword-nmt; write codes atomically."""
    from subword_nmt.learn_bpe import learn_bpe as subword_nmt_learn_bpe

    if isinstance(input_paths, (str, os.PathLike)):
        input_paths = [input_paths]
    paths = [require_file(p, "BPE training file") for p in input_paths]
    if num_merges < 1:
        raise UserError(f"the number of BPE merges must be positive, got {num_merges}")

    def lines():
        for path in paths:
            for _, line in iter_lines(path):
                yield line

    with atomic_open(codes_path) as out:
        subword_nmt_learn_bpe(lines(), out, num_merges, min_frequency=min_frequency)
    logger.info("learnt %d BPE merges from %d file(s) into %s", num_merges, len(paths), codes_path)


# ---- parallel application -------------------------------------------------------------------------------
_WORKER_ENCODER: BytePairEncoder | None = None
_WORKER_INIT_ERROR: Exception | None = None


def init_encoder(codes_path, glossaries=DEFAULT_GLOSSARIES) -> BytePairEncoder:
    """Build this process's encoder (call it once before :func:`encode_lines`)."""
    global _WORKER_ENCODER
    _WORKER_ENCODER = BytePairEncoder(codes_path, glossaries=glossaries)
    return _WORKER_ENCODER


def _init_worker(codes_path, glossaries):
    """Pool initializer. An exception escaping an initializer kills the worker and the Pool respawns it
    forever (a hang), so the error is kept and re-raised by the worker's first task instead."""
    global _WORKER_INIT_ERROR
    try:
        init_encoder(codes_path, glossaries)
    except Exception as exc:  # re-raised by encode_lines
        _WORKER_INIT_ERROR = exc


def encode_lines(lines, encoder: BytePairEncoder | None = None) -> list[str]:
    """Encode lines with ``encoder`` (default: the one :func:`init_encoder` built in this process)."""
    if encoder is None:
        if _WORKER_INIT_ERROR is not None:
            raise _WORKER_INIT_ERROR
        encoder = _WORKER_ENCODER
    if encoder is None:
        raise RuntimeError("encode_lines needs an encoder: call init_encoder(codes_path) first")
    encode = encoder.encode_line
    return [encode(line) for line in lines]


def _encode_chunk(args):
    """Worker task: a chunk of lines -> (output block with newlines, token counts or None)."""
    lines, count = args
    block = "\n".join(encode_lines(lines)) + "\n"  # chunks are never empty
    return block, (Counter(block.split()) if count else None)


def apply_bpe_to_files(codes_path, pairs, processes=2, glossaries=DEFAULT_GLOSSARIES, count=True,
                       chunk_lines=CHUNK_LINES):
    """BPE-encode each ``(input, output)`` pair (outputs written atomically) -> ``(counts, lines)``.

    ``counts`` is a Counter of the output tokens over all files (first-seen order), or None when
    ``count`` is false; ``lines`` the number of lines written. ``processes`` > 1 uses a process pool
    whose workers each build the encoder once.
    """
    pairs = list(pairs)
    codes_path = require_file(codes_path, "BPE codes file")
    total_counts = Counter() if count else None
    total_lines = 0
    glossaries = tuple(glossaries or ())
    init_encoder(codes_path, glossaries)  # here too: a bad codes file fails now, in this process
    pool = make_pool(processes, _init_worker, (str(codes_path), glossaries))
    failed = True
    try:
        for src, dst in pairs:
            total = count_lines(require_file(src))
            with atomic_open(dst) as out, tqdm(total=total, desc=f"bpe {os.path.basename(src)}",
                                              unit=" lines", unit_scale=True, leave=False) as bar:
                tasks = ((chunk, count) for chunk in chunked_lines(src, chunk_lines))
                for block, counts in ordered_pool_map(pool, _encode_chunk, tasks, 2 * processes + 2):
                    out.write(block)
                    lines = block.count("\n")
                    total_lines += lines
                    bar.update(lines)
                    if counts is not None:
                        total_counts.update(counts)
            text_options.record(dst, text_options.lookup(src))  # BPE keeps the normalisation of its input
            logger.info("BPE: %s -> %s (%d lines)", src, dst, total)
        failed = False
    finally:
        close_pool(pool, failed)
    return total_counts, total_lines
