"""Training curves: series read from metrics.jsonl, PNG written, bad files named by line."""

import json

import pytest

from scripts import plot_curves
from src.training.curves import plot_curves as plot
from src.training.curves import read_curves
from src.training.metrics_log import MetricsWriter
from src.utils.cli import run_cli


def write_run(folder, phases=("pretrain",), steps=6, valid_every=3):
    writer = MetricsWriter(folder / "metrics.jsonl")
    for phase in phases:
        for step in range(1, steps + 1):
            writer.write({"phase": phase, "step": step, "loss": 10.0 / step, "lr": 1e-3})
            if step % valid_every == 0:
                writer.write({"phase": phase, "step": step, "valid_loss": 9.0 / step, "valid_ppl": 1.0})
    writer.write({"phase": phases[-1], "step": steps + 1, "loss": float("nan")})  # stored as null: skipped
    return folder


def test_read_curves_by_phase(tmp_path):
    curves = read_curves(write_run(tmp_path, ("pretrain", "finetune")) / "metrics.jsonl")
    assert set(curves) == {"pretrain", "finetune"}
    assert curves["pretrain"]["train"] == [(s, 10.0 / s) for s in range(1, 7)]
    assert curves["finetune"]["valid"] == [(3, 3.0), (6, 1.5)]


def test_plot_writes_png(tmp_path):
    a = write_run(tmp_path / "a")
    b = write_run(tmp_path / "b", ("finetune",))
    out = plot({"a": a, "b": b / "metrics.jsonl"}, tmp_path / "c" / "curves.png")
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    assert [p.name for p in out.parent.iterdir()] == ["curves.png"]  # no temporary file left


def test_bad_metrics_named_by_line(tmp_path, capsys):
    (tmp_path / "metrics.jsonl").write_text(json.dumps({"step": 1, "loss": 2.0}) + "\n{oops\n")
    assert run_cli(plot_curves.main, [str(tmp_path), "--output", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert "metrics.jsonl:2" in err and "not a JSON record" in err
    assert not (tmp_path / "x.png").exists()


def test_script_labels_and_empty_runs(tmp_path, capsys):
    run = write_run(tmp_path / "r")
    assert run_cli(plot_curves.main, [str(run), "--labels", "x,y", "--output", str(tmp_path / "x.png")]) == 2
    assert "2 labels for 1 runs" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "metrics.jsonl").write_text("")
    with pytest.raises(Exception, match="no loss to plot"):
        plot({"e": empty}, tmp_path / "e.png")
