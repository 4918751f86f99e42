"""Atomic file output and streaming text input.

Every artefact (dataset shard, vocabulary, checkpoint, manifest) is written under a temporary name in
the destination folder and renamed into place only when complete, so a crash never leaves a half file
that looks whole.
"""

import contextlib
import os
import tempfile
from pathlib import Path

from src.utils.errors import UserError, where

TEMP_PREFIX = "."  # temporary names are hidden: ".<name>.<random>.tmp[<suffix>]"
TEMP_SUFFIX = ".tmp"


def temporary_path_for(path, suffix: str = "") -> Path:
    """A unique temporary name in the same folder as ``path`` (same filesystem, so rename is atomic),
    ending with ``suffix`` (for writers that append their own extension to other names)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f"{TEMP_PREFIX}{path.name}.", suffix=TEMP_SUFFIX + suffix, dir=path.parent)
    os.close(fd)
    os.unlink(tmp)
    return Path(tmp)


@contextlib.contextmanager
def atomic_path(path, suffix: str = ""):
    """Yield a temporary path; on success flush it to disk and rename it to ``path``, on error remove it.

    The one way this project writes a file: text (:func:`atomic_open`), checkpoints, ``.npz`` and
    ``.mindir`` files all go through it. ``suffix`` is kept at the end of the temporary name, for
    writers (MindSpore, NumPy) that would otherwise append their extension.

    >>> with atomic_path("out.bin") as tmp:   # doctest: +SKIP
    ...     write_somehow(tmp)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_path_for(path, suffix)
    try:
        yield tmp
        fsync_replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextlib.contextmanager
def atomic_open(path, mode="w", encoding="utf-8"):
    """Open a temporary file for writing that becomes ``path`` only when the block ends without error."""
    with atomic_path(path) as tmp:
        kwargs = {} if "b" in mode else {"encoding": encoding, "newline": "\n"}
        with open(tmp, mode, **kwargs) as handle:
            yield handle


def fsync_replace(tmp, path):
    """Flush ``tmp`` to disk, then rename it to ``path``: the file is complete before it is visible."""
    with open(tmp, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def require_file(path, what="input file") -> Path:
    """Return ``Path(path)`` or raise a UserError naming it if it is not a readable file."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{what} not found: {path}")
    return path


def require_dir(path, what="folder") -> Path:
    path = Path(path)
    if not path.is_dir():
        raise UserError(f"{what} not found: {path}")
    return path


def iter_lines(path, encoding="utf-8", errors="strict"):
    """Yield ``(line_no, line)`` from a text file, 1-based, without the trailing newline.

    Undecodable bytes raise a UserError naming the file and the line.
    """
    path = require_file(path)
    with open(path, "rb") as handle:
        for line_no, raw in enumerate(handle, start=1):
            try:
                text = raw.decode(encoding, errors=errors)
            except UnicodeDecodeError as exc:
                raise UserError(
                    f"{where(path, line_no)}: bytes that are not valid {encoding} "
                    f"(byte {exc.start}: {raw[exc.start:exc.start + 1]!r})"
                ) from None
            yield line_no, text.rstrip("\r\n")


def count_lines(path) -> int:
    """Number of lines of a file (a last line without newline counts), read in blocks."""
    count, last = 0, b"\n"
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            count += block.count(b"\n")
            last = block[-1:]
    return count + (last != b"\n")


def text_files(spec, prefix="", suffix=".txt") -> list[Path]:
    """Input files the ModelZoo way: each comma-separated entry of ``spec`` is a file, or a folder whose
    ``*.txt`` files (sorted) are taken; only names starting with ``prefix``. A UserError if none."""
    files = []
    for part in filter(None, (p.strip() for p in str(spec).split(","))):
        path = Path(part)
        if path.is_file():
            files.append(path)
        elif path.is_dir():
            files.extend(sorted(p for p in path.iterdir() if p.is_file() and p.name.endswith(suffix)))
        else:
            raise UserError(f"input not found: {path}")
    files = [f for f in files if f.name.startswith(prefix or "")]
    if not files:
        raise UserError(f"no *{suffix} file in {spec}" + (f" starting with {prefix!r}" if prefix else ""))
    return files
