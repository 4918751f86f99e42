"""Average the model parameters of several checkpoints into one .npz file.

The checkpoints come from --input_files (comma-separated files) and/or --input_folder (its step
checkpoints <prefix>_step<N>.ckpt; <prefix>_best.ckpt, hidden and temporary files, .meta and .json
files are ignored). The same weights are never averaged twice (compared by content), and the files
averaged are listed on stdout. Only model parameters are averaged: optimizer
moments, step counters, the learning rate, the loss scale and the run state are left out. The .npz
is read by eval.py and export.py like a checkpoint (src/utils/checkpoint.py).

Examples:
    python weights_average.py --input_folder runs/x/checkpoints --last 5 --output_file runs/x/last5.npz
    python weights_average.py --input_files a_step900.ckpt,a_step1000.ckpt --output_file avg
"""

import argparse
import logging
import sys

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
    p.add_argument("--output_file", required=True, help="output .npz (the suffix is added if missing)")
    return p.parse_args(argv)


def select_inputs(args) -> list:
    files = [f.strip() for f in args.input_files.split(",") if f.strip()]
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
    check_output_file(npz_path(args.output_file), "--output_file")
    for path in paths:
        logger.info("input: %s", path)
    output = save_npz(args.output_file, average_checkpoints(paths))
    print(f"wrote the average of {len(paths)} checkpoint(s) to {output}:")
    for path in paths:
        print(f"  {path}")


if __name__ == "__main__":
    sys.exit(run_cli(main))
