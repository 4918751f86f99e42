"""The checkpoint format, in one place: what a checkpoint holds, how it is written, read and found.

A checkpoint is a MindSpore ``.ckpt`` (protobuf: loading it never executes code) holding

* the model parameters (:func:`is_model_param`), named as the model's cells name them;
* the optimizer state (moments, step counter, learning rate), the gradient accumulators
  (``ACCUM_PREFIX``) and the dynamic loss-scaler state (``LOSS_SCALER_ENTRIES``);
* the run state (``STATE_KEYS``) as plain values: phase, epoch, batch position inside the epoch,
  optimizer step, the resolved config as JSON text, and the validation scores that chose it;
* last, ``content_sha256``: the sha256 of every byte before it, so that a changed byte is an error
  (:func:`check_content_digest`), not a different model. Files written before it existed are read
  without that check.

Numbers that went wrong are refused on reading: a NaN or Inf in any floating-point entry
(:func:`check_finite`) is an error naming the file and the entries, for eval.py, export.py,
weights_average.py, existed_ckpt and resume alike; :func:`save_npz` never writes one, and
:class:`CheckpointManager` never saves one.

Weights-only files are ``.npz`` archives of the model parameters (:func:`save_npz`, written by
weights_average.py, with the text entry :data:`NPZ_CONFIG` holding the model's config where the averaged
checkpoints had one); :func:`read_weights`, :func:`read_model_file` and :func:`load_model_weights` read
both kinds. Step
checkpoints are named ``<prefix>_step<N>.ckpt`` (:func:`step_checkpoints`), the best one
``<prefix>_best.ckpt`` (:class:`CheckpointManager`).
"""

import hashlib
import json
import logging
import math
import re
import zipfile
from pathlib import Path

import mindspore as ms
import numpy as np
from mindspore import Parameter, Tensor

from src.utils.errors import UserError
from src.utils.fileio import atomic_path
from src.utils.release import release_of, verify_file

logger = logging.getLogger(__name__)

STATE_KEYS = ("phase", "epoch", "batch_in_epoch", "step", "mix_epoch", "mix_batch_in_epoch", "config_json")
# the validation score a checkpoint was chosen by and the best so far: valid_loss / best_valid_loss, or
# valid_<metric> / best_valid_<metric> for checkpoint_options.best_by=<metric> (rouge, bleu, ...)
VALID_STATE_RE = re.compile(r"^(best_)?valid_[a-z][a-z0-9_]*$")
NPZ_CONFIG = "config_json"  # the text entry of an .npz that holds its model's config (weights_average.py)
STEP_RE = re.compile(r"^([^.].*)_step(\d+)\.ckpt$")  # hidden names are never checkpoints
ACCUM_PREFIX = "accum."  # gradient accumulators (src/training/train_step.py)
LOSS_SCALER_ENTRIES = ("loss_scaler.scale_value", "loss_scaler.counter")  # dynamic loss scaling
# Prefixes of optimizer slots (MindSpore's Adam, AdamWeightDecay, Lamb, Momentum), of the gradient
# accumulators and of the loss-scaler state.
NON_MODEL_PREFIXES = ("moment1.", "moment2.", "vhat.", "adam_m.", "adam_v.", "lamb_m.", "lamb_v.", "moments.",
                      ACCUM_PREFIX, "loss_scaler.")
# Scalars written by optimizers, loss-scale cells and MindSpore's ModelCheckpoint, and our run state.
CONTENT_DIGEST = "content_sha256"  # the checkpoint's last entry: sha256 of the bytes before it
NON_MODEL_NAMES = frozenset(("beta1_power", "beta2_power", "global_step", "learning_rate", "scale_sense",
                             "loss_scale", "current_iterator_step", "last_overflow_iterator_step",
                             "epoch_num", "step_num", CONTENT_DIGEST) + STATE_KEYS)


def best_checkpoint_name(prefix: str) -> str:
    """The file name of the best checkpoint of the runs written with ``prefix`` (``<ckpt_prefix>_<phase>``).

    >>> best_checkpoint_name("ckpt_finetune")
    'ckpt_finetune_best.ckpt'
    """
    return f"{prefix}_best.ckpt"


def is_state_key(name: str) -> bool:
    """True for an entry of the run state (:data:`STATE_KEYS`, a validation score).

    >>> is_state_key("step"), is_state_key("best_valid_bleu"), is_state_key("encoder.valid_w")
    (True, True, False)
    """
    return name in STATE_KEYS or VALID_STATE_RE.match(name) is not None


def is_model_param(name: str) -> bool:
    """True for a model parameter, False for an optimizer slot, counter, loss scale or run-state entry.

    >>> is_model_param("embedding.table"), is_model_param("moment1.embedding.table"), is_model_param("step")
    (True, False, False)
    """
    return name not in NON_MODEL_NAMES and not is_state_key(name) and not name.startswith(NON_MODEL_PREFIXES)


def save_checkpoint(path, entries: list, state: dict) -> Path:
    """Write ``entries`` (``[{"name", "data"}]``) and ``state`` (plain values) atomically to ``path``."""
    path = Path(path)
    with atomic_path(path) as tmp:
        ms.save_checkpoint(entries, str(tmp), append_dict={k: v for k, v in state.items() if v is not None})
        digest = hashlib.sha256()
        with open(tmp, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        with open(tmp, "ab") as handle:  # protobuf: appended entries are entries of the same message
            handle.write(_digest_entry(digest.hexdigest()))
    return path


def _digest_entry(hex_digest: str) -> bytes:
    """The serialized ``content_sha256`` entry (a MindSpore string value: UTF-32 text, 288 bytes)."""
    from mindspore.train import checkpoint_pb2

    proto = checkpoint_pb2.Checkpoint()
    value = proto.value.add()
    value.tag = CONTENT_DIGEST
    value.tensor.dims.append(0)
    value.tensor.tensor_type = "str"
    value.tensor.tensor_content = hex_digest.encode("utf-32-le")
    return proto.SerializeToString()


def check_content_digest(path, data: bytes, has_entry: bool):
    """A UserError if the checkpoint's bytes are not the ones its ``content_sha256`` entry was computed
    over (a changed byte, or the entry moved); nothing to check in a file written without one."""
    size = len(_digest_entry("0" * 64))
    head = _digest_entry("0" * 64)[:-256]  # everything but the 64 UTF-32 characters of the digest
    if len(data) < size or data[-size:-256] != head:
        if has_entry:
            raise UserError(f"{path}: its {CONTENT_DIGEST} entry is not the last one any more: the file was "
                            "changed after it was written")
        return
    stored = data[-256:].decode("utf-32-le", errors="replace")
    actual = hashlib.sha256(data[:-size]).hexdigest()
    if stored != actual:
        raise UserError(f"{path}: changed or damaged bytes: its content is not the one written (sha256 "
                        f"{actual[:12]}..., recorded {stored[:12]}...): restore the file or use another one")


def load_checkpoint(path) -> tuple[dict, dict]:
    """``(parameters by name, run state)`` of a checkpoint; a UserError if it cannot be read."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint not found: {path}")
    try:
        raw = ms.load_checkpoint(str(path))
    except (RuntimeError, ValueError) as exc:
        raise UserError(f"{path}: not a readable MindSpore checkpoint ({exc})") from None
    data = path.read_bytes()
    check_tensor_sizes(path, data)
    state = {}
    for key in [k for k in raw if is_state_key(k)]:
        state[key] = _state_value(path, key, raw.pop(key))
    check_content_digest(path, data, raw.pop(CONTENT_DIGEST, None) is not None)
    check_finite({name: value for name, value in raw.items() if not isinstance(value, str)}, path)
    return raw, state


def check_finite(arrays: dict, path, what="entries"):
    """A UserError naming ``path`` and the floating-point arrays (NumPy arrays or MindSpore tensors) that
    hold a NaN or an Inf: weights that went wrong are never used as a model."""
    bad = []
    for name, value in arrays.items():
        if not isinstance(value, np.ndarray):
            value = value.astype(ms.float32) if value.dtype == ms.bfloat16 else value
        array = np.asarray(value if isinstance(value, np.ndarray) else value.asnumpy())
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            bad.append(f"{name} ({int(np.isnan(array).sum())} NaN, {int(np.isinf(array).sum())} Inf)")
    if bad:
        raise UserError(f"{path}: NaN or Inf in {len(bad)} {what}, e.g. {', '.join(bad[:3])}: the training "
                        "that wrote it diverged; use an earlier checkpoint")


ITEM_BYTES = {"Float16": 2, "BFloat16": 2, "Float32": 4, "Float64": 8, "Int8": 1, "UInt8": 1, "Int16": 2,
              "UInt16": 2, "Int32": 4, "UInt32": 4, "Int64": 8, "UInt64": 8, "Bool": 1}


def check_tensor_sizes(path, data: bytes | None = None):
    """A UserError if a tensor of the checkpoint (``data``: its bytes, read if None) holds fewer (or more)
    bytes than its shape declares: MindSpore would silently fill the missing part with zeros."""
    from mindspore.train import checkpoint_pb2

    proto = checkpoint_pb2.Checkpoint()
    try:
        proto.ParseFromString(Path(path).read_bytes() if data is None else data)
    except Exception as exc:  # protobuf's DecodeError has no stable import path across versions
        raise UserError(f"{path}: not a readable MindSpore checkpoint ({exc})") from None
    stored, declared = {}, {}
    for value in proto.value:
        if value.WhichOneof("value") != "tensor" or value.tensor.tensor_type not in ITEM_BYTES:
            continue
        stored[value.tag] = stored.get(value.tag, 0) + len(value.tensor.tensor_content)
        declared[value.tag] = int(np.prod(value.tensor.dims, dtype=np.int64)) * ITEM_BYTES[value.tensor.tensor_type]
    wrong = [f"{tag} ({stored[tag]} of {declared[tag]} bytes)" for tag in stored
             if stored[tag] != declared[tag] and not (declared[tag] and stored[tag] % declared[tag] == 0)]
    if wrong:
        raise UserError(f"{path}: truncated or corrupt tensor(s), their data do not fill their shape: "
                        + ", ".join(wrong[:5]))


TEXT_STATE = ("phase", "config_json")
INT_STATE = ("epoch", "batch_in_epoch", "step", "mix_epoch", "mix_batch_in_epoch")


def _state_value(path, key, value):
    """One run-state entry, checked: the text entries are text (``config_json`` a JSON object), the
    counters single non-negative integers, the scores single numbers."""
    if key in TEXT_STATE:
        if not isinstance(value, str):
            raise UserError(f"{path}: run-state entry '{key}' is not text")
        if key == "config_json":
            try:
                parsed = json.loads(value)
            except json.JSONDecodeError as exc:
                raise UserError(f"{path}: run-state entry 'config_json' is not valid JSON ({exc.msg})") from None
            if not isinstance(parsed, dict):
                raise UserError(f"{path}: run-state entry 'config_json' is not a JSON object")
        return value
    if isinstance(value, str):
        raise UserError(f"{path}: run-state entry '{key}' is text ({value[:40]!r}), expected a number")
    array = value.asnumpy()
    if array.size != 1:
        raise UserError(f"{path}: run-state entry '{key}' holds {array.size} values, expected one")
    number = array.item()
    if key in INT_STATE and (not float(number).is_integer() or number < 0):
        raise UserError(f"{path}: run-state entry '{key}' is {number}, expected a non-negative integer")
    return int(number) if key in INT_STATE else number


def config_of(state: dict) -> dict | None:
    text = state.get("config_json")
    return json.loads(text) if text else None


def step_checkpoints(folder, prefix=None) -> list[Path]:
    """``<prefix>_step<N>.ckpt`` files of ``folder`` (any prefix when ``prefix`` is None), oldest step first."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = [(int(m.group(2)), p) for p in folder.iterdir()
             if (m := STEP_RE.match(p.name)) and (prefix is None or m.group(1) == prefix) and p.is_file()]
    return [p for _, p in sorted(found)]


def checkpoint_prefix(path) -> str:
    """The ``<prefix>`` of a ``<prefix>_step<N>.ckpt`` name (a run's phase).

    >>> checkpoint_prefix("run/ckpt_finetune_step300.ckpt")
    'ckpt_finetune'
    """
    return STEP_RE.match(Path(path).name).group(1)


class CheckpointManager:
    """Save ``<prefix>_step<N>.ckpt`` keeping the newest ``keep_max``, and ``<prefix>_best.ckpt`` for the
    best validation criterion seen (see save_if_best). Weights holding a NaN or an Inf are never saved
    (a UserError, and the older checkpoints stay), and a criterion that is not a finite number never
    makes a checkpoint the best."""

    def __init__(self, folder, prefix, keep_max, enabled=True):
        self.folder, self.prefix, self.keep_max, self.enabled = Path(folder), prefix, keep_max, enabled
        self.best_loss = float("inf")

    def save(self, entries, state) -> Path | None:
        if not self.enabled:
            return None
        path = self.folder / f"{self.prefix}_step{state['step']}.ckpt"
        check_finite({e["name"]: e["data"] for e in entries if not isinstance(e["data"], str | int | float)},
                     path, "entries (not saved)")
        path = save_checkpoint(path, entries, state)
        # keep the newest files, not the highest steps: after resuming from an older checkpoint the
        # higher steps belong to an abandoned run
        by_age = sorted(step_checkpoints(self.folder, self.prefix), key=lambda p: p.stat().st_mtime)
        for old in [p for p in by_age if p != path][: max(0, len(by_age) - self.keep_max)]:
            old.unlink()
        logger.info("saved %s", path)
        return path

    def save_if_best(self, entries, state, criterion) -> Path | None:
        """Save ``<prefix>_best.ckpt`` when ``criterion`` (lower is better: the validation loss, or minus
        the validation score of best_by's metric) beats every earlier one."""
        if not self.enabled or not math.isfinite(criterion) or criterion >= self.best_loss:
            return None
        path = self.folder / best_checkpoint_name(self.prefix)
        check_finite({e["name"]: e["data"] for e in entries if not isinstance(e["data"], str | int | float)},
                     path, "entries (not saved)")
        self.best_loss = criterion
        scored = any(VALID_STATE_RE.match(k) for k in state)  # by a metric: its valid_<metric> is there
        state = state if scored else {**state, "valid_loss": float(criterion)}
        return save_checkpoint(path, entries, state)

    def latest(self) -> Path | None:
        found = step_checkpoints(self.folder, self.prefix)
        return found[-1] if found else None


# ---- weights ------------------------------------------------------------------------------------------

def read_weights(path) -> dict[str, np.ndarray]:
    """All array entries of a ``.ckpt`` or ``.npz`` file, by name (never unpickles anything)."""
    return read_model_file(path)[0]


def _read_npz(path: Path) -> tuple[dict[str, np.ndarray], dict]:
    """``(weights, state)`` of an ``.npz``: its number arrays, and ``{"config_json": ...}`` when it carries
    the config of the model its weights came from (:data:`NPZ_CONFIG`, written by weights_average.py)."""
    release = release_of(path)
    if release is not None:  # a released model: its bytes must be the manifest's
        verify_file(release, path.name)
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile) as exc:
        raise UserError(f"{path}: not a readable .npz file ({exc})") from None
    state = {}
    if NPZ_CONFIG in arrays:
        text = arrays.pop(NPZ_CONFIG)
        if text.dtype.kind != "U" or text.shape != ():
            raise UserError(f"{path}: entry '{NPZ_CONFIG}' is not one text")
        state["config_json"] = _state_value(path, "config_json", str(text))
    wrong = [f"{name} ({value.dtype})" for name, value in arrays.items() if value.dtype.kind not in "fiub"]
    if wrong:
        raise UserError(f"{path}: entries that are not numbers: {', '.join(wrong[:5])}")
    check_finite(arrays, path)
    return arrays, state


def read_model_file(path) -> tuple[dict[str, np.ndarray], dict]:
    """``(weights by name, run state)`` of a ``.ckpt`` (one read), or of an ``.npz`` (its state: the
    stored config where it carries one, else ``{}``)."""
    path = Path(path)
    if path.suffix == ".npz":
        if not path.is_file():
            raise UserError(f"weights file not found: {path}")
        return _read_npz(path)
    params, state = load_checkpoint(path)
    return {name: p.asnumpy() for name, p in params.items() if not isinstance(p, str)}, state


def load_model_weights(network, path, skip=()) -> list[str]:
    """Copy the weights of ``path`` into ``network``; returns the names of the ignored extra entries
    (see :func:`assign_weights`)."""
    return assign_weights(network, read_weights(path), path, skip)


def assign_weights(network, weights: dict, path, skip=()) -> list[str]:
    """Copy ``weights`` (read from ``path``) into ``network``; returns the names of the ignored entries.

    Parameters whose names match one of the regular expressions ``skip`` (``re.search``) are not
    loaded: they keep their current (fresh) values, e.g. to transfer only part of a pre-trained model.
    Missing parameters or shape mismatches raise a UserError listing them.
    """
    own = {p.name: p for p in network.get_parameters()}
    kept = sorted(n for n in own if any(re.search(pattern, n) for pattern in skip))
    if skip:
        if not kept:
            raise UserError(f"{path}: existed_ckpt_skip {list(skip)} matches no model parameter")
        own = {n: p for n, p in own.items() if n not in kept}
        logger.info("not loaded from %s (fresh initialisation kept): %d parameter(s), e.g. %s", path,
                    len(kept), ", ".join(kept[:4]))
    missing = sorted(set(own) - set(weights))
    if missing:
        raise UserError(f"{path}: {len(missing)} model parameter(s) missing: {', '.join(missing[:10])}"
                        + (" ..." if len(missing) > 10 else ""))
    wrong = [f"{n} {weights[n].shape} != {tuple(p.shape)}" for n, p in own.items()
             if tuple(weights[n].shape) != tuple(p.shape)]
    if wrong:
        raise UserError(f"{path}: shape mismatch (file != model): {'; '.join(wrong[:10])}")
    for name, param in own.items():
        param.set_data(Tensor(weights[name]).astype(param.dtype))
    extra = sorted(set(weights) - set(own) - set(kept))
    logger.info("loaded %d parameters from %s (%d other entries ignored)", len(own), path, len(extra))
    return extra


def parameter_entries(*cells_or_params, extra=None) -> list[dict]:
    """``[{"name", "data"}]`` for saving: parameters of each cell (deduplicated by name) plus ``extra``."""
    entries, seen = [], set()
    for item in cells_or_params:
        params = item.get_parameters() if hasattr(item, "get_parameters") else item
        for p in params:
            if isinstance(p, Parameter) and p.name not in seen:
                seen.add(p.name)
                entries.append({"name": p.name, "data": p})
    for name, value in (extra or {}).items():
        entries.append({"name": name, "data": value})
    return entries


def npz_path(path) -> Path:
    """The name :func:`save_npz` writes: ``path`` with ``.npz`` appended if missing.

    >>> str(npz_path("runs/avg")), str(npz_path("runs/avg.npz"))
    ('runs/avg.npz', 'runs/avg.npz')
    """
    path = Path(path)
    return path if path.suffix == ".npz" else path.with_name(path.name + ".npz")


def save_npz(path, arrays: dict[str, np.ndarray], config_json: str | None = None) -> Path:
    """Write ``arrays`` to ``path`` (``.npz`` appended if missing) atomically; returns the final path.
    ``config_json``: the config of the model the weights belong to, stored as the text entry
    :data:`NPZ_CONFIG` (read back by :func:`read_model_file`, so evaluation can check a --config)."""
    path = npz_path(path)
    check_finite(arrays, path, "arrays (not written)")
    if config_json is not None:
        arrays = {**arrays, NPZ_CONFIG: np.array(config_json)}
    # the layout of np.savez (np.load reads it), written so that a failed write closes the archive at once
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, mode="w", compression=zipfile.ZIP_STORED) as archive:
        for name, value in arrays.items():
            with archive.open(f"{name}.npy", "w", force_zip64=True) as handle:
                np.lib.format.write_array(handle, np.asanyarray(value), allow_pickle=False)
    return path
