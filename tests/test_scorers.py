"""The scorer registry (src/evaluation/scorers.py) and eval.py --hypotheses: BLEU and chrF equal the sacrebleu
command line on the same files (its printed score is the oracle), ROUGE equals the rouge_score package called
directly, and bad input is a clear error."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import eval as eval_script
from src.evaluation.scorers import SCORERS, get
from src.utils.cli import run_cli
from src.utils.errors import UserError
from tests.helpers import random_sentences, write_lines

SACREBLEU = Path(sys.executable).parent / "sacrebleu"


def pairs(tmp_path, n=40):
    """References, and hypotheses that share part of them (some words dropped, some replaced)."""
    refs = random_sentences(n, seed=5, min_words=4, max_words=12)
    rng = np.random.default_rng(6)
    hyps = []
    for ref in refs:
        words = [w for w in ref.split() if rng.random() > 0.2]
        words = [w if rng.random() > 0.15 else "river" for w in words]
        hyps.append(" ".join(words))
    hyps[3] = ""  # an empty hypothesis counts
    return write_lines(tmp_path / "hyp.txt", hyps), write_lines(tmp_path / "ref.txt", refs)


def sacrebleu_cli(hyp, ref, metric) -> float:
    done = subprocess.run([str(SACREBLEU), str(ref), "-i", str(hyp), "-m", metric, "-b", "-w", "4"],
                          capture_output=True, text=True, check=True)
    return float(done.stdout.strip())


@pytest.mark.parametrize("metric", ["bleu", "chrf"])
def test_eval_hypotheses_equals_the_sacrebleu_command_line(tmp_path, metric):
    hyp, ref = pairs(tmp_path)
    out = tmp_path / "scored" / "out.txt"
    assert run_cli(eval_script.main, ["--hypotheses", str(hyp), "--test_ref", str(ref), "--metric", metric,
                                      "--output", str(out)]) == 0
    report = json.loads(out.with_name("out.txt.report.json").read_text())
    figures = report[metric]
    assert figures[metric] == pytest.approx(sacrebleu_cli(hyp, ref, metric), abs=0.01)
    assert 0.0 < figures[metric] < 100.0 and figures["pairs"] == 40 and figures["empty_hypotheses"] == 1
    assert report["hypotheses_sha256"] and f"| {'BLEU' if metric == 'bleu' else 'chrF'}" in \
        out.with_name("out.txt.summary.txt").read_text()
    assert not out.exists()  # scoring writes the report, never a hypotheses file over the input


def test_eval_hypotheses_rouge_equals_rouge_score_called_directly(tmp_path):
    from rouge_score import rouge_scorer

    hyp, ref = pairs(tmp_path)
    out = tmp_path / "r.txt"
    assert run_cli(eval_script.main, ["--hypotheses", str(hyp), "--test_ref", str(ref), "--output", str(out)]) == 0
    figures = json.loads((tmp_path / "r.txt.report.json").read_text())["rouge"]
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    scores = [scorer.score(r, h) for h, r in zip(hyp.read_text().split("\n")[:-1], ref.read_text().split("\n")[:-1],
                                                  strict=True)]
    for key in ("rouge1", "rouge2", "rougeL"):
        assert figures[key] == pytest.approx(100 * np.mean([s[key].fmeasure for s in scores]), abs=1e-9)


def test_registry_names_directions_and_unknown_metric():
    assert set(SCORERS) == {"rouge", "rouge_pltrdy", "bleu", "chrf"}
    assert all(s.higher_is_better for s in SCORERS.values())
    assert get("rouge_pltrdy").report_key == "rouge"
    with pytest.raises(UserError, match="unknown metric 'ter'"):
        get("ter")
    with pytest.raises(ValueError, match="2 hypotheses but 1 references"):
        get("bleu").score(["a b", "c"], ["a b"])


def test_eval_hypotheses_bad_input_exits_2(tmp_path, capsys):
    hyp, ref = pairs(tmp_path)
    short = write_lines(tmp_path / "short.txt", ["one line"])
    assert run_cli(eval_script.main, ["--hypotheses", str(short), "--test_ref", str(ref), "--metric", "bleu",
                                      "--output", str(tmp_path / "o.txt")]) == 2
    err = capsys.readouterr().err
    assert "short.txt: 1 lines for the 40 references" in err and "Traceback" not in err
    assert not (tmp_path / "o.txt.report.json").exists()
    assert run_cli(eval_script.main, ["--hypotheses", str(tmp_path / "missing.txt"), "--test_ref", str(ref),
                                      "--output", str(tmp_path / "o.txt")]) == 2
    assert "missing.txt" in capsys.readouterr().err
    for extra in (["--metric", "ppl", "--test_ref", str(ref)], []):
        with pytest.raises(SystemExit) as stop:
            eval_script.main(["--hypotheses", str(hyp), "--output", str(tmp_path / "o.txt"), *extra])
        assert stop.value.code == 2
