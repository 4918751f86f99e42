"""Average the model parameters of several checkpoints into one .npz file.

The checkpoints come from --input_files (comma-separated files) and/or --input_folder (its step
checkpoints <prefix>_step<N>.ckpt; <prefix>_best.ckpt, hidden and temporary files, .meta and .json
files are ignored). The same weights are never averaged twice (compared by content), and the files
averaged are listed on stdout. Only model parameters are averaged: optimizer
moments, step counters, the learning rate, the loss scale and the run state are left out. The .npz
is read by eval.py and export.py like a checkpoint (src/utils/checkpoint.py).

--best N takes the N step checkpoints with the best validation score of the run they belong to (the
run's metrics.jsonl, one folder above checkpoints/): the run's checkpoint_options.best_by metric where it
decoded during validation (valid_<metric>: rouge is the mean of ROUGE-1/2/L F1, bleu, chrf, ...; read from
the run's config.json), else the lowest validation loss.

Examples:
    python weights_average.py --input_folder runs/x/checkpoints --last 5 --output_file runs/x/last5.npz
    python weights_average.py --input_folder runs/x/checkpoints --best 3 --output_file runs/x/best3.npz
    python weights_average.py --input_files a_step900.ckpt,a_step1000.ckpt --output_file avg
"""

import argparse
import logging
import sys
from pathlib import Path

from src.utils.average import average_checkpoints, checkpoint_paths, last_step_checkpoints
from src.utils.checkpoint import npz_path, save_npz
from src.utils.cli import run_cli
from src.utils.errors import UserError
from src.utils.fileio import check_output_file

logger = logging.getLogger("weights_average")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--input_files", default="", help="comma-separated checkpoint files (.ckpt or .npz)")
    p.add_argument("--input_folder", default="", help="folder whose <prefix>_step<N>.ckpt files are averaged")
    p.add_argument("--last", type=int, default=None, metavar="N",
                   help="with --input_folder: only the N highest-step <prefix>_step<N>.ckpt files")
    p.add_argument("--best", type=int, default=None, metavar="N",
                   help="with --input_folder: the N step checkpoints with the best validation score (the run's "
                        "best_by metric if the run decoded, else loss) in the run's metrics.jsonl")
    p.add_argument("--output_file", required=True, help="output .npz (the suffix is added if missing)")
    return p.parse_args(argv)


def best_step_checkpoints(folder, count: int, metrics=None) -> list:
    """The ``count`` step checkpoints of ``folder`` with the best validation score in ``metrics`` (default:
    ``<folder>/../metrics.jsonl``): the best by the run's best_by metric where the run decoded (its scorer's
    direction), else the lowest loss; oldest step first. A UserError when a checkpoint has no validation
    record or the folder holds several phases."""
    from pathlib import Path

    from src.evaluation.scorers import LOSS, as_loss
    from src.training.metrics_log import read_metrics
    from src.utils.checkpoint import checkpoint_prefix, step_checkpoints

    if count < 1:
        raise UserError(f"--best must be at least 1, got {count}")
    folder = Path(folder)
    found = step_checkpoints(folder)
    if not found:
        raise UserError(f"no <prefix>_step<N>.ckpt file in {folder}")
    prefixes = sorted({checkpoint_prefix(p) for p in found})
    if len(prefixes) > 1:
        raise UserError(f"{folder} holds step checkpoints of several runs or phases ({', '.join(prefixes)}): "
                        "name the files with --input_files")
    metrics = Path(metrics) if metrics else folder.parent / "metrics.jsonl"
    if not metrics.is_file():
        raise UserError(f"{metrics}: not found (--best reads the run's validation records)")
    phase = prefixes[0].rsplit("_", 1)[-1]
    valid = {r["step"]: r for r in read_metrics(metrics) if r.get("valid_loss") is not None
             and r.get("phase", phase) == phase}
    metric = _decoded_metric(folder.parent / "config.json", valid.values())
    key = f"valid_{metric}" if metric else None
    scored = []
    for path in found:
        step = int(path.stem.rsplit("_step", 1)[1])
        record = valid.get(step)
        if record is None or (key and key not in record):
            raise UserError(f"{path}: no validation record for step {step} in {metrics}")
        scored.append((-as_loss(metric or LOSS, record[key] if key else record["valid_loss"]), -step, path))
    chosen = sorted(scored, reverse=True)[:count]
    if len(chosen) < count:
        logger.warning("only %d step checkpoint(s) in %s, fewer than --best %d", len(chosen), folder, count)
    logger.info("best %d by validation %s: %s", len(chosen), metric or "loss",
                ", ".join(f"{p.name} ({as_loss(metric or LOSS, -score):.4f})" for score, _, p in chosen))
    return sorted((p for _, _, p in chosen), key=lambda p: int(p.stem.rsplit("_step", 1)[1]))


def _decoded_metric(config_path, records) -> str | None:
    """The metric the run decoded and scored at its validations (its best_by, else rouge for runs whose
    config is gone), or None when it only measured the loss."""
    import json

    records = list(records)
    candidates = ["rouge"]
    try:
        best_by = json.loads(config_path.read_text(encoding="utf-8"))["checkpoint_options"]["best_by"]
        candidates.insert(0, str(best_by))
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return next((m for m in candidates if m != "loss" and any(f"valid_{m}" in r for r in records)), None)


def shared_config(paths) -> str | None:
    """The config the averaged checkpoints were trained with (the first one's), stored in the .npz so that
    eval.py can use it and check a --config against it; None when an input carries none. Inputs whose model
    sections differ (e.g. another head count, which no weight shape shows) are refused."""
    import json

    from config.config import WEIGHT_KEYS
    from src.utils.checkpoint import read_model_file

    texts = [read_model_file(p)[1].get("config_json") for p in paths]
    if any(t is None for t in texts):
        return None
    models = [{k: json.loads(t).get("model_config", {}).get(k) for k in WEIGHT_KEYS} for t in texts]
    for path, model in zip(paths[1:], models[1:], strict=True):
        differing = [f"{k}: {model[k]} vs {models[0][k]}" for k in WEIGHT_KEYS if model[k] != models[0][k]]
        if differing:
            raise UserError(f"{path}: another model than {paths[0]} ({'; '.join(differing)}): not averaged")
    return texts[0]


def select_inputs(args) -> list:
    files = [f.strip() for f in args.input_files.split(",") if f.strip()]
    if args.last is not None and args.best is not None:
        raise UserError("give --last or --best, not both")
    if args.best is not None:
        if not args.input_folder or files:
            raise UserError("--best selects from --input_folder only: give --input_folder and no --input_files")
        return best_step_checkpoints(args.input_folder, args.best)
    if args.last is not None:
        if not args.input_folder or files:
            raise UserError("--last selects from --input_folder only: give --input_folder and no --input_files")
        return last_step_checkpoints(args.input_folder, args.last)
    inputs = files + ([args.input_folder] if args.input_folder else [])
    if not inputs:
        raise UserError("nothing to average: give --input_files and/or --input_folder")
    return checkpoint_paths(inputs)


def main(argv=None):
    args = parse_args(argv)
    paths = select_inputs(args)
    output = npz_path(args.output_file)
    for path in paths:
        if output.resolve() == Path(path).resolve() or (output.exists() and output.samefile(path)):
            raise UserError(f"{output}: --output_file is one of the checkpoints averaged: choose another name")
    check_output_file(output, "--output_file")
    for path in paths:
        logger.info("input: %s", path)
    output = save_npz(args.output_file, average_checkpoints(paths), config_json=shared_config(paths))
    print(f"wrote the average of {len(paths)} checkpoint(s) to {output}:")
    for path in paths:
        print(f"  {path}")


if __name__ == "__main__":
    sys.exit(run_cli(main))
