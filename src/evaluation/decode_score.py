"""From decoded n-best lists to scored texts: the one path of eval.py's test decode and the trainer's
validation by generation (and scripts/tune_decoding.py's grid, through the validator).

``best_texts`` turns the n-best lists of a search (each caller runs ``generate_stream`` its own way) into
the best hypotheses' texts; ``score_texts`` scores the texts with a scorer of the registry
(src/evaluation/scorers.py) and adds the copy rates and mean lengths of the hypotheses and the references.
The callers only choose how ids become text (detokenized words for a test report, BPE-free tokens for
validation) and how they write the figures.
"""

from src.evaluation.copy_rate import copy_rate, mean_words


def best_texts(nbests, to_text) -> tuple[list[str], int]:
    """``(texts, lost)``: per n-best list (``generate_stream``'s, in source order), ``to_text(tokens)`` of its
    best hypothesis, "" for a source that got none (``lost`` counts them: every candidate's score was NaN or
    -inf, a model that produces garbage)."""
    texts = [to_text(nbest[0].tokens) if nbest else None for nbest in nbests]
    return ["" if text is None else text for text in texts], texts.count(None)


def score_texts(scorer, hypotheses, references, source_words) -> dict:
    """``{"scores": the scorer's figures, "criterion": the figure that ranks checkpoints, "copy": copy rates
    and mean words of the hypotheses and references}``; ``source_words``: each source's words (BPE removed),
    for the copy rates."""
    scores = scorer.score(hypotheses, references)
    return {"scores": scores, "criterion": float(scorer.criterion(scores)),
            "copy": {"hypothesis_copy_rate": copy_rate(hypotheses, source_words),
                     "reference_copy_rate": copy_rate(references, source_words),
                     "hypothesis_words": mean_words(hypotheses), "reference_words": mean_words(references)}}
