"""MindRecord output written atomically, plus the manifest that marks a dataset complete.

Shards are written into a hidden temporary folder next to their destination and moved into place only
after ``commit``; the manifest is written last. A loader refuses a dataset without its manifest, so an
interrupted build never looks finished.
"""

import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

from src.dataset import schema
from src.utils.errors import UserError
from src.utils.fileio import atomic_open

logger = logging.getLogger(__name__)

MANIFEST_SUFFIX = ".manifest.json"
MANIFEST_VERSION = 1


def manifest_path(dataset_path) -> Path:
    """``out/gigaword_train.mindrecord`` -> ``out/gigaword_train.mindrecord.manifest.json``."""
    return Path(str(dataset_path) + MANIFEST_SUFFIX)


class MindRecordDatasetWriter:
    """Write examples of one ``kind`` (see ``schema.SCHEMAS``) to ``path`` in ``shard_num`` shards.

    >>> with MindRecordDatasetWriter("out/news.mindrecord", schema.KIND_MONO) as w:   # doctest: +SKIP
    ...     w.write({"ids": ids, "index": 0})
    ...     w.finish(manifest={...})
    """

    def __init__(self, path, kind, shard_num=1, block_size=1000, description="MASS dataset"):
        from mindspore.mindrecord import FileWriter  # heavy import, only when writing

        if kind not in schema.SCHEMAS:
            raise ValueError(f"unknown dataset kind {kind!r}")
        self.path = Path(path)
        self.kind = kind
        self.shard_num = int(shard_num)
        self.block_size = block_size
        self.count = 0
        self._block = []
        self._finished = False
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmpdir = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.", dir=self.path.parent))
        self._writer = FileWriter(str(self._tmpdir / self.path.name), shard_num=self.shard_num,
                                  overwrite=True)
        self._writer.add_schema(schema.SCHEMAS[kind], description)

    def write(self, row: dict):
        self._block.append(row)
        if len(self._block) >= self.block_size:
            self._flush()

    def _flush(self):
        if self._block:
            self._writer.write_raw_data(self._block)
            self.count += len(self._block)
            self._block = []

    def finish(self, manifest: dict) -> Path:
        """Commit the shards, move them into place, then write the manifest; returns its path."""
        if self.count + len(self._block) == 0:
            raise UserError(f"no example left to write to {self.path} (see the counts of dropped lines)")
        self._flush()
        self._writer.commit()
        files = sorted(p.name for p in self._tmpdir.iterdir())
        self._remove_previous()
        for name in files:
            os.replace(self._tmpdir / name, self.path.parent / name)
        shutil.rmtree(self._tmpdir, ignore_errors=True)
        full = {
            "manifest_version": MANIFEST_VERSION,
            "kind": self.kind,
            "columns": sorted(schema.SCHEMAS[self.kind]),
            "examples": self.count,
            "shard_num": self.shard_num,
            "files": [n for n in files if not n.endswith(".db")],
            "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
            **manifest,
        }
        with atomic_open(manifest_path(self.path)) as handle:
            json.dump(full, handle, indent=2, sort_keys=True)
            handle.write("\n")
        self._finished = True
        logger.info("wrote %d examples to %s (%d shard(s))", self.count, self.path, self.shard_num)
        return manifest_path(self.path)

    def _remove_previous(self):
        """Remove an older dataset of the same name: its manifest first, so it never looks whole."""
        old = manifest_path(self.path)
        if not old.exists():
            return
        try:
            names = json.loads(old.read_text(encoding="utf-8")).get("files", [])
        except (json.JSONDecodeError, UnicodeDecodeError):
            names = []
        old.unlink()
        for name in names:
            for stale in (self.path.parent / name, self.path.parent / (name + ".db")):
                if stale.is_file():
                    stale.unlink()

    def close(self):
        if not self._finished:
            shutil.rmtree(self._tmpdir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def read_manifest(dataset_path) -> dict:
    """The manifest of a finished dataset; a UserError if it is missing or not ours."""
    path = manifest_path(dataset_path)
    if not path.is_file():
        raise UserError(f"{dataset_path}: no manifest ({path.name}); the dataset is missing or was not "
                        "finished: build it again")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not a valid manifest ({exc})") from None
    if manifest.get("kind") not in schema.SCHEMAS:
        raise UserError(f"{path}: unknown dataset kind {manifest.get('kind')!r}")
    return manifest


def dataset_files(dataset_path) -> list[str]:
    """Shard files of a finished dataset, checked to exist."""
    manifest = read_manifest(dataset_path)
    folder = Path(dataset_path).parent
    files = [folder / name for name in manifest["files"]]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise UserError(f"{dataset_path}: shard file(s) listed in the manifest are missing: {missing}")
    return [str(f) for f in files]
