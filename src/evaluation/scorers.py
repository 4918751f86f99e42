"""The scorers of generated text, in one registry: each has a name, a direction, a ``score(hypotheses,
references) -> figures`` function and the rows it adds to a report's summary table.

A new metric is one :class:`Scorer` and one line in ``SCORERS``: eval.py's ``--metric`` choices, its
report (``report[scorer.report_key]``) and its summary table, and the trainer's
``checkpoint_options.best_by`` choices (validation by generation, src/evaluation/valid_generation.py)
come from here.

* ``rouge`` / ``rouge_pltrdy``: ROUGE-1/2/L F1 (src/evaluation/rouge_score.py; rouge-score with stemming, or
  the pltrdy package ModelZoo used);
* ``bleu`` / ``chrf``: corpus BLEU and chrF of ``sacrebleu`` (its defaults: BLEU with the 13a tokenizer,
  exponential smoothing; chrF with character 6-grams, beta 2), with sacrebleu's signature in the figures.

>>> get("bleu").higher_is_better, get("rouge").report_key
(True, 'rouge')
"""

import dataclasses
import importlib.metadata
import json
from collections.abc import Callable

from src.utils.errors import UserError


@dataclasses.dataclass(frozen=True)
class Scorer:
    name: str
    report_key: str  # the key of its figures in a report
    headline: str  # the figure that ranks systems
    higher_is_better: bool
    score: Callable[[list, list], dict]
    rows: Callable[[dict], list]  # (label, value) rows of a summary table
    figures: tuple[str, ...]  # the numeric figures a validation logs (as valid_<figure>)
    criterion: Callable[[dict], float]  # the figure that chooses the best checkpoint (best_by=<name>)


def _rouge(tool):
    def score(hypotheses, references):
        from src.evaluation.rouge_score import rouge

        return rouge(hypotheses, references, tool=tool, stem=True)
    return score


def _rouge_rows(r: dict) -> list:
    return [("tool", f"{r['tool']} {r['version']}"), ("pairs", r["pairs"]),
            ("ROUGE-1 F1", f"{r['rouge1']:.2f}"), ("ROUGE-2 F1", f"{r['rouge2']:.2f}"),
            ("ROUGE-L F1", f"{r['rougeL']:.2f}"), ("empty hypotheses", r["empty_hypotheses"]),
            ("options", json.dumps(r["options"], sort_keys=True))]


def _rouge_mean(r: dict) -> float:
    return (r["rouge1"] + r["rouge2"] + r["rougeL"]) / 3


def _sacrebleu(kind):
    def score(hypotheses, references):
        import sacrebleu

        hypotheses, references = list(hypotheses), list(references)
        if len(hypotheses) != len(references):
            raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} references")
        metric = sacrebleu.metrics.BLEU() if kind == "bleu" else sacrebleu.metrics.CHRF()
        result = metric.corpus_score(hypotheses, [references])
        figures = {kind: float(result.score), "pairs": len(hypotheses),
                   "empty_hypotheses": sum(1 for h in hypotheses if not h.split()),
                   "tool": "sacrebleu", "version": importlib.metadata.version("sacrebleu"),
                   "signature": str(metric.get_signature())}
        if kind == "bleu":
            figures.update(precisions=[float(p) for p in result.precisions], brevity_penalty=float(result.bp),
                           hyp_len=int(result.sys_len), ref_len=int(result.ref_len))
        return figures
    return score


def _sacrebleu_rows(label):
    def rows(r: dict) -> list:
        out = [("tool", f"{r['tool']} {r['version']}"), ("pairs", r["pairs"]),
               (label, f"{r[label.lower()]:.2f}"), ("empty hypotheses", r["empty_hypotheses"]),
               ("signature", r["signature"])]
        if "brevity_penalty" in r:
            out.insert(3, ("n-gram precisions", " / ".join(f"{p:.1f}" for p in r["precisions"])))
            out.insert(4, ("brevity penalty (hyp / ref length)",
                           f"{r['brevity_penalty']:.3f} ({r['hyp_len']} / {r['ref_len']})"))
        return out
    return rows


_ROUGE_FIGURES = ("rouge1", "rouge2", "rougeL")
SCORERS = {s.name: s for s in (
    Scorer("rouge", "rouge", "rouge1", True, _rouge("rouge-score"), _rouge_rows, _ROUGE_FIGURES, _rouge_mean),
    Scorer("rouge_pltrdy", "rouge", "rouge1", True, _rouge("rouge"), _rouge_rows, _ROUGE_FIGURES, _rouge_mean),
    Scorer("bleu", "bleu", "bleu", True, _sacrebleu("bleu"), _sacrebleu_rows("BLEU"), ("bleu",),
           lambda r: r["bleu"]),
    Scorer("chrf", "chrf", "chrf", True, _sacrebleu("chrf"), _sacrebleu_rows("chrF"), ("chrf",),
           lambda r: r["chrf"]),
)}
LOSS = "loss"  # best_by: the teacher-forced validation loss (no decoding)


def as_loss(best_by: str, value: float) -> float:
    """``value`` of the figure that ``best_by`` selects by (the validation loss, or a scorer's criterion) as
    a criterion where lower is better; the map is its own inverse (a lower-is-better figure is kept, a
    higher-is-better one negated).

    >>> as_loss("loss", 2.5), as_loss("bleu", 30.0), as_loss("bleu", as_loss("bleu", 30.0))
    (2.5, -30.0, 30.0)
    """
    scorer = selection(best_by)
    return float(value) if scorer is None or not scorer.higher_is_better else -float(value)


def get(name: str) -> Scorer:
    try:
        return SCORERS[name]
    except KeyError:
        raise UserError(f"unknown metric {name!r}; choose from {', '.join(SCORERS)}") from None


def selection(best_by: str) -> Scorer | None:
    """The scorer that ``checkpoint_options.best_by`` names, or None for the validation loss.

    >>> selection("loss") is None, selection("bleu").name
    (True, 'bleu')
    """
    if best_by == LOSS:
        return None
    if best_by not in SCORERS:
        raise UserError(f"checkpoint_options.best_by: unknown {best_by!r}; choose from {LOSS}, {', '.join(SCORERS)}")
    return SCORERS[best_by]
