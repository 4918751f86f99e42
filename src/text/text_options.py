"""How a text file was normalised, carried from step to step so that evaluation can do the same.

tokenize_corpus.py records, for each file it writes, the tokenizer and the normalisation options
(``--lowercase``, ``--hash_digits``) in ``text_options.json`` in its output folder. apply_bpe_encoding.py
carries each entry over to the file it writes; the dataset builders copy the entry of their input into
the dataset's manifest (``text``); train.py puts it into the run's config
(``dataset_config.lowercase`` / ``hash_digits``), so it is in every checkpoint; eval.py and the Python API
then normalise raw input exactly as the training text was (:func:`src.text.normalize.normalize_tokens`),
unless told otherwise.

A file without an entry (tokenized elsewhere) has unknown options: nothing is recorded, and evaluation
uses its command-line flags only.
"""

import json
from pathlib import Path

from src.utils.errors import UserError
from src.utils.fileio import atomic_open

SIDECAR = "text_options.json"
KEYS = ("tokenizer", "lowercase", "hash_digits")


def options(tokenizer: str, lowercase: bool, hash_digits: bool) -> dict:
    return {"tokenizer": tokenizer, "lowercase": bool(lowercase), "hash_digits": bool(hash_digits)}


def _read(folder: Path) -> dict:
    path = folder / SIDECAR
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not a valid text-options file ({exc})") from None
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise UserError(f"{path}: expected an object of file name -> options")
    return data


def record(path, entry: dict | None):
    """Record (or, with None, forget) how the file ``path`` was normalised, in its folder's sidecar."""
    path = Path(path)
    data = _read(path.parent)
    if entry is None:
        if path.name not in data:
            return
        data.pop(path.name)
    else:
        data[path.name] = {k: entry[k] for k in KEYS if k in entry}
    with atomic_open(path.parent / SIDECAR) as handle:
        json.dump(data, handle, indent=2, sort_keys=True)
        handle.write("\n")


def lookup(path) -> dict | None:
    """How ``path`` was normalised, or None when unknown (a symbolic link: as its target, unless its own
    folder records it)."""
    path = Path(path)
    entry = _read(path.parent).get(path.name)
    if entry is None and path.is_symlink():
        return lookup(path.resolve())
    return entry


def common(paths, what: str) -> dict | None:
    """The one entry shared by ``paths`` (None if none is known); a UserError if two differ."""
    known = {str(p): entry for p in paths if (entry := lookup(p)) is not None}
    distinct = {json.dumps(e, sort_keys=True) for e in known.values()}
    if len(distinct) > 1:
        raise UserError(f"{what} were normalised differently: "
                        + "; ".join(f"{p}: {e}" for p, e in known.items()))
    return next(iter(known.values())) if known else None
