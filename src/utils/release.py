"""A released pre-trained model: a folder holding weights-only ``weights.npz``, the vocabulary and BPE codes
the weights were trained with, the model config, and ``manifest.json`` that names each file with its
size and sha256, and says how the model was made (objective, steps, data, validation loss).

Reading any file of a release goes through :func:`verify_file`: a file whose bytes changed (a sha256 that
differs from the manifest's), a truncated one, or a manifest of another format is an error, never a
different model. ``read_weights`` (src/utils/checkpoint.py) verifies an ``.npz`` that has a release
manifest beside it, so train.py's ``existed_ckpt``, eval.py and export.py all refuse a damaged release.

>>> manifest = read_manifest("models/mass-small-news-keep40")                         # doctest: +SKIP
>>> verify_release("models/mass-small-news-keep40")["weights"]                         # doctest: +SKIP
'weights.npz'
"""

import hashlib
import json
from pathlib import Path

from src.utils.errors import UserError
from src.utils.fileio import atomic_open

MANIFEST = "manifest.json"
FORMAT = "mass-mindspore-release/1"
ROLES = ("weights", "vocab", "codes", "config")  # the files a release holds, by role
MAX_WEIGHTS_BYTES = 40 * 2**20  # a release lives in the repository: weights at most 40 MiB


def sha256_of(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_manifest(folder) -> dict:
    """The manifest of the release in ``folder`` (a UserError if absent, unreadable or of another format)."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise UserError(f"{path}: not found ({folder} is not a released model)")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not a release manifest ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else type(manifest).__name__
        raise UserError(f"{path}: format {found!r}, expected {FORMAT!r}")
    files = manifest.get("files")
    if not isinstance(files, dict) or any(manifest.get(role) not in files for role in ROLES):
        raise UserError(f"{path}: the manifest must name its {', '.join(ROLES)} files under \"files\"")
    return manifest


def verify_file(folder, name: str, manifest: dict | None = None) -> Path:
    """``folder/name``, after checking its size and sha256 against the release manifest."""
    manifest = manifest or read_manifest(folder)
    entry = manifest["files"].get(name)
    path = Path(folder) / name
    if entry is None:
        raise UserError(f"{path}: not listed in {Path(folder) / MANIFEST}")
    if not path.is_file():
        raise UserError(f"{path}: missing from the release (listed in {MANIFEST})")
    size = path.stat().st_size
    if size != entry.get("bytes"):
        raise UserError(f"{path}: {size} bytes, the manifest says {entry.get('bytes')}: the file is damaged or "
                        "was replaced")
    if sha256_of(path) != entry.get("sha256"):
        raise UserError(f"{path}: sha256 differs from the manifest's: the file is damaged or was replaced")
    return path


def verify_release(folder) -> dict:
    """The manifest, once every file it lists is checked."""
    manifest = read_manifest(folder)
    for name in manifest["files"]:
        verify_file(folder, name, manifest)
    return manifest


def release_of(path) -> Path | None:
    """The release folder ``path`` (a file) belongs to, when a manifest beside it lists it; else None."""
    path = Path(path)
    beside = path.parent / MANIFEST
    if not beside.is_file():
        return None
    try:
        listed = json.loads(beside.read_text(encoding="utf-8")).get("files", {})
    except (ValueError, UnicodeDecodeError, AttributeError):
        listed = {}
    return path.parent if path.name in listed else None


def file_entry(path) -> dict:
    return {"bytes": Path(path).stat().st_size, "sha256": sha256_of(path)}


def write_manifest(folder, files: dict[str, str], info: dict) -> Path:
    """Write ``folder/manifest.json`` for ``files`` (role -> file name inside ``folder``) and ``info``."""
    folder = Path(folder)
    manifest = {"format": FORMAT, **{role: name for role, name in files.items()},
                "files": {name: file_entry(folder / name) for name in files.values()}, **info}
    with atomic_open(folder / MANIFEST) as handle:
        json.dump(manifest, handle, indent=2)
        handle.write("\n")
    return folder / MANIFEST
