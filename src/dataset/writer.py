"""MindRecord output written atomically, plus the manifest that marks a dataset complete.

A dataset is one or more MindRecord files ("parts"; each part is a complete MindRecord file with its
``.db`` index). Parts are written into a hidden temporary folder next to their destination
(``src.utils.fileio``'s naming, so a later build removes what a killed one left), possibly by
several worker processes at once, and moved into place only when all are done; the manifest is written
last. A loader refuses a dataset without its manifest, so an interrupted build never looks finished.
Parts also bound memory: MindSpore's writer keeps per-row index data until ``commit``, so a large
corpus is cut into parts of at most ``PART_ROWS`` rows.
"""

import contextlib
import errno
import hashlib
import json
import logging
import os
import re
import resource
import shutil
import time
import uuid
from pathlib import Path

from src.dataset import schema
from src.utils.errors import UserError
from src.utils.fileio import atomic_open, remove_stale_temps, temporary_dir_for
from src.utils.output_lock import hold

logger = logging.getLogger(__name__)

MANIFEST_SUFFIX = ".manifest.json"
MANIFEST_VERSION = 1
PART_ROWS = 200_000
BLOCK_ROWS = 1000
# what MindSpore's writer may add to a part at once: a 16 MiB header and 32 MiB pages (its defaults)
WRITER_ROOM = 3 << 25


# MindSpore's own words for a full disk, in a writer's RuntimeError
DISK_FULL = re.compile(r"no (free disk|space left)|disk is full", re.IGNORECASE)


def mindspore_error(exc: BaseException) -> str:
    """The message of a MindSpore RuntimeError without its banners and call stack, on one line.

    >>> mindspore_error(RuntimeError("Exception thrown from dataset pipeline. Refer to 'Dataset Pipeline Error "
    ...     "Message'.\\n----\\n- Dataset Pipeline Error Message:\\n----\\n[ERROR] [Internal ERROR] Failed to "
    ...     "write mindrecord meta files.\\n----\\n- C++ Call Stack: (For framework developers)\\n----\\nx.cc(1)."))
    'Failed to write mindrecord meta files.'
    >>> mindspore_error(RuntimeError("Unexpected error. Failed to write file.\\nLine of code : 12\\nFile : x.cc"))
    'Unexpected error. Failed to write file.'
    """
    text = str(exc)
    section = re.search(r"Dataset Pipeline Error Message:\s*-*\s*(.*?)(?:\n\s*-{3,}|$)", text, re.DOTALL)
    text = section.group(1) if section else text.split("Line of code")[0]
    text = re.sub(r"^(\s*\[(?:Internal )?ERROR\])+", "", text)
    return " ".join(text.split()) or type(exc).__name__


def manifest_path(dataset_path) -> Path:
    """``out/gigaword_train.mindrecord`` -> ``out/gigaword_train.mindrecord.manifest.json``."""
    return Path(str(dataset_path) + MANIFEST_SUFFIX)


class PartFile:
    """One MindRecord file of ``kind`` rows, written in blocks; ``close()`` commits it."""

    def __init__(self, path, kind, description="MASS dataset"):
        from mindspore.mindrecord import FileWriter  # heavy import, only when writing

        if kind not in schema.SCHEMAS:
            raise ValueError(f"unknown dataset kind {kind!r}")
        self.path = Path(path)
        self.count = 0
        self._block = []
        self._writer = FileWriter(str(self.path), shard_num=1, overwrite=True)
        self._writer.add_schema(schema.SCHEMAS[kind], description)

    def write(self, row: dict):
        self._block.append(row)
        if len(self._block) >= BLOCK_ROWS:
            self._flush()

    @property
    def rows(self) -> int:
        """Rows written so far, the ones still buffered included."""
        return self.count + len(self._block)

    def _flush(self):
        if self._block:
            self.require_room()
            with self._failures("write its rows"):
                self._writer.write_raw_data(self._block)
            self.count += len(self._block)
            self._block = []

    def close(self) -> int:
        """Commit; returns the number of rows (a part without rows is not committed)."""
        self._flush()
        if self.count:
            self.require_room()
            with self._failures("commit"):
                self._writer.commit()
        return self.count

    @property
    def final_path(self) -> Path:
        """The part's name once published (it is written in its dataset's temporary folder)."""
        return self.path.parent.parent / self.path.name

    @contextlib.contextmanager
    def _failures(self, what: str):
        """MindSpore's writer reports a failed write (a disk that filled up since :meth:`require_room`
        looked, a folder removed under it) as a bare RuntimeError: turn it into an error naming the part,
        an ENOSPC OSError ("the disk is full") when its disk has (nearly) no room left. The part's
        temporary folder is removed by its dataset's ``close``."""
        try:
            yield
        except RuntimeError as exc:
            detail = mindspore_error(exc)
            try:
                free = shutil.disk_usage(self.path.parent).free
            except OSError:
                free = None
            if (free is not None and free < WRITER_ROOM) or DISK_FULL.search(detail):
                room = f"; {free / 2**20:.0f} MiB free" if free is not None and free < WRITER_ROOM else ""
                raise OSError(errno.ENOSPC, f"No space left on device: the MindRecord writer could not {what} "
                                            f"({detail}{room})",
                              str(self.final_path)) from None
            raise UserError(f"{self.final_path}: the MindRecord writer could not {what} ({detail}); is the disk "
                            "full or the folder no longer writable?") from None

    def require_room(self):
        """An OSError naming the part (by its final name) when its disk, or the process's file size limit,
        leaves less than ``WRITER_ROOM`` bytes: MindSpore's writer crashes the process (a segmentation
        fault, measured on 2.10) instead of reporting a failed write, so it is never let near one."""
        final = self.final_path
        free = shutil.disk_usage(self.path.parent).free
        if free < WRITER_ROOM:
            raise OSError(errno.ENOSPC, f"No space left on device: {free / 2**20:.0f} MiB free, the MindRecord "
                                        f"writer needs {WRITER_ROOM / 2**20:.0f} MiB", str(final))
        limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
        size = self.path.stat().st_size if self.path.exists() else 0
        if limit != resource.RLIM_INFINITY and limit < size + WRITER_ROOM:
            raise OSError(errno.EFBIG, f"File too large: the file size limit ({limit} bytes) leaves no room for "
                                       "the MindRecord writer's pages", str(final))


class DatasetOutput:
    """The destination of one dataset: a temporary folder for its parts, then an atomic publish. The
    dataset is held (src/utils/output_lock.py) from here until ``close``: a second build of the same
    dataset is refused while this one runs."""

    def __init__(self, path, kind):
        if kind not in schema.SCHEMAS:
            raise ValueError(f"unknown dataset kind {kind!r}")
        self.path, self.kind = Path(path), kind
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = contextlib.ExitStack()
        self._lock.enter_context(hold(self.path))
        try:
            remove_stale_temps(self.path.parent)  # part folders of builds that were killed
            self.tmpdir = temporary_dir_for(self.path)
        except BaseException:
            self._lock.close()
            raise
        self._published = False
        self.deferred = False  # handed to a Build, which publishes or removes it

    def part_path(self, number: int) -> Path:
        return self.tmpdir / f"{self.path.name}.part{number:05d}"

    def publish(self, count: int, manifest: dict) -> Path:
        """Move the finished parts into place, then write the manifest; returns the manifest path."""
        return self.commit(self.prepare(count), manifest)

    def prepare(self, count: int) -> tuple:
        """The slow half of ``publish``, before anything is moved: ``(count, files, sizes, digests)`` of the
        finished parts."""
        if count == 0:
            raise UserError(f"no example left to write to {self.path} (see the counts of dropped lines)")
        files = sorted(p.name for p in self.tmpdir.iterdir())
        sizes = {name: (self.tmpdir / name).stat().st_size for name in files}
        digests = {name: file_sha256(self.tmpdir / name) for name in files}
        return count, files, sizes, digests

    def commit(self, prepared: tuple, manifest: dict) -> Path:
        """The quick half of ``publish``: the ``prepare``d parts moved into place, then the manifest."""
        count, files, sizes, digests = prepared
        remove_dataset(self.path)
        for name in files:
            os.replace(self.tmpdir / name, self.path.parent / name)
        shutil.rmtree(self.tmpdir, ignore_errors=True)
        full = {
            "manifest_version": MANIFEST_VERSION,
            "kind": self.kind,
            "columns": sorted(schema.SCHEMAS[self.kind]),
            "examples": count,
            "files": [n for n in files if not n.endswith(".db")],
            "sizes": sizes,  # bytes of every part and index: a truncated or replaced file is refused
            "sha256": digests,  # and their content: a changed byte is refused too (checked on open)
            "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
            **manifest,
        }
        with atomic_open(manifest_path(self.path)) as handle:
            json.dump(full, handle, indent=2, sort_keys=True)
            handle.write("\n")
        self._published = True
        logger.info("wrote %d examples to %s (%d file(s))", count, self.path, len(full["files"]))
        return manifest_path(self.path)

    def close(self):
        if self.deferred:
            return  # the Build closes it
        if not self._published:
            shutil.rmtree(self.tmpdir, ignore_errors=True)
        self._lock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


class Build:
    """The datasets one command writes (the splits of one corpus), published together.

    Every manifest of a build carries the same ``build`` id, the list of the splits it wrote and the
    vocabulary's digest, so loaders can refuse a training set and a validation set of two different
    builds, or of two vocabularies. Nothing is published until every split is complete, and then the
    old datasets of every split are removed first: a crash while publishing leaves some splits
    missing (a clear error), never a new split next to an old one.
    """

    def __init__(self, vocab):
        self.id = uuid.uuid4().hex[:16]
        self.vocab = {"vocab_size": len(vocab), "vocab_sha256": vocab.digest()}
        self._pending = []  # (DatasetOutput, count, manifest)

    def add(self, output: "DatasetOutput", count: int, manifest: dict):
        output.deferred = True
        self._pending.append((output, count, manifest))
        if count == 0:
            raise UserError(f"no example left to write to {output.path} (see the counts of dropped lines)")

    def publish(self) -> list[Path]:
        """Every split hashed first, then each moved into place: a kill leaves at most the few renames of
        the last splits undone, not the hashing of their parts."""
        splits = sorted(m.get("split", "") for _, _, m in self._pending)
        prepared = [output.prepare(count) for output, count, _ in self._pending]
        for output, _, _ in self._pending:
            remove_dataset(output.path)
        return [output.commit(ready, {**manifest, **self.vocab, "build": {"id": self.id, "splits": splits}})
                for (output, _, manifest), ready in zip(self._pending, prepared, strict=True)]

    def close(self):
        """Remove the temporary parts of whatever was not published (after an error)."""
        for output, _, _ in self._pending:
            output.deferred = False
            output.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


class MindRecordDatasetWriter:
    """Stream rows into one dataset from a single process, starting a new part every ``PART_ROWS``.

    >>> with MindRecordDatasetWriter("out/news.mindrecord", schema.KIND_MONO) as w:   # doctest: +SKIP
    ...     w.write({"ids": ids, "index": 0})
    ...     w.finish(manifest={...})
    """

    def __init__(self, path, kind, part_rows=PART_ROWS):
        self.output = DatasetOutput(path, kind)
        self.part_rows = part_rows
        self.count = 0
        self._parts = 0
        self._part = None

    def write(self, row: dict):
        if self._part is None:
            self._part = PartFile(self.output.part_path(self._parts), self.output.kind)
            self._parts += 1
        self._part.write(row)
        if self._part.rows >= self.part_rows:
            self._close_part()

    def _close_part(self):
        if self._part is not None:
            self.count += self._part.close()
            self._part = None

    def finish(self, manifest: dict) -> Path:
        self._close_part()
        return self.output.publish(self.count, manifest)

    def finish_into(self, build: Build, manifest: dict):
        """Complete the parts and leave the publishing to ``build`` (keep this writer open until then)."""
        self._close_part()
        build.add(self.output, self.count, manifest)

    def close(self):
        self.output.close()

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
    if not isinstance(manifest, dict) or manifest.get("kind") not in schema.SCHEMAS:
        raise UserError(f"{path}: not a dataset manifest of this toolkit (unknown or missing 'kind')")
    files = manifest.get("files")
    if not isinstance(files, list) or not files or any(
            not isinstance(n, str) or Path(n).name != n for n in files):
        raise UserError(f"{path}: 'files' must list the dataset's file names (plain names, no folders)")
    return manifest


def is_part_name(dataset_path, name: str) -> bool:
    """Whether ``name`` is one of the part files this writer names for ``dataset_path``
    (``<dataset>.partNNNNN``, or its ``.db`` index): the only files a rebuild ever deletes.

    >>> is_part_name("out/a.mindrecord", "a.mindrecord.part00003.db"), is_part_name("out/a.mindrecord", "notes.txt")
    (True, False)
    """
    return re.fullmatch(re.escape(Path(dataset_path).name) + r"\.part\d{5}(\.db)?", name) is not None


def remove_dataset(dataset_path):
    """Delete a finished dataset, if there is one: its manifest first (so it never looks whole), then its
    part files: the ones of this writer's naming scheme next to it (whatever the manifest lists, a file
    of another name is never deleted)."""
    dataset_path = Path(dataset_path)
    old = manifest_path(dataset_path)
    if old.exists():
        old.unlink()
    if not dataset_path.parent.is_dir():
        return
    for entry in dataset_path.parent.iterdir():
        if is_part_name(dataset_path, entry.name) and entry.is_file():
            entry.unlink()


_VERIFIED = {}


def dataset_files(dataset_path) -> list[str]:
    """Files of a finished dataset, checked once per process: they exist with their ``.db`` index,
    MindSpore can open them, and they hold the number of rows the manifest says."""
    manifest = read_manifest(dataset_path)
    folder = Path(dataset_path).parent
    files = [folder / name for name in manifest["files"]]
    for name in manifest["files"]:
        if not is_part_name(dataset_path, name):
            raise UserError(f"{manifest_path(dataset_path)}: lists {name!r}, which is not a part of this dataset "
                            f"(parts are named {Path(dataset_path).name}.partNNNNN)")
    missing = [str(f) for f in files if not f.is_file()]
    missing += [str(f) + ".db" for f in files if f.is_file() and not Path(str(f) + ".db").is_file()]
    if missing:
        raise UserError(f"{dataset_path}: file(s) of this dataset are missing: {', '.join(missing)}; build it again")
    sizes = manifest.get("sizes") or {}
    for name, size in sizes.items():
        actual = (folder / name).stat().st_size if (folder / name).is_file() else None
        if actual != size:
            raise UserError(f"{folder / name}: {actual} bytes, but the manifest of {dataset_path} says {size} "
                            "(truncated or replaced): build the dataset again")
    key = (str(Path(dataset_path).resolve()), tuple((f.stat().st_mtime_ns, f.stat().st_size) for f in files))
    if _VERIFIED.get(key) is None:
        _check_digests(dataset_path, folder, manifest)
        _VERIFIED[key] = _count_rows(dataset_path, files, manifest)
    return [str(f) for f in files]


def file_sha256(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _check_digests(dataset_path, folder: Path, manifest: dict):
    """Every file the manifest has a sha256 for still has it (manifests written before the digests were
    recorded are checked by size, row count and id range only)."""
    digests = manifest.get("sha256") or {}
    if not isinstance(digests, dict):
        raise UserError(f"{manifest_path(dataset_path)}: 'sha256' must map file names to digests")
    for name, expected in sorted(digests.items()):
        if not is_part_name(dataset_path, name):
            raise UserError(f"{manifest_path(dataset_path)}: lists {name!r}, which is not a part of this dataset")
        if file_sha256(folder / name) != expected:
            raise UserError(f"{folder / name}: changed or damaged bytes: its sha256 is not the one in the manifest of "
                            f"{dataset_path}: build the dataset again")


def _count_rows(dataset_path, files, manifest) -> int:
    import mindspore.dataset as ds

    columns = sorted(schema.SCHEMAS[manifest["kind"]])
    try:
        rows = ds.MindDataset([str(f) for f in files], columns_list=columns, shuffle=False).get_dataset_size()
    except (RuntimeError, ValueError, OSError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"{dataset_path}: its MindRecord files cannot be read ({reason[:200]}); build it "
                        "again") from None
    if rows != manifest.get("examples"):
        raise UserError(f"{dataset_path}: holds {rows} examples but its manifest says {manifest.get('examples')}; "
                        "build it again")
    return rows
