r"""Plot validation ROUGE-1 of fine-tuned Gigaword systems against the pre-training steps they started from
(one line per pre-training objective, training from scratch as a horizontal line), from the
"pretraining_curve" section of a results JSON (docs/results.json):

    "pretraining_curve": {
      "metric": "valid ROUGE-1 (first 300 validation pairs, selected checkpoint)",
      "scratch": 23.89,
      "objectives": {"40% of the fragment kept": [[3500, 30.24], [7000, 30.9]], "paper 80/10/10": [[3500, 15.37]]}
    }

Example:
    python scripts/plot_pretraining_curve.py docs/results.json --output docs/pretraining_curve.png
"""

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from src.utils.cli import run_cli  # noqa: E402
from src.utils.errors import UserError  # noqa: E402
from src.utils.fileio import atomic_path, check_output_file, require_file  # noqa: E402


def read_curve(path) -> dict:
    try:
        curve = json.loads(require_file(path, "results file").read_text(encoding="utf-8"))["pretraining_curve"]
        points = {name: [(int(s), float(v)) for s, v in rows] for name, rows in curve["objectives"].items()}
        scratch = float(curve["scratch"])
    except (ValueError, KeyError, TypeError) as exc:
        raise UserError(f"{path}: no readable \"pretraining_curve\" section ({exc!r})") from None
    if not any(points.values()):
        raise UserError(f"{path}: the pretraining_curve has no point")
    return {"points": points, "scratch": scratch, "metric": curve.get("metric", "valid ROUGE-1")}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("results", help="JSON file with a pretraining_curve section")
    p.add_argument("--output", required=True, help="PNG file to write")
    args = p.parse_args(argv)
    curve = read_curve(args.results)
    check_output_file(args.output, "--output")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for index, (name, rows) in enumerate(curve["points"].items()):
        rows = sorted(rows)
        ax.plot([s for s, _ in rows], [v for _, v in rows], marker="o", label=name)
        for s, v in rows:  # labels of different lines at the same step kept apart
            ax.annotate(f"{v:.2f}", (s, v), textcoords="offset points", xytext=(6, 6 - 12 * index), fontsize=8)
    ax.axhline(curve["scratch"], color="grey", linestyle="--", label=f"scratch ({curve['scratch']:.2f})")
    ax.set_xlabel("pre-training steps (batch 32)")
    ax.set_ylabel("validation ROUGE-1")
    fig.text(0.01, 0.01, curve["metric"], fontsize=7, color="dimgrey")
    ax.set_title("Gigaword 10K: fine-tuned from MASS pre-training vs scratch")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    with atomic_path(Path(args.output)) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    print(f"pre-training curve written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
