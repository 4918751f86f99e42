"""Training curves from ``metrics.jsonl``: the series (pure) and their plot (matplotlib, PNG)."""

from pathlib import Path

from src.training.metrics_log import read_metrics
from src.utils.errors import UserError
from src.utils.fileio import atomic_path


def read_curves(metrics_path) -> dict:
    """``{phase: {"train": [(step, loss)], "valid": [(step, valid_loss)]}}`` of one run.

    A malformed line is a UserError naming the file and line (:func:`read_metrics`); a record without a
    loss (or with a non-finite one, stored as null) is skipped.
    """
    curves = {}
    for record in read_metrics(metrics_path):
        series = curves.setdefault(record.get("phase", "train"), {"train": [], "valid": []})
        if record.get("loss") is not None:
            series["train"].append((record["step"], record["loss"]))
        if record.get("valid_loss") is not None:
            series["valid"].append((record["step"], record["valid_loss"]))
    return curves


def plot_curves(runs: dict, output) -> Path:
    """Plot training loss (left) and validation loss (right) against the step, one line per run and phase.

    ``runs`` maps a label to a run folder (with ``metrics.jsonl``) or to a ``metrics.jsonl`` file. The PNG
    is written atomically.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_train, ax_valid) = plt.subplots(1, 2, figsize=(11, 4.2))
    plotted = 0
    for label, source in runs.items():
        source = Path(source)
        metrics = source / "metrics.jsonl" if source.is_dir() else source
        for phase, series in read_curves(metrics).items():
            name = label if len(runs) == 1 or phase in label else f"{label} ({phase})"
            for ax, key, style in ((ax_train, "train", "-"), (ax_valid, "valid", "o-")):
                if series[key]:
                    steps, losses = zip(*series[key], strict=True)
                    ax.plot(steps, losses, style, label=name, markersize=3, linewidth=1.2)
                    plotted += 1
    if not plotted:
        plt.close(fig)
        raise UserError(f"no loss to plot in {', '.join(str(s) for s in runs.values())}")
    for ax, title in ((ax_train, "training loss (label-smoothed)"), (ax_valid, "validation loss (NLL)")):
        ax.set_title(title)
        ax.set_xlabel("optimizer step")
        ax.set_ylabel("loss per target token")
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8)
    fig.tight_layout()
    output = Path(output)
    with atomic_path(output) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return output
