"""Finding input files the way the ModelZoo scripts do: a folder of ``*.txt`` (optionally filtered by
a name prefix) or a single file."""

from pathlib import Path

from src.utils.errors import UserError


def text_files(src, prefix="", suffix=".txt") -> list[Path]:
    """``src`` itself if it is a file, else the sorted ``*.txt`` files in it whose name starts with
    ``prefix``; a UserError if there are none."""
    src = Path(src)
    if src.is_file():
        return [src]
    if not src.is_dir():
        raise UserError(f"input not found: {src}")
    files = sorted(p for p in src.iterdir() if p.is_file() and p.name.endswith(suffix)
                   and p.name.startswith(prefix or ""))
    if not files:
        raise UserError(f"{src}: no *{suffix} file" + (f" starting with {prefix!r}" if prefix else ""))
    return files
