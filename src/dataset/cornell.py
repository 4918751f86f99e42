"""Cornell Movie-Dialogs: parse the raw corpus into consecutive-utterance pairs with a fixed split.

``movie_lines.txt``:          ``L1045 +++$+++ u0 +++$+++ m0 +++$+++ BIANCA +++$+++ They do not!``
``movie_conversations.txt``:  ``u0 +++$+++ u2 +++$+++ m0 +++$+++ ['L194', 'L195', 'L196']``

A conversation [a, b, c] gives the pairs (a -> b) and (b -> c). Whole conversations go to one split,
chosen by a stable hash of the conversation's first line id, so the split never depends on file order
and no conversation leaks between train and test. The files are Latin-1 (CP1252-like) bytes.
"""

import re
import zlib
from collections import Counter
from pathlib import Path

from src.utils.errors import UserError, where
from src.utils.fileio import atomic_open, iter_lines, require_file, text_files

SEPARATOR = " +++$+++ "
ENCODING = "latin-1"
LINE_ID = re.compile(r"^L\d+$")
SPLITS = ("train", "valid", "test")


def read_movie_lines(path) -> dict[str, str]:
    """``{line_id: text}``; a malformed line is a UserError naming file and line."""
    path = require_file(path, "movie_lines.txt")
    texts = {}
    for line_no, line in iter_lines(path, encoding=ENCODING):
        if not line.strip():
            continue
        fields = line.split(SEPARATOR)
        if len(fields) != 5 or not LINE_ID.match(fields[0].strip()):
            raise UserError(f"{where(path, line_no)}: expected 5 fields 'lineID{SEPARATOR}characterID"
                            f"{SEPARATOR}movieID{SEPARATOR}NAME{SEPARATOR}text', got {len(fields)}")
        line_id = fields[0].strip()
        if line_id in texts:
            raise UserError(f"{where(path, line_no)}: line id {line_id} appears twice")
        texts[line_id] = " ".join(fields[4].split())
    return texts


def read_conversations(path):
    """Yield ``(line_no, [line ids])`` of each conversation, in file order."""
    path = require_file(path, "movie_conversations.txt")
    for line_no, line in iter_lines(path, encoding=ENCODING):
        if not line.strip():
            continue
        fields = line.split(SEPARATOR)
        if len(fields) != 4:
            raise UserError(f"{where(path, line_no)}: expected 4 fields, got {len(fields)}")
        ids = re.findall(r"'([^']*)'", fields[3])
        if not ids or not all(LINE_ID.match(i) for i in ids):
            raise UserError(f"{where(path, line_no)}: expected a list of line ids like ['L1', 'L2'], "
                            f"got {fields[3].strip()!r}")
        yield line_no, ids


def split_of(conversation_key: str, valid_percent: float, test_percent: float) -> str:
    """A split chosen by a stable hash: the same conversation always lands in the same split."""
    bucket = zlib.crc32(conversation_key.encode("utf-8")) % 10000 / 100.0
    if bucket < test_percent:
        return "test"
    if bucket < test_percent + valid_percent:
        return "valid"
    return "train"


def dialog_pairs(lines_path, conversations_path, valid_percent=5.0, test_percent=5.0):
    """Return ``({split: [(context, response), ...]}, Counter of dropped pairs by reason)``; a UserError naming
    both files when no pair is left."""
    texts = read_movie_lines(lines_path)
    pairs = {split: [] for split in SPLITS}
    dropped = Counter()
    conversations = 0
    for line_no, ids in read_conversations(conversations_path):
        conversations += 1
        missing = [i for i in ids if i not in texts]
        if missing:
            raise UserError(f"{where(conversations_path, line_no)}: line id(s) {missing} are not in "
                            f"{Path(lines_path).name}")
        split = split_of(ids[0], valid_percent, test_percent)
        for first, second in zip(ids, ids[1:], strict=False):
            context, response = texts[first], texts[second]
            if not context or not response:
                dropped["empty"] += 1
                continue
            pairs[split].append((context, response))
    if not any(pairs.values()):  # an empty corpus (or one without two non-empty lines in a row) builds nothing
        reasons = f"; {sum(dropped.values())} dropped for an empty line" if dropped else ""
        raise UserError(f"{lines_path}, {conversations_path}: no dialog pair ({len(texts)} line(s), {conversations} "
                        f"conversation(s){reasons}): nothing written")
    return pairs, dropped


def write_raw_pairs(pairs, out_folder):
    """Write cornell_<split>_src.txt / _tgt.txt; returns {split: (src_path, tgt_path)}."""
    paths = {}
    for split in SPLITS:
        src = Path(out_folder) / f"cornell_{split}_src.txt"
        tgt = Path(out_folder) / f"cornell_{split}_tgt.txt"
        with atomic_open(src) as fs, atomic_open(tgt) as ft:
            for context, response in pairs[split]:
                fs.write(context + "\n")
                ft.write(response + "\n")
        paths[split] = (src, tgt)
    return paths


def encode_raw_pairs(raw_paths, codes, processes, lowercase=False, hash_digits=False):
    """Tokenize (keeping lines aligned) and BPE the raw text pair files; returns {split: (src, tgt)}."""
    from src.text.byte_pair_encoding import apply_bpe_to_files
    from src.text.corpus import tokenize_files

    jobs, result = [], {}
    for split, pair in raw_paths.items():
        bpe_pair = []
        for raw in pair:
            tokenize_files([raw], raw.parent, keep_lines=True, lowercase=lowercase, hash_digits=hash_digits,
                           pool_size=processes)
            bpe = raw.with_name(raw.stem + "_bpe.txt")
            jobs.append((raw.with_name(raw.stem + "_tokenized.txt"), bpe))
            bpe_pair.append(bpe)
        result[split] = tuple(bpe_pair)
    apply_bpe_to_files(codes, jobs, processes=processes, count=False)
    return result


def prefixed_pairs(folder, prefixes: dict):
    """{split: (src, tgt)} from <prefix>*src*.txt / <prefix>*tgt*.txt files (ModelZoo layout); ``prefixes``
    maps each split to its file-name prefix."""
    found = {}
    for split in SPLITS:
        prefix = prefixes[split]
        src = [p for p in text_files(folder) if p.name.startswith(prefix) and "src" in p.name]
        tgt = [p for p in text_files(folder) if p.name.startswith(prefix) and "tgt" in p.name]
        if not src and not tgt:
            continue
        if len(src) != 1 or len(tgt) != 1:
            raise UserError(f"{folder}: expected one {prefix}*src*.txt and one {prefix}*tgt*.txt, found "
                            f"{[p.name for p in src]} and {[p.name for p in tgt]}")
        found[split] = (src[0], tgt[0])
    if not found:
        raise UserError(f"{folder}: no <prefix>*src*.txt / <prefix>*tgt*.txt files for the prefixes given")
    return found
