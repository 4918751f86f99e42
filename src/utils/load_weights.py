"""Load model weights from a ``.ckpt`` (training checkpoint) or an ``.npz`` (weights_average.py) into
the model, strictly: every model parameter must be present with the right shape. Entries that are not
model parameters (optimizer moments, step counters, loss scale, run state) are ignored.
"""

import logging
import re
from pathlib import Path

import numpy as np
from mindspore import Parameter, Tensor

from src.utils.errors import UserError

logger = logging.getLogger(__name__)


def read_weights(path) -> dict[str, np.ndarray]:
    """All array entries of a ``.ckpt`` or ``.npz`` file, by name (never unpickles anything)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"weights file not found: {path}")
    if path.suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as data:
                return {name: data[name] for name in data.files}
        except (ValueError, OSError) as exc:
            raise UserError(f"{path}: not a readable .npz file ({exc})") from None
    from src.utils.checkpoint import load_checkpoint

    params, _ = load_checkpoint(path)
    return {name: p.asnumpy() for name, p in params.items() if not isinstance(p, str)}


def load_model_weights(network, path, skip=()) -> list[str]:
    """Copy the weights of ``path`` into ``network``; returns the names of the ignored extra entries.

    Parameters whose names match one of the regular expressions ``skip`` (``re.search``) are not
    loaded: they keep their current (fresh) values, e.g. to transfer only part of a pre-trained model.
    Missing parameters or shape mismatches raise a UserError listing them.
    """
    weights = read_weights(path)
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
