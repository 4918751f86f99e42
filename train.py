r"""MASS pre-training and fine-tuning.

Runs a pre-training phase on ``dataset_config.pre_train_dataset`` (dynamic MASS masking) and/or a
fine-tuning phase on ``dataset_config.fine_tune_dataset`` (pairs), each with its own optimizer and
learning-rate schedule. The run folder (--output) receives config.json (the resolved config),
metrics.jsonl (one JSON object per logged step and per validation), train.log and the checkpoints.

Examples:
    python train.py --config config/tiny.json --output runs/demo \
        --dataset_config.pre_train_dataset=data/news_crawl_len_64.mindrecord
    python train.py --config config/config.json --output runs/x --resume auto     # continue a run
    msrun --worker_num=2 --local_worker_num=2 train.py --config ...               # data parallel

Config keys can be overridden as --section.key=value (value parsed as JSON), e.g.
--learn_rate_config.lr=5e-4. SIGTERM or SIGINT (scripts/stop_training.sh) stops cleanly after the
current step and writes a checkpoint to resume from.
"""

import argparse
import dataclasses
import logging
import re
import signal
import sys
from pathlib import Path

from config.config import MassConfig, with_vocab_size
from src.utils.cli import LOG_FORMAT, run_cli
from src.utils.device import DEVICE_TARGETS
from src.utils.errors import UserError

logger = logging.getLogger("train")
OVERRIDE = re.compile(r"^--\w+\.\w+=")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="config/config.json", help="JSON config (see config/)")
    p.add_argument("--output", default="output", help="run folder")
    p.add_argument("--device_target", "--platform", default="CPU", choices=DEVICE_TARGETS)
    p.add_argument("--device_id", type=int, default=None, help="default: $DEVICE_ID or 0")
    p.add_argument("--resume", default="", help="checkpoint to resume, or 'auto' for the newest of this run")
    p.add_argument("--max_steps", type=int, default=0,
                   help="stop each phase after this many optimizer steps (0: no limit)")
    p.add_argument("--pynative", action="store_true", help="PyNative instead of graph mode (debugging)")
    args, rest = p.parse_known_args(argv)
    unknown = [a for a in rest if not OVERRIDE.match(a)]
    if unknown:
        p.error(f"unrecognized arguments: {' '.join(unknown)} (config overrides look like "
                "--section.key=value)")
    args.overrides = rest
    return args


def load_config(args) -> MassConfig:
    cfg = MassConfig.from_json(args.config).override(args.overrides)
    datasets = [d for d in (cfg.dataset_config.pre_train_dataset, cfg.dataset_config.fine_tune_dataset) if d]
    if not datasets:
        raise UserError("nothing to train: set dataset_config.pre_train_dataset and/or fine_tune_dataset")
    from src.dataset.load_dataset import resolve_datasets
    from src.dataset.writer import read_manifest

    sizes = {read_manifest(p)["vocab_size"] for d in datasets for p in resolve_datasets(d)}
    if len(sizes) != 1:
        raise UserError(f"the training datasets were built with different vocabularies (sizes {sorted(sizes)})")
    return with_vocab_size(cfg, sizes.pop(), "the vocabulary the datasets were built with")


@dataclasses.dataclass
class Run:
    """What every phase shares: config, model, paths, rank, logging, the stop flag."""

    cfg: MassConfig
    net: object
    run_dir: Path
    ckpt_dir: Path
    rank: int
    group_size: int
    metrics: object
    max_steps: int
    stop_requested: bool = False
    nll_fn: object = None  # compiled validation function, built on first use
    rouge_validator: object = None  # the phase's RougeValidator when best_by is rouge (pair data)
    best_by: str = "loss"  # what chose the phase's best checkpoint


def main(argv=None):
    args = parse_args(argv)
    cfg = load_config(args)
    run_dir = Path(args.output)

    import mindspore as ms

    from src.transformer.transformer import MassTransformer, count_parameters
    from src.utils.device import setup_device
    from src.utils.load_weights import load_model_weights
    from src.utils.loss_monitor import MetricsWriter

    rank, group_size = setup_device(args.device_target, args.device_id,
                                    mode="pynative" if args.pynative else "graph")
    ms.set_seed(cfg.model_config.random_seed)
    if rank == 0:
        run_dir.mkdir(parents=True, exist_ok=True)
        cfg.to_json(run_dir / "config.json")
        _log_to_file(run_dir / "train.log")
    ckpt_dir = Path(cfg.checkpoint_options.ckpt_path)
    ckpt_dir = ckpt_dir if ckpt_dir.is_absolute() else run_dir / ckpt_dir
    net = MassTransformer(cfg.model_config)
    logger.info("model: %.2fM parameters, compute %s, %d device(s)", count_parameters(net) / 1e6,
                net.compute_dtype, group_size)
    resume = _resume_state(args.resume, ckpt_dir, cfg)
    if cfg.checkpoint_options.existed_ckpt and resume is None:
        load_model_weights(net, cfg.checkpoint_options.existed_ckpt, cfg.checkpoint_options.existed_ckpt_skip)
    run = Run(cfg, net, run_dir, ckpt_dir, rank, group_size,
              MetricsWriter(run_dir / "metrics.jsonl", enabled=rank == 0), args.max_steps)
    _install_stop_handler(run)
    from src.utils.trainer import train_phase

    for phase, dataset in (("pretrain", cfg.dataset_config.pre_train_dataset),
                           ("finetune", cfg.dataset_config.fine_tune_dataset)):
        if not dataset:
            continue
        if resume and resume[1].get("phase") == "finetune" and phase == "pretrain":
            continue  # the run was already fine-tuning: pre-training is done
        train_phase(run, phase, dataset, resume if resume and resume[1].get("phase") == phase else None)
        if run.stop_requested:
            logger.info("stopped on request; continue with --resume auto")
            break
    return 0


def _resume_state(spec, ckpt_dir, cfg):
    """``(params, state)`` of the checkpoint to resume from, or None."""
    if not spec:
        return None
    from src.utils.checkpoint import load_checkpoint, step_checkpoints

    if spec == "auto":
        prefix = cfg.checkpoint_options.ckpt_prefix
        found = sorted((p.stat().st_mtime, p) for phase in ("pretrain", "finetune")
                       for p in step_checkpoints(ckpt_dir, f"{prefix}_{phase}"))
        if not found:
            logger.info("--resume auto: no checkpoint in %s, starting fresh", ckpt_dir)
            return None
        spec = found[-1][1]
    params, state = load_checkpoint(spec)
    if "step" not in state or "phase" not in state:
        raise UserError(f"{spec}: has no run state (phase, step); use it as existed_ckpt instead")
    logger.info("resuming from %s (%s, step %d)", spec, state["phase"], state["step"])
    return params, state


def _install_stop_handler(run):
    def handler(signum, _frame):
        logger.warning("signal %d: stopping after the current step", signum)
        run.stop_requested = True

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def _log_to_file(path):
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    logging.getLogger().addHandler(handler)


if __name__ == "__main__":
    sys.exit(run_cli(main))
