"""Checkpoints: atomic save, load with run state, keep the last N and the best, find the latest.

A checkpoint is a MindSpore ``.ckpt`` (protobuf: loading it never executes code) holding the model
parameters, the optimizer state (moments, step counter, learning rate), the loss-scaler state, and the
run state as plain values: phase, epoch, batch position inside the epoch, optimizer step, and the
resolved config as JSON text.
"""

import json
import logging
import re
from pathlib import Path

import mindspore as ms

from src.utils.errors import UserError
from src.utils.fileio import fsync_replace, temporary_path_for

logger = logging.getLogger(__name__)

STATE_KEYS = ("phase", "epoch", "batch_in_epoch", "step", "config_json", "valid_loss", "best_valid_loss",
              "valid_rouge", "best_valid_rouge")
STEP_RE = re.compile(r"_step(\d+)\.ckpt$")


def _temporary_ckpt(path: Path) -> Path:
    # MindSpore appends ".ckpt" to names that lack it, so the temporary name keeps the suffix
    return temporary_path_for(path).with_suffix(".ckpt")


def save_checkpoint(path, entries: list, state: dict) -> Path:
    """Write ``entries`` (``[{"name", "data"}]``) and ``state`` (plain values) atomically to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary_ckpt(path)
    try:
        ms.save_checkpoint(entries, str(tmp), append_dict={k: v for k, v in state.items() if v is not None})
        fsync_replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def load_checkpoint(path) -> tuple[dict, dict]:
    """``(parameters by name, run state)`` of a checkpoint; a UserError if it cannot be read."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint not found: {path}")
    try:
        raw = ms.load_checkpoint(str(path))
    except (RuntimeError, ValueError) as exc:
        raise UserError(f"{path}: not a readable MindSpore checkpoint ({exc})") from None
    state = {}
    for key in STATE_KEYS:
        if key in raw:
            value = raw.pop(key)
            state[key] = value if isinstance(value, str) else value.asnumpy().item()
    return raw, state


def config_of(state: dict) -> dict | None:
    text = state.get("config_json")
    return json.loads(text) if text else None


def step_checkpoints(folder, prefix) -> list[Path]:
    """``<prefix>_step<N>.ckpt`` files of ``folder``, oldest step first."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.glob(f"{prefix}_step*.ckpt")
             if (m := STEP_RE.search(p.name))]
    return [p for _, p in sorted(found)]


class CheckpointManager:
    """Save ``<prefix>_step<N>.ckpt`` keeping the newest ``keep_max``, and ``<prefix>_best.ckpt`` for the
    best validation criterion seen (see save_if_best)."""

    def __init__(self, folder, prefix, keep_max, enabled=True):
        self.folder, self.prefix, self.keep_max, self.enabled = Path(folder), prefix, keep_max, enabled
        self.best_loss = float("inf")

    def save(self, entries, state) -> Path | None:
        if not self.enabled:
            return None
        path = save_checkpoint(self.folder / f"{self.prefix}_step{state['step']}.ckpt", entries, state)
        # keep the newest files, not the highest steps: after resuming from an older checkpoint the
        # higher steps belong to an abandoned run
        by_age = sorted(step_checkpoints(self.folder, self.prefix), key=lambda p: p.stat().st_mtime)
        for old in [p for p in by_age if p != path][: max(0, len(by_age) - self.keep_max)]:
            old.unlink()
        logger.info("saved %s", path)
        return path

    def save_if_best(self, entries, state, criterion) -> Path | None:
        """Save ``<prefix>_best.ckpt`` when ``criterion`` (lower is better: the validation loss, or minus
        the validation ROUGE) beats every earlier one."""
        if not self.enabled or criterion >= self.best_loss:
            return None
        self.best_loss = criterion
        state = state if "valid_rouge" in state else {**state, "valid_loss": float(criterion)}
        return save_checkpoint(self.folder / f"{self.prefix}_best.ckpt", entries, state)

    def latest(self) -> Path | None:
        found = step_checkpoints(self.folder, self.prefix)
        return found[-1] if found else None
