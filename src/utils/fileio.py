"""Atomic file output and streaming text input.

Every artefact (dataset shard, vocabulary, checkpoint, manifest) is written under a temporary name in
the destination folder and renamed into place only when complete, so a crash never leaves a half file
that looks whole.
"""

import contextlib
import errno
import os
import re
import shutil
import tempfile
from pathlib import Path

from src.utils.errors import UserError, where

# A temporary is a hidden folder ".<name>.<pid>.<random>.tmp" next to the destination, holding the file
# (or dataset parts) under the destination's own name: nothing in the destination folder ever looks
# like a result while it is incomplete (not even to MindSpore or a shell glob), and the writer's pid
# in the name lets a later writer remove the leftovers of a dead one without touching a live one.
TEMP_RE = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.[A-Za-z0-9_]{8}\.tmp$")
MIN_FREE_BYTES = 16 << 20  # refuse to start long work on a disk with less room than this


def temporary_dir_for(path) -> Path:
    """A fresh temporary folder in the same folder as ``path`` (same filesystem, so rename is atomic)."""
    path = Path(path)
    return Path(tempfile.mkdtemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return pid != 0


def remove_stale_temps(folder, name: str | None = None) -> list[Path]:
    """Remove the temporaries that writers of this toolkit left in ``folder`` when they died (any
    destination, or only ``name``'s); a live writer's temporaries are kept. Returns what was removed."""
    folder = Path(folder)
    removed = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return removed
    for entry in entries:
        m = TEMP_RE.match(entry.name)
        if not m or (name is not None and m.group("name") != name) or _alive(int(m.group("pid"))):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry)
    return removed


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path; on success flush it to disk and rename it to ``path``, on error remove it.

    The one way this project writes a file: text (:func:`atomic_open`), checkpoints, ``.npz`` and
    ``.mindir`` files all go through it. The temporary path has the destination's own name, inside a
    hidden temporary folder, so writers that append an extension (MindSpore, NumPy) keep it as is;
    stale temporaries of dead writers in the destination folder are removed first.

    >>> with atomic_path("out.bin") as tmp:   # doctest: +SKIP
    ...     write_somehow(tmp)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path.parent)
    tmpdir = temporary_dir_for(path)
    tmp = tmpdir / path.name
    try:
        yield tmp
        fsync_replace(tmp, path)
    except OSError as exc:
        if exc.filename is None:  # a failed write() names no file: name the one being written
            raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from None
        raise
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


@contextlib.contextmanager
def atomic_open(path, mode="w", encoding="utf-8"):
    """Open a temporary file for writing that becomes ``path`` only when the block ends without error."""
    with atomic_path(path) as tmp:
        kwargs = {} if "b" in mode else {"encoding": encoding, "newline": "\n"}
        with open(tmp, mode, **kwargs) as handle:
            yield handle


def fsync_replace(tmp, path):
    """Flush ``tmp`` to disk, then rename it to ``path``: the file is complete before it is visible."""
    tmp = Path(tmp)
    if not tmp.is_file():
        raise OSError(errno.ENOENT, "the writer produced no file", str(path))
    with open(tmp, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def _existing_ancestor(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path(".")


def _check_room(folder: Path, shown: Path, need_bytes: int):
    probe = None
    try:
        probe = temporary_dir_for(folder / "write-check")
    except OSError as exc:
        raise UserError(f"{shown}: cannot write here ({exc.strerror or exc})") from None
    finally:
        if probe is not None:
            shutil.rmtree(probe, ignore_errors=True)
    free = shutil.disk_usage(folder).free
    if free < need_bytes:
        raise UserError(f"{shown}: only {free / 2**20:.1f} MiB free on its disk (at least "
                        f"{need_bytes / 2**20:.0f} MiB needed)")


def room_for(inputs, factor: float = 2.0) -> int:
    """The free space to ask for before turning ``inputs`` into outputs about ``factor`` times their size."""
    return MIN_FREE_BYTES + int(factor * sum(Path(p).stat().st_size for p in inputs if Path(p).is_file()))


def check_output_file(path, what="output file", need_bytes=MIN_FREE_BYTES) -> Path:
    """Fail now, before any long work, if ``path`` cannot become a file: it is a folder, a parent is a
    file, the folder is not writable or its disk is (nearly) full. Creates the parent folders."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{path}: is a folder; the {what} must be a file name")
    ancestor = _existing_ancestor(path.parent)
    if not ancestor.is_dir():
        raise UserError(f"{ancestor}: is a file, so the {what} {path} cannot be written under it")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"{path.parent}: cannot create this folder ({exc.strerror or exc})") from None
    _check_room(path.parent, path, need_bytes)
    return path


def check_output_folder(path, what="output folder", need_bytes=MIN_FREE_BYTES) -> Path:
    """Fail now if ``path`` cannot be (or become) a writable folder with room on its disk; creates it."""
    path = Path(path)
    ancestor = _existing_ancestor(path)
    if not ancestor.is_dir():
        raise UserError(f"{ancestor}: is a file; the {what} must be a folder" if ancestor == path else
                        f"{ancestor}: is a file, so the {what} {path} cannot be created under it")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"{path}: cannot create this folder ({exc.strerror or exc})") from None
    _check_room(path, path, need_bytes)
    return path


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


def require_text(paths, what="input"):
    """A UserError naming ``paths`` when none of them holds a line with text (empty, or blank lines only):
    a data-preparation step that would write empty outputs stops before it writes anything. Reads up
    to the first line with text."""
    paths = [Path(p) for p in paths]
    for path in paths:
        with open(path, "rb") as handle:
            if any(line.strip() for line in handle):
                return
    names = ", ".join(str(p) for p in paths[:5]) + (" ..." if len(paths) > 5 else "")
    raise UserError(f"{names}: no text in the {what} (empty, or blank lines only): nothing to write")


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
