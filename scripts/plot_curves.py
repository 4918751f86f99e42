r"""Plot training and validation loss curves (PNG) from the metrics.jsonl of one or more runs.

Examples:
    python scripts/plot_curves.py runs/pretrain --output runs/pretrain/curves.png
    python scripts/plot_curves.py runs/giga_mass runs/giga_scratch --labels MASS,scratch --output curves.png
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from src.training.curves import plot_curves  # noqa: E402
from src.utils.cli import run_cli  # noqa: E402
from src.utils.errors import UserError  # noqa: E402
from src.utils.fileio import check_output_file  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", help="run folders (train.py --output) or metrics.jsonl files")
    p.add_argument("--output", required=True, help="PNG file to write")
    p.add_argument("--labels", default="", help="comma-separated legend labels (default: the folder names)")
    args = p.parse_args(argv)
    labels = args.labels.split(",") if args.labels else [Path(r).name if Path(r).is_dir() else Path(r).parent.name
                                                        for r in args.runs]
    if len(labels) != len(args.runs):
        raise UserError(f"--labels has {len(labels)} labels for {len(args.runs)} runs")
    if len(set(labels)) != len(labels):
        raise UserError(f"two runs have the same label ({labels}): give --labels")
    check_output_file(args.output, "--output")
    out = plot_curves(dict(zip(labels, args.runs, strict=True)), args.output)
    print(f"curves written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
