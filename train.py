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
current step and writes a checkpoint to resume from. On CPU, when other processes keep cores busy, the
training keeps its threads to the cores they leave (the log says "core share: ..."; same results);
MASS_CORE_SHARE=0 turns that off.
"""

import argparse
import sys

from src.utils.cli import parse_with_overrides, run_cli
from src.utils.device import DEVICE_TARGETS


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
    args, args.overrides = parse_with_overrides(p, argv)
    if args.max_steps < 0:
        p.error(f"--max_steps must be >= 0 (0: no limit), got {args.max_steps}")
    return args


def main(argv=None):
    args = parse_args(argv)
    from src.training.run import run_training

    return run_training(args.config, args.overrides, args.output, args.device_target, args.device_id, args.resume,
                        args.max_steps, args.pynative)


if __name__ == "__main__":
    sys.exit(run_cli(main))
