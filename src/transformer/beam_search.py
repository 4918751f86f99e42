"""Beam search in plain NumPy over a step callable; the model is reached only through ``step_fn``.

``step_fn(last_tokens, beam_indices, step) -> log_probs`` sees ``rows = batch_size * beam_size`` rows,
beam-major per example (``row = example * beam_size + k``):

* ``last_tokens`` (rows,) int: the token each row appended at the previous step (``bos`` at step 0);
* ``beam_indices`` (rows,) int or None: the previous row each current row continues (None at step 0),
  so that an adapter can gather its cache before decoding ``last_tokens`` at position ``step``;
* returns ``(rows, vocab)`` log-probabilities (every entry <= 0) of the token at ``step``.

The search follows fairseq's, which MASS was first released with. At each step every live beam is
extended by every token; of the ``2 * beam_size`` best extensions of an example (by summed log-prob),
those that end with ``eos`` *and* rank among the first ``beam_size`` become finished hypotheses, and
the best ``beam_size`` that do not end with ``eos`` stay live. A hypothesis also finishes when it
reaches its example's ``max_len`` tokens (then without ``eos``, scored as is). Finished hypotheses are
ranked by ``log_prob / length_normalizer(len)``, ``len`` counting generated tokens with ``eos``.

An example stops (its beams are dropped) at the first of:

1. it has ``beam_size`` finished hypotheses (fairseq's rule; with ``beam_size = 1`` this is greedy
   decoding, whatever the length penalty);
2. it has ``n_best`` finished hypotheses that no live beam can beat. This rule is exact: a live beam
   with summed log-prob ``s <= 0`` after ``l`` tokens can only finish with a sum ``<= s`` and a length
   ``L`` in ``l + 1 .. max_len``, so its score is at most ``s / max(lp(l + 1), lp(max_len))``
   (``lp`` is monotonic in ``L``). When the ``n_best``-th finished score is >= that bound for every live
   beam, continuing cannot change the result (ties keep the earlier hypothesis). With alpha = 0 the
   bound is ``s`` itself;
3. it has no live beam left (every candidate ended or was forbidden, or ``max_len`` was reached).

The loop ends when every example has stopped.
"""

from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np

from src.transformer.decoding_constraints import (
    Constraint,
    apply_constraints,
    forbid_tokens,
    min_length,
    no_repeat_ngram,
)


class Hypothesis(NamedTuple):
    tokens: list[int]  # generated tokens, without <s>, ending with </s> when it was emitted
    score: float  # log_prob / length_normalizer(len(tokens)): the ranking key
    log_prob: float  # summed log-probability of the tokens


StepFn = Callable[[np.ndarray, np.ndarray | None, int], np.ndarray]


def length_normalizer(length, alpha: float, kind: str = "gnmt"):
    """The length penalty, divisor of a summed log-prob: GNMT ``((5 + len) / 6) ** alpha`` or ``len ** alpha``.

    >>> float(length_normalizer(7, 1.0)), float(length_normalizer(7, 2.0, "power"))
    (2.0, 49.0)
    """
    length = np.asarray(length, dtype=np.float64)
    if kind == "gnmt":
        return ((5.0 + length) / 6.0) ** alpha
    if kind == "power":
        return length ** alpha
    raise ValueError(f"length_penalty_type must be 'gnmt' or 'power', got {kind!r}")


def beam_search(step_fn: StepFn, batch_size: int, *, beam_size: int, bos: int, eos: int, max_len,
                min_len=0, length_penalty: float = 1.0, length_penalty_type: str = "gnmt",
                no_repeat_ngram_size: int = 0, n_best: int = 1, forbid: Sequence[int] = (0, 4),
                constraints: Sequence[Constraint] | None = None) -> list[list[Hypothesis]]:
    """Up to ``n_best`` hypotheses per example, best first (see the module docstring for the rules).

    ``max_len`` and ``min_len`` are ints or ``(batch_size,)`` arrays (generated tokens, ``eos``
    included for ``max_len``; excluded for ``min_len``). ``forbid`` lists token ids never generated;
    ``constraints`` are extra functions ``(tokens, log_probs, step) -> log_probs`` applied after the
    built-in ones, on all ``rows``.
    """
    if not 1 <= n_best <= beam_size:
        raise ValueError(f"n_best must lie in [1, beam_size={beam_size}], got {n_best}")
    max_len = np.broadcast_to(np.asarray(max_len, dtype=np.int64), (batch_size,))  # (batch,)
    if max_len.min(initial=1) < 1:
        raise ValueError(f"max_len must be >= 1, got {max_len.min()}")
    alpha, kind = length_penalty, length_penalty_type
    rows = batch_size * beam_size
    row_example = np.repeat(np.arange(batch_size), beam_size)  # (rows,): the example of each row
    all_constraints = _builtin_constraints(forbid, min_len, row_example, eos, no_repeat_ngram_size)
    all_constraints += list(constraints or [])

    # Only beam 0 of each example is live at first: the others would duplicate it.
    scores = np.full((batch_size, beam_size), -np.inf)
    scores[:, 0] = 0.0
    scores = scores.reshape(rows)  # (rows,) summed log-probs, -inf for a dead row
    tokens = np.zeros((rows, 0), dtype=np.int64)  # (rows, step)
    last = np.full(rows, bos, dtype=np.int64)  # (rows,)
    beam_indices = None
    finished: list[list[Hypothesis]] = [[] for _ in range(batch_size)]
    done = np.zeros(batch_size, dtype=bool)

    for step in range(int(max_len.max())):
        log_probs = np.asarray(step_fn(last, beam_indices, step), dtype=np.float64)  # (rows, vocab)
        vocab = log_probs.shape[1]
        log_probs = apply_constraints(all_constraints, tokens, log_probs, step)
        candidates = (scores[:, None] + log_probs).reshape(batch_size, beam_size * vocab)  # (batch, beam * vocab)
        top = _top_k(candidates, min(2 * beam_size, beam_size * vocab))  # (batch, 2 * beam)
        top_scores = np.take_along_axis(candidates, top, axis=1)  # (batch, 2 * beam)
        parent = np.arange(batch_size)[:, None] * beam_size + top // vocab  # (batch, 2 * beam) rows
        token = top % vocab  # (batch, 2 * beam)

        usable = np.isfinite(top_scores) & ~done[:, None]  # (batch, 2 * beam)
        at_limit = (step + 1 >= max_len)[:, None]  # (batch, 1): this token is the last allowed
        rank = np.arange(top.shape[1])[None, :]  # (1, 2 * beam)
        ends = usable & (rank < beam_size) & ((token == eos) | at_limit)
        for example, k in zip(*np.nonzero(ends), strict=True):
            sequence = tokens[parent[example, k]].tolist() + [int(token[example, k])]
            total = float(top_scores[example, k])
            score = total / float(length_normalizer(len(sequence), alpha, kind))
            finished[example].append(Hypothesis(sequence, score, total))

        # The first beam_size continuing candidates of each example become the live beams.
        continues = usable & (token != eos) & ~at_limit  # (batch, 2 * beam)
        chosen = np.argsort(~continues, axis=1, kind="stable")[:, :beam_size]  # (batch, beam)
        live = np.take_along_axis(continues, chosen, axis=1)  # (batch, beam)
        own_row = np.arange(rows).reshape(batch_size, beam_size)  # a dead row points at itself
        beam_indices = np.where(live, np.take_along_axis(parent, chosen, axis=1), own_row).reshape(rows)
        last = np.where(live, np.take_along_axis(token, chosen, axis=1), eos).reshape(rows)  # (rows,)
        scores = np.where(live, np.take_along_axis(top_scores, chosen, axis=1), -np.inf).reshape(rows)
        tokens = np.concatenate([tokens[beam_indices], last[:, None]], axis=1)  # (rows, step + 1)

        done |= _stopped(finished, scores.reshape(batch_size, beam_size), step + 1, max_len,
                         beam_size=beam_size, n_best=n_best, alpha=alpha, kind=kind)
        scores = np.where(np.repeat(done, beam_size), -np.inf, scores)  # (rows,)
        if done.all():
            break

    return [sorted(hyps, key=lambda h: -h.score)[:n_best] for hyps in finished]  # stable: ties by age


def _builtin_constraints(forbid, min_len, row_example, eos, no_repeat_ngram_size) -> list[Constraint]:
    constraints = []
    if len(forbid):
        constraints.append(forbid_tokens(forbid))
    min_len = np.asarray(min_len)
    if np.any(min_len > 0):
        per_row = min_len if min_len.ndim == 0 else min_len[row_example]  # (rows,) or scalar
        constraints.append(min_length(per_row, eos))
    if no_repeat_ngram_size > 0:
        constraints.append(no_repeat_ngram(no_repeat_ngram_size))
    return constraints


def _top_k(values: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` largest entries of each row of ``values`` (batch, n), largest first.

    Equal values inside the top are ordered by index; ``argpartition`` decides a tie at the boundary.
    """
    if k < values.shape[1]:
        part = np.argpartition(-values, k - 1, axis=1)[:, :k]  # (batch, k), unordered
    else:
        part = np.broadcast_to(np.arange(values.shape[1]), values.shape)  # (batch, n)
    part_values = np.take_along_axis(values, part, axis=1)
    order = np.lexsort((part, -part_values), axis=1)  # by value descending, then index
    return np.take_along_axis(part, order, axis=1)


def _stopped(finished, live_scores, length, max_len, *, beam_size, n_best, alpha, kind) -> np.ndarray:
    """(batch,) bool: the examples that may stop after ``length`` tokens (rules 1-3 of the module doc)."""
    live = np.isfinite(live_scores)  # (batch, beam)
    # Best possible score of any continuation of a live beam: s / max(lp(length + 1), lp(max_len)).
    shortest, longest = length_normalizer(length + 1, alpha, kind), length_normalizer(max_len, alpha, kind)
    best_divisor = np.maximum(shortest, longest)  # (batch,)
    bound = np.where(live, live_scores / best_divisor[:, None], -np.inf).max(axis=1)  # (batch,)
    stopped = np.zeros(len(finished), dtype=bool)
    for example, hyps in enumerate(finished):
        if len(hyps) >= beam_size or not live[example].any():
            stopped[example] = True
        elif len(hyps) >= n_best:
            nth_best = sorted(h.score for h in hyps)[-n_best]
            stopped[example] = nth_best >= bound[example]
    return stopped
