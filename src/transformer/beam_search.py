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

Only the ``2 * beam_size`` best tokens of each row can enter an example's ``2 * beam_size`` best
extensions (a row's summed log-prob is the same for all its tokens), so the search ranks the per-row
candidates (``Candidates``) rather than the whole ``(rows, vocab)`` array. A ``topk_fn`` computes them
where the log-probabilities are (e.g. on the device, see src/transformer/generator.py), applying the
constraints of ``StepConstraints`` itself; without one, the full distribution of ``step_fn`` is
constrained and reduced here. Both give the same hypotheses (ties at a row's k-th candidate aside).
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
    repeated_ngram_tokens,
)


class Hypothesis(NamedTuple):
    tokens: list[int]  # generated tokens, without <s>, ending with </s> when it was emitted
    score: float  # log_prob / length_normalizer(len(tokens)): the ranking key
    log_prob: float  # summed log-probability of the tokens


StepFn = Callable[[np.ndarray, np.ndarray | None, int], np.ndarray]


class StepConstraints(NamedTuple):
    """What a ``topk_fn`` must forbid before choosing its candidates, at one step."""

    forbid: tuple  # token ids never generated
    eos: int
    eos_blocked: np.ndarray  # (rows,) bool: eos is forbidden (the minimum length is not reached)
    banned: np.ndarray | None  # (rows, width) int: tokens that would repeat an n-gram, -1 = none


class Candidates(NamedTuple):
    """The ``k`` best tokens of every row, best first, after the constraints."""

    log_probs: np.ndarray  # (rows, k) float
    tokens: np.ndarray  # (rows, k) int


TopKFn = Callable[[np.ndarray, np.ndarray | None, int, int, StepConstraints], Candidates]


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


def beam_search(step_fn: StepFn | None, batch_size: int, *, beam_size: int, bos: int, eos: int, max_len,
                min_len=0, length_penalty: float = 1.0, length_penalty_type: str = "gnmt",
                no_repeat_ngram_size: int = 0, n_best: int = 1, forbid: Sequence[int] = (0, 4),
                constraints: Sequence[Constraint] | None = None,
                topk_fn: TopKFn | None = None) -> list[list[Hypothesis]]:
    """Up to ``n_best`` hypotheses per example, best first (see the module docstring for the rules).

    ``max_len`` and ``min_len`` are ints or ``(batch_size,)`` arrays (generated tokens, ``eos``
    included for ``max_len``; excluded for ``min_len``). ``forbid`` lists token ids never generated;
    ``constraints`` are extra functions ``(tokens, log_probs, step) -> log_probs`` applied after the
    built-in ones, on all ``rows`` (they need the full distribution: ``step_fn``, not ``topk_fn``).
    Give ``step_fn`` (full log-probabilities) or ``topk_fn`` (per-row candidates, constraints applied).
    """
    if (step_fn is None) == (topk_fn is None):
        raise ValueError("give exactly one of step_fn and topk_fn")
    if topk_fn is not None and constraints:
        raise ValueError("custom constraints need the full distribution: give step_fn, not topk_fn")
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
    row_min_len = np.broadcast_to(np.asarray(min_len), (batch_size,))[row_example]  # (rows,)

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
        if topk_fn is not None:
            banned = repeated_ngram_tokens(tokens, no_repeat_ngram_size, step) if no_repeat_ngram_size else None
            rules = StepConstraints(tuple(forbid), eos, step < row_min_len, banned)
            cand = topk_fn(last, beam_indices, step, 2 * beam_size, rules)
        else:
            log_probs = np.asarray(step_fn(last, beam_indices, step), dtype=np.float64)  # (rows, vocab)
            log_probs = apply_constraints(all_constraints, tokens, log_probs, step)
            cand = row_candidates(log_probs, 2 * beam_size)
        k = cand.tokens.shape[1]
        # (batch, beam * k): every row's candidates with the row's summed log-prob
        values = (scores[:, None] + np.asarray(cand.log_probs, dtype=np.float64)).reshape(batch_size, beam_size * k)
        cand_tokens = np.asarray(cand.tokens, dtype=np.int64).reshape(batch_size, beam_size * k)
        beam_of = np.repeat(np.arange(beam_size), k)[None, :]  # (1, beam * k): the candidate's beam
        # by summed log-prob, then (beam, token): the order of the flat (beam * vocab) index
        order = np.lexsort((np.broadcast_to(cand_tokens, values.shape), np.broadcast_to(beam_of, values.shape),
                            -values), axis=1)[:, :min(2 * beam_size, beam_size * k)]  # (batch, 2 * beam)
        top_scores = np.take_along_axis(values, order, axis=1)  # (batch, 2 * beam)
        parent = np.arange(batch_size)[:, None] * beam_size + order // k  # (batch, 2 * beam) rows
        token = np.take_along_axis(cand_tokens, order, axis=1)  # (batch, 2 * beam)

        usable = np.isfinite(top_scores) & ~done[:, None]  # (batch, 2 * beam)
        at_limit = (step + 1 >= max_len)[:, None]  # (batch, 1): this token is the last allowed
        rank = np.arange(order.shape[1])[None, :]  # (1, 2 * beam)
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


def row_candidates(log_probs: np.ndarray, k: int) -> Candidates:
    """The ``k`` best tokens of each row of ``log_probs`` (rows, vocab), best first (ties by token id)."""
    top = _top_k(log_probs, min(k, log_probs.shape[1]))
    return Candidates(np.take_along_axis(log_probs, top, axis=1), top)


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
