"""Checkpoint averaging: the element-wise mean of the model parameters of several checkpoints.

Averaging the last few checkpoints of a run usually scores a little better than the last one alone.
Only model parameters are averaged: optimizer slots (Adam moments, Lamb/Momentum moments, gradient
accumulators), step counters, the learning rate, the loss scale and the run state are left out, since
their mean is meaningless and inference does not read them.

Unlike ModelZoo's ``weights_average.py``, the mean is divided by the number of checkpoints actually
read (ModelZoo divided by the number of files in the folder, ``.meta`` files included), and every
parameter keeps its dtype.

>>> arrays = average_checkpoints(["run/ckpt_pretrain_step900.ckpt", "run/ckpt_pretrain_step1000.ckpt"])
...                                                                       # doctest: +SKIP
>>> save_npz("run/average.npz", arrays)                                   # doctest: +SKIP
"""

import hashlib
import logging
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from src.utils.checkpoint import checkpoint_prefix, is_model_param, read_weights, step_checkpoints
from src.utils.errors import UserError

logger = logging.getLogger(__name__)

MAX_LISTED = 10


def checkpoint_paths(inputs: Iterable) -> list[Path]:
    """The checkpoint files named by ``inputs``: each is a file (taken as is) or a folder, whose step
    checkpoints ``<prefix>_step<N>.ckpt`` are taken, oldest step first (``<prefix>_best.ckpt`` is a copy
    of one of them; hidden and temporary files, ``.meta`` and ``.json`` files are never taken).

    A UserError if an input does not exist, a file is named twice, a folder holds the steps of several
    phases, or nothing is found.
    """
    paths = []
    for item in inputs:
        path = Path(item)
        if path.is_file():
            paths.append(path)
        elif path.is_dir():
            found = step_checkpoints(path)
            prefixes = sorted({checkpoint_prefix(p) for p in found})
            if len(prefixes) > 1:
                raise UserError(f"{path} holds step checkpoints of several runs or phases "
                                f"({', '.join(prefixes)}): name the files with --input_files")
            paths.extend(found)
        else:
            raise UserError(f"checkpoint input not found: {path}")
    seen, twice = set(), []
    for path in paths:
        key = path.resolve()
        if key in seen:
            twice.append(str(path))
        seen.add(key)
    if twice:
        raise UserError(f"checkpoint(s) given more than once (they would weigh double): {', '.join(twice)}")
    if not paths:
        raise UserError(f"no <prefix>_step<N>.ckpt file in {', '.join(str(i) for i in inputs)}")
    return paths


def last_step_checkpoints(folder, count: int) -> list[Path]:
    """The ``count`` highest-step ``<prefix>_step<N>.ckpt`` files of ``folder``, oldest step first.

    Steps of different prefixes (pre-training and fine-tuning phases) are not comparable, so a folder
    holding several prefixes is a UserError.
    """
    if count < 1:
        raise UserError(f"--last must be at least 1, got {count}")
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"checkpoint folder not found: {folder}")
    found = step_checkpoints(folder)
    prefixes = sorted({checkpoint_prefix(p) for p in found})
    if not found:
        raise UserError(f"no <prefix>_step<N>.ckpt file in {folder}")
    if len(prefixes) > 1:
        raise UserError(f"{folder} holds step checkpoints of several runs or phases ({', '.join(prefixes)}): "
                        "name the files with --input_files")
    chosen = found[-count:]
    if len(chosen) < count:
        logger.warning("only %d step checkpoint(s) in %s, fewer than --last %d", len(chosen), folder, count)
    return chosen


def average_checkpoints(paths, include: Callable[[str], bool] = is_model_param) -> dict[str, np.ndarray]:
    """The element-wise mean over ``paths`` (``.ckpt`` or ``.npz``) of the entries whose name passes
    ``include``, by name.

    Sums are accumulated in float64 and cast back to each entry's dtype (integers are rounded to the
    nearest value). Every checkpoint must hold the same included names with the same shapes; otherwise
    a UserError lists the differences. Checkpoints are read one at a time, so memory holds one
    checkpoint plus the float64 sums.
    """
    paths = [Path(p) for p in paths]
    if not paths:
        raise UserError("no checkpoint to average")
    sums, dtypes, first, digests = {}, {}, paths[0], {}
    for index, path in enumerate(paths):
        weights = {name: value for name, value in read_weights(path).items() if include(name)}
        digest = weights_digest(weights)
        if digest in digests:
            raise UserError(f"{path} holds the same weights as {digests[digest]} (e.g. a _best.ckpt and the step "
                            "checkpoint it copies): averaging both would weigh them double")
        digests[digest] = path
        if index == 0:
            if not weights:
                raise UserError(f"{path}: no model parameter in this file")
            dtypes = {name: value.dtype for name, value in weights.items()}
            sums = {name: value.astype(np.float64) for name, value in weights.items()}
            continue
        _check_same_entries(first, sums, path, weights)
        for name, value in weights.items():
            sums[name] += value  # float64 += any dtype: no precision lost before the division
    averaged = {name: _cast(total / len(paths), dtypes[name]) for name, total in sums.items()}
    logger.info("averaged %d parameters over %d checkpoints", len(averaged), len(paths))
    return averaged


def weights_digest(weights: dict[str, np.ndarray]) -> str:
    """A content hash of named arrays (names, dtypes, shapes and bytes), to find the same weights twice."""
    digest = hashlib.sha256()
    for name in sorted(weights):
        value = np.ascontiguousarray(weights[name])
        digest.update(f"{name}|{value.dtype}|{value.shape}|".encode())
        digest.update(value.tobytes())
    return digest.hexdigest()


def _check_same_entries(first: Path, reference: dict, path: Path, weights: dict):
    only_first = sorted(set(reference) - set(weights))
    only_here = sorted(set(weights) - set(reference))
    if only_first or only_here:
        raise UserError(f"{path} and {first} hold different parameters: "
                        f"only in {first}: {_listing(only_first)}; only in {path}: {_listing(only_here)}")
    wrong = [f"{name} {weights[name].shape} != {reference[name].shape}" for name in sorted(reference)
             if weights[name].shape != reference[name].shape]
    if wrong:
        raise UserError(f"{path}: shapes differ from {first}: {_listing(wrong)}")


def _listing(names: list) -> str:
    if not names:
        return "none"
    more = f" and {len(names) - MAX_LISTED} more" if len(names) > MAX_LISTED else ""
    return ", ".join(names[:MAX_LISTED]) + more


def _cast(mean: np.ndarray, dtype: np.dtype) -> np.ndarray:
    if np.issubdtype(dtype, np.floating):
        return mean.astype(dtype)
    return np.rint(mean).astype(dtype)  # integers and booleans: the nearest representable value
