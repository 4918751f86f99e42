"""A training run (train.py): config, model, start or resume, the phases in order, clean stop on a signal.

The run folder receives config.json (the resolved config), metrics.jsonl, train.log and checkpoints/.
Each phase (pre-training on monolingual data with dynamic MASS masking, then fine-tuning on pairs) has
its own optimizer and schedule (src/training/trainer.py). ``--resume auto`` continues from the newest
step checkpoint of the run, exactly where it stopped; SIGTERM or SIGINT stops after the current step
with a checkpoint to resume from.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from config.config import MassConfig, with_vocab_size
from src.training.metrics_log import FINETUNE, PHASES, PRETRAIN, MetricsWriter
from src.utils.cli import LOG_FORMAT
from src.utils.errors import UserError

if TYPE_CHECKING:
    from mindspore import nn

logger = logging.getLogger("train")


def load_config(config_path, overrides=()) -> MassConfig:
    """The run's config: the JSON file with the overrides, its vocab_size from the training datasets."""
    cfg = MassConfig.from_json(config_path).override(list(overrides))
    datasets = [d for d in (cfg.dataset_config.pre_train_dataset, cfg.dataset_config.fine_tune_dataset) if d]
    if not datasets:
        raise UserError("nothing to train: set dataset_config.pre_train_dataset and/or fine_tune_dataset")
    from src.evaluation.scorers import selection

    selection(cfg.checkpoint_options.best_by)  # a metric nobody registered: refused before anything is written
    from src.dataset.identity import check_model_vocabulary, check_same_build, vocabulary_of
    from src.dataset.load_dataset import resolve_datasets
    from src.dataset.writer import dataset_files

    train = [p for d in (*datasets, cfg.dataset_config.mix_dataset) if d for p in resolve_datasets(d)]
    valid = resolve_datasets(cfg.dataset_config.valid_dataset) if cfg.dataset_config.valid_dataset else []
    for path in train + valid:
        dataset_files(path)  # complete and readable, now rather than after the first epoch
    size, digest = vocabulary_of(train + valid, "the training and validation datasets")
    check_same_build(train, valid)
    check_model_vocabulary(cfg.model_config.vocab_sha256, digest, "the config (model_config.vocab_sha256)",
                           "the training data")
    cfg = with_vocab_size(cfg, size, "the vocabulary the datasets were built with")
    if digest:
        cfg = cfg.replace("model_config", vocab_sha256=digest)
    return with_text_options(cfg, train)


def with_text_options(cfg, datasets):
    """``cfg`` with the tokenizer and normalisation of the training text (from the manifests), so that
    every checkpoint says how raw input must be prepared. Datasets normalised differently are an error."""
    import json

    from src.dataset.writer import read_manifest

    entries = {str(p): read_manifest(p).get("text") for p in datasets}
    known = {p: e for p, e in entries.items() if e}
    if len({json.dumps(e, sort_keys=True) for e in known.values()}) > 1:
        raise UserError("the training datasets were normalised differently: "
                        + "; ".join(f"{p}: {e}" for p, e in known.items()))
    if not known:
        return cfg
    entry = next(iter(known.values()))
    return cfg.replace("dataset_config", tokenizer=entry["tokenizer"], lowercase=entry["lowercase"],
                       hash_digits=entry["hash_digits"])


def check_start_vocabulary(path, state: dict | None, cfg):
    """The checkpoint a run starts from (existed_ckpt or resume) knows the vocabulary of its own training
    data: it must be the one of this run's data."""
    from src.dataset.identity import check_model_vocabulary
    from src.utils.checkpoint import config_of

    start_cfg = config_of(state or {}) or {}
    digest = (start_cfg.get("model_config") or {}).get("vocab_sha256")
    check_model_vocabulary(digest, cfg.model_config.vocab_sha256, path, "the training data of this run")


@dataclasses.dataclass
class Run:
    """What every phase shares: config, model, paths, rank, logging, the stop flag."""

    cfg: MassConfig
    net: nn.Cell  # the MassTransformer being trained
    run_dir: Path
    ckpt_dir: Path
    rank: int
    group_size: int
    metrics: MetricsWriter
    max_steps: int
    stop_requested: bool = False  # set by the SIGTERM/SIGINT handler and agreed across ranks
    nll_fn: Callable | None = None  # compiled validation function, built on first use
    config_written: bool = False
    metrics_trimmed: bool = False
    resume_point: tuple | None = None  # (phase, step) of the checkpoint resumed from

    def publish_config(self):
        """config.json (the resolved config), written with this process's first checkpoint: it is always the
        config of the run's newest checkpoint, and a run that fails before it has saved anything (a bad
        start checkpoint, a config of another model, bad data, a diverged loss) leaves it as it was."""
        if self.rank == 0 and not self.config_written:
            self.cfg.to_json(self.run_dir / "config.json")
            self.config_written = True

    def trim_metrics(self):
        """Before this process's first metrics record: drop the records past the resume point (they belong
        to the steps that are trained again)."""
        if self.rank != 0 or self.metrics_trimmed:
            return
        self.metrics_trimmed = True
        if self.resume_point is not None:
            from src.training.metrics_log import drop_after

            dropped = drop_after(self.run_dir / "metrics.jsonl", *self.resume_point)
            if dropped:
                logger.info("metrics.jsonl: %d record(s) past the resume point removed", dropped)


def run_training(config_path, overrides=(), output="output", device_target="CPU", device_id=None, resume="",
                 max_steps=0, pynative=False) -> int:
    """train.py: build the model, start from ``existed_ckpt`` or resume, run the configured phases
    (pre-training, then fine-tuning) with a clean stop on SIGTERM/SIGINT."""
    cfg = load_config(config_path, overrides)
    run_dir = Path(output)

    import mindspore as ms

    from src.training.trainer import train_phase
    from src.transformer.transformer import MassTransformer, count_parameters
    from src.utils.checkpoint import assign_weights, read_model_file
    from src.utils.device import setup_device
    from src.utils.fileio import check_output_folder
    from src.utils.output_lock import hold

    check_output_folder(run_dir, "--output (run folder)")  # before any work (every rank: the same folder)
    rank, group_size = setup_device(device_target, device_id, mode="pynative" if pynative else "graph")
    with contextlib.ExitStack() as held:
        if rank == 0:
            held.enter_context(hold(run_dir))  # one training per run folder
        ms.set_seed(cfg.model_config.random_seed)
        if rank == 0:
            _log_to_file(run_dir / "train.log")
        ckpt_dir = Path(cfg.checkpoint_options.ckpt_path)
        ckpt_dir = ckpt_dir if ckpt_dir.is_absolute() else run_dir / ckpt_dir
        if rank == 0 and not ckpt_dir.resolve().is_relative_to(run_dir.resolve()):
            held.enter_context(hold(ckpt_dir))  # a checkpoint folder outside the run's: one training there too
        check_run_folder(run_dir, cfg, resume)
        resumed = _resume_state(resume, ckpt_dir, cfg)
        if resumed is not None:
            check_start_vocabulary(resumed[2], resumed[1], cfg)
            check_start_model(resumed[2], resumed[1], cfg, "resume")
        net = MassTransformer(cfg.model_config)
        logger.info("model: %.2fM parameters, compute %s, %d device(s)", count_parameters(net) / 1e6,
                    net.compute_dtype, group_size)
        if cfg.checkpoint_options.existed_ckpt and resumed is None:
            start = cfg.checkpoint_options.existed_ckpt
            weights, state = read_model_file(start)
            check_start_vocabulary(start, state, cfg)
            check_start_model(start, state, cfg, "existed_ckpt")
            assign_weights(net, weights, start, cfg.checkpoint_options.existed_ckpt_skip)
        run = Run(cfg, net, run_dir, ckpt_dir, rank, group_size,
                  MetricsWriter(run_dir / "metrics.jsonl", enabled=rank == 0), max_steps,
                  resume_point=(resumed[1]["phase"], int(resumed[1]["step"])) if resumed else None)
        _install_stop_handler(run)
        for phase, dataset in zip(PHASES, (cfg.dataset_config.pre_train_dataset,
                                           cfg.dataset_config.fine_tune_dataset), strict=True):
            if not dataset:
                continue
            if resumed and resumed[1].get("phase") == FINETUNE and phase == PRETRAIN:
                continue  # the run was already fine-tuning: pre-training is done
            train_phase(run, phase, dataset, resumed if resumed and resumed[1].get("phase") == phase else None)
            if run.stop_requested:
                logger.info("stopped on request; continue with --resume auto")
                break
    return 0


def check_start_model(path, state: dict, cfg, how: str):
    """The checkpoint a run starts from must be of this run's model (config.config.WEIGHT_KEYS; with
    existed_ckpt_skip only MEANING_KEYS, the others may change in the fresh part): a UserError naming
    both values, before anything is written. Checkpoints without a stored config are checked by shape."""
    from config.config import MEANING_KEYS, WEIGHT_KEYS, model_differences
    from src.utils.checkpoint import config_of

    stored = (config_of(state or {}) or {}).get("model_config")
    if not stored:
        return
    keys = MEANING_KEYS if how == "existed_ckpt" and cfg.checkpoint_options.existed_ckpt_skip else WEIGHT_KEYS
    differences = model_differences(stored, cfg.model_config, keys)
    if differences:
        raise UserError(f"{path}: {how}: this run's model is not the checkpoint's: {'; '.join(differences)} (only "
                        "model_config's dropout, label_smoothing, compute_type, random_seed, initializer_range and "
                        "hide_masked_source_from_decoder may change)")


def check_run_folder(run_dir: Path, cfg, resume):
    """A run folder that holds a run of another model (its config.json) is not reused, whether resumed or
    not: its checkpoints and metrics would mix with this run's."""
    from config.config import WEIGHT_KEYS, MassConfig, model_differences

    path = run_dir / "config.json"
    if not path.is_file():
        return
    previous = MassConfig.from_json(path).to_dict()["model_config"]
    differences = model_differences(previous, cfg.model_config, WEIGHT_KEYS)
    if differences:
        differences = [d.replace("in the checkpoint", "in that run") for d in differences]
        raise UserError(f"{path}: the run folder holds a run of another model: {'; '.join(differences)}; give "
                        "another --output" + (" (or resume with that run's config)" if resume else ""))


def _resume_state(spec, ckpt_dir, cfg):
    """``(params, state, path)`` of the checkpoint to resume from, or None."""
    if not spec:
        return None
    from src.utils.checkpoint import load_checkpoint, step_checkpoints

    if spec == "auto":
        prefix = cfg.checkpoint_options.ckpt_prefix
        # the last phase's highest step (never the newest file: a copy or a touch changes that)
        found = [p for phase in PHASES for p in step_checkpoints(ckpt_dir, f"{prefix}_{phase}")]
        if not found:
            logger.info("--resume auto: no checkpoint in %s, starting fresh", ckpt_dir)
            return None
        spec = found[-1]
    params, state = load_checkpoint(spec)
    if "step" not in state or "phase" not in state:
        raise UserError(f"{spec}: has no run state (phase, step); use it as existed_ckpt instead")
    logger.info("resuming from %s (%s, step %d)", spec, state["phase"], state["step"])
    return params, state, spec


def _install_stop_handler(run):
    def handler(signum, _frame):
        logger.warning("signal %d: stopping after the current step", signum)
        run.stop_requested = True

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


class _RunLog(logging.FileHandler):
    """train.log; a failed write (a full disk) ends the run with ``error: <train.log>: ...`` instead of the
    traceback that logging prints and then ignores."""

    def handleError(self, record):
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError):
            logging.getLogger().removeHandler(self)
            raise OSError(exc.errno, exc.strerror or str(exc), self.baseFilename) from None
        super().handleError(record)


def _log_to_file(path):
    handler = _RunLog(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    logging.getLogger().addHandler(handler)


