"""ROUGE-1/2/L of hypotheses against references, with the scoring tool named in the result.

Two tools, chosen with ``tool``:

* ``"rouge-score"`` (default): Google's ``rouge_score`` package, ``RougeScorer(["rouge1", "rouge2",
  "rougeL"], use_stemmer=stem)``; each pair is scored and the per-pair F1 (precision, recall) are
  averaged (a deterministic mean, no bootstrap). Its tokenizer lowercases and keeps ``[a-z0-9]`` runs
  and its Porter stemmer mirrors ``ROUGE-1.5.5.pl -m``: the Gigaword protocol's numbers.
* ``"rouge"``: the pltrdy ``rouge`` package that ModelZoo MASS used (``Rouge().get_scores(avg=True)``):
  whitespace tokens, no lowercasing, no stemming, ROUGE-L summary-level over ``.``-split fragments.
  Only for comparing with ModelZoo numbers.

Scores are F1 x 100. A pair the tool cannot score (pltrdy raises on an empty hypothesis or reference)
scores 0 and is counted in ``empty_hypotheses`` / ``empty_references``; it stays in the average so that
a model emitting nothing is not rewarded.

>>> round(rouge(["the cat sat"], ["the cat sat on the mat"])["rouge1"], 2)
66.67
"""

import dataclasses
import importlib.metadata

METRICS = ("rouge1", "rouge2", "rougeL")
TOOLS = ("rouge-score", "rouge")
_PLTRDY_KEYS = {"rouge1": "rouge-1", "rouge2": "rouge-2", "rougeL": "rouge-l"}


@dataclasses.dataclass(frozen=True)
class RougeScores:
    """Mean per-pair ROUGE, x100. ``rouge1``/``rouge2``/``rougeL`` are F1; P and R are kept per metric."""

    rouge1: float
    rouge2: float
    rougeL: float  # noqa: N815 - the metric's usual name
    precision: dict
    recall: dict
    pairs: int
    empty_hypotheses: int
    empty_references: int
    tool: str
    version: str
    options: dict

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def rouge(hypotheses, references, *, tool: str = "rouge-score", stem: bool = True) -> dict:
    """ROUGE of ``hypotheses`` against line-aligned ``references`` as a plain dict (see :class:`RougeScores`).

    ``stem`` applies to ``rouge-score`` only (pltrdy ``rouge`` has no stemmer).
    """
    return rouge_scores(hypotheses, references, tool=tool, stem=stem).as_dict()


def rouge_scores(hypotheses, references, *, tool: str = "rouge-score", stem: bool = True) -> RougeScores:
    hypotheses, references = list(hypotheses), list(references)
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} references")
    if tool == "rouge-score":
        per_pair, options = _google_pairs(hypotheses, references, stem)
        package = "rouge-score"
    elif tool == "rouge":
        per_pair, options = _pltrdy_pairs(hypotheses, references)
        package = "rouge"
    else:
        raise ValueError(f"unknown ROUGE tool {tool!r}; choose from {', '.join(TOOLS)}")
    n = len(per_pair)

    def mean(metric, stat):
        return 100.0 * sum(p[metric][stat] for p in per_pair) / n if n else 0.0

    return RougeScores(
        rouge1=mean("rouge1", "f"), rouge2=mean("rouge2", "f"), rougeL=mean("rougeL", "f"),
        precision={m: mean(m, "p") for m in METRICS}, recall={m: mean(m, "r") for m in METRICS},
        pairs=n, empty_hypotheses=sum(1 for h in hypotheses if not h.split()),
        empty_references=sum(1 for r in references if not r.split()),
        tool=package, version=_version(package), options=options)


def _google_pairs(hypotheses, references, stem):
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(list(METRICS), use_stemmer=stem)
    per_pair = []
    for hyp, ref in zip(hypotheses, references, strict=True):
        scores = scorer.score(ref, hyp)  # argument order: (target, prediction)
        per_pair.append({m: {"p": s.precision, "r": s.recall, "f": s.fmeasure} for m, s in scores.items()})
    options = {"metrics": list(METRICS), "use_stemmer": bool(stem), "aggregation": "mean of per-pair scores",
               "tokenizer": "rouge_score default (lowercase, [a-z0-9]+)"}
    return per_pair, options


def _pltrdy_pairs(hypotheses, references):
    from rouge import Rouge

    scorer = Rouge()
    zero = {m: {"p": 0.0, "r": 0.0, "f": 0.0} for m in METRICS}
    per_pair = []
    for hyp, ref in zip(hypotheses, references, strict=True):
        if not hyp.split() or not ref.split():
            per_pair.append(zero)
            continue
        try:
            scores = scorer.get_scores([hyp], [ref])[0]
        except ValueError:  # e.g. a hypothesis of only "." is empty after pltrdy's sentence split
            per_pair.append(zero)
            continue
        per_pair.append({m: dict(scores[_PLTRDY_KEYS[m]]) for m in METRICS})
    options = {"metrics": ["rouge-1", "rouge-2", "rouge-l"], "exclusive": scorer.exclusive, "stemming": False,
               "aggregation": "mean of per-pair scores (= get_scores(avg=True)); unscorable pairs count 0",
               "note": "ModelZoo-compatible; not comparable to ROUGE-1.5.5"}
    return per_pair, options


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"
