"""Which datasets belong together: the same vocabulary everywhere, a training set with its own build's
validation set.

Every manifest records the vocabulary it was encoded with (``vocab_size`` and ``vocab_sha256``,
:meth:`src.text.dictionary.Dictionary.digest`) and its build (``build.id``, ``build.splits``: the splits
one command wrote together, src/dataset/writer.py). train.py and eval.py check them here before
any work, so that a validation set of another vocabulary or an older build is an error, not a
silently wrong score.
"""

from src.dataset.writer import read_manifest
from src.utils.errors import UserError


def vocabulary_of(paths, what="the datasets") -> tuple[int, str | None]:
    """``(vocab_size, vocab_sha256)`` shared by the datasets ``paths``; the digest is None when no
    manifest records one (datasets built before digests existed). A UserError names the datasets
    that disagree."""
    seen = {}
    for path in paths:
        manifest = read_manifest(path)
        seen[str(path)] = (manifest.get("vocab_size"), manifest.get("vocab_sha256"))
    sizes = {size for size, _ in seen.values()}
    digests = {digest for _, digest in seen.values() if digest}
    if len(sizes) > 1 or len(digests) > 1:
        listing = "; ".join(f"{p}: {size} symbols" + (f", vocabulary {d}" if d else "")
                            for p, (size, d) in seen.items())
        raise UserError(f"{what} were encoded with different vocabularies ({listing}): rebuild them with one "
                        "vocabulary")
    if not seen:
        raise UserError(f"{what}: no dataset given")
    return sizes.pop(), (digests.pop() if digests else None)


def check_same_build(train_paths, valid_paths):
    """A validation set of the training set's kind must come from the training set's build when that
    build wrote a validation split of its own (otherwise the two are from different builds of the
    same corpus, e.g. after a rebuild that failed half-way)."""
    train = {str(p): read_manifest(p) for p in train_paths}
    for valid_path in valid_paths:
        valid = read_manifest(valid_path)
        for train_path, manifest in train.items():
            build = manifest.get("build") or {}
            if manifest["kind"] != valid["kind"] or "valid" not in build.get("splits", []):
                continue
            other = (valid.get("build") or {}).get("id")
            if other != build.get("id"):
                raise UserError(f"{valid_path}: from another build ({other or 'unrecorded'}) than the training set "
                                f"{train_path} (build {build.get('id')}, which wrote a validation split too): "
                                "use the validation split of the same build, or rebuild both")


def check_model_vocabulary(model_digest, data_digest, where_model, where_data):
    """The model's vocabulary (its config's ``vocab_sha256``) must be the data's, when both are known."""
    if model_digest and data_digest and model_digest != data_digest:
        raise UserError(f"{where_data} was encoded with vocabulary {data_digest}, but {where_model} was trained "
                        f"with vocabulary {model_digest}: ids would mean other words")
