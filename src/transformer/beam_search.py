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
where the log-probabilities are (e.g. on the device, see src/transformer/generator.py), leaving out the
token ids the constraints ban (one contract for both paths: src/transformer/decoding_constraints.py);
without one, the banned ids of the full distribution of ``step_fn`` are set to ``-inf`` and it is reduced
here. Both give the same hypotheses (ties at a row's k-th candidate aside).
"""

from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np

from src.transformer.decoding_constraints import CONSTRAINTS, Constraint, StepView, ban, banned_ids
from src.transformer.search_settings import SearchSettings


class Hypothesis(NamedTuple):
    tokens: list[int]  # generated tokens, without <s>, ending with </s> when it was emitted
    score: float  # log_prob / length_normalizer(len(tokens)): the ranking key
    log_prob: float  # summed log-probability of the tokens


StepFn = Callable[[np.ndarray, np.ndarray | None, int], np.ndarray]


class Candidates(NamedTuple):
    """The ``k`` best tokens of every row, best first, after the constraints."""

    log_probs: np.ndarray  # (rows, k) float
    tokens: np.ndarray  # (rows, k) int


# (last, beam_indices, step, k, banned) -> Candidates; banned: (rows, width) ids, -1 padded (decoding_constraints)
TopKFn = Callable[[np.ndarray, np.ndarray | None, int, int, np.ndarray], Candidates]


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


def beam_search(step_fn: StepFn | None, batch_size: int, settings: SearchSettings, *, max_len, min_len=None,
                constraints: Sequence[Constraint] | None = None,
                topk_fn: TopKFn | None = None) -> list[list[Hypothesis]]:
    """Up to ``settings.n_best`` hypotheses per example, best first (see the module docstring for the rules).

    ``max_len`` (generated tokens, ``eos`` included) is an int or a ``(batch_size,)`` array;
    ``min_len`` (tokens before ``eos``), an int or array, replaces ``settings.min_len`` when given.
    ``constraints`` (``src/transformer/decoding_constraints.py``) are applied after the built-in ones, on
    either path. Give ``step_fn`` (full log-probabilities: the banned ids are set to ``-inf`` here) or
    ``topk_fn`` (per-row candidates: it gets the banned ids and must leave them out).
    """
    if (step_fn is None) == (topk_fn is None):
        raise ValueError("give exactly one of step_fn and topk_fn")
    beam_size = settings.beam_size
    max_len = _lengths(max_len, batch_size)
    min_len = settings.min_len if min_len is None else min_len
    state = BeamBatch(batch_size, settings, max_len=int(max_len.max()),
                      constraints=(*CONSTRAINTS, *(constraints or ())))
    state.start(np.arange(batch_size), max_len, np.broadcast_to(np.asarray(min_len), (batch_size,)))

    for step in range(int(max_len.max())):  # every example is at this step
        banned = state.banned()
        if topk_fn is not None:
            cand = topk_fn(state.last, state.beam_indices, step, 2 * beam_size, banned)
        else:
            log_probs = np.asarray(step_fn(state.last, state.beam_indices, step), dtype=np.float64)  # (rows, vocab)
            cand = row_candidates(ban(log_probs, banned), 2 * beam_size)
        state.advance(cand)
        if state.done.all():
            break

    return [state.result(example) for example in range(batch_size)]


RefillFn = Callable[[np.ndarray, np.ndarray], None]


def stream_beam_search(topk_fn: TopKFn, count: int, settings: SearchSettings, *, batch_size: int, max_len,
                       min_len=None, constraints: Sequence[Constraint] = (), refill_fn: RefillFn | None = None,
                       on_done: Callable[[int], None] | None = None) -> list[list[Hypothesis]]:
    """``beam_search`` of ``count`` examples through ``batch_size`` example slots, each example entering a
    slot as soon as one is free (its example stopped), so that the rows a step computes belong to examples
    still searching. Examples enter in order (0, 1, ...); each example's hypotheses are those of
    ``beam_search`` on it alone.

    Slots are at different steps: ``topk_fn(last, beam_indices, positions, k, banned)`` gets ``positions``
    (rows,) int, each row's step (the position of the token it decodes), instead of one step; a row of a
    slot that just received an example has ``bos`` as its last token and itself as its beam index (a row
    of an empty slot too, its candidates unused). ``refill_fn(slots, examples)`` is called before the step
    at which ``examples`` enter ``slots`` (both (n,) int arrays), for the caller to bring its per-example
    state there (memory, cache); ``on_done(example)`` is called as an example's search ends. ``max_len`` and
    ``min_len`` (None: ``settings.min_len``): ints or ``(count,)`` arrays; ``constraints``: extra ones, as
    in ``beam_search``.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    beam_size = settings.beam_size
    max_len = _lengths(max_len, count)
    min_len = np.broadcast_to(np.asarray(settings.min_len if min_len is None else min_len), (count,))
    state = BeamBatch(batch_size, settings, max_len=int(max_len.max(initial=1)),
                      constraints=(*CONSTRAINTS, *constraints))
    results: list[list[Hypothesis]] = [[] for _ in range(count)]
    owner = np.full(batch_size, -1)  # (batch,): the example in each slot, -1 for none
    waiting = 0  # the next example to enter
    while True:
        free = np.flatnonzero(state.done)[:count - waiting]
        if len(free):
            examples = np.arange(waiting, waiting + len(free))
            if refill_fn is not None:
                refill_fn(free, examples)
            state.start(free, max_len[examples], min_len[examples])
            owner[free], waiting = examples, waiting + len(free)
        if state.done.all():
            return results
        cand = topk_fn(state.last, state.beam_indices, state.row_steps(), 2 * beam_size, state.banned())
        for slot in state.advance(cand):
            example = int(owner[slot])
            results[example], owner[slot] = state.result(slot), -1
            if on_done is not None:
                on_done(example)


class BeamBatch:
    """The search state of ``batch_size`` example slots of ``beam_size`` rows each (``row = slot * beam + k``),
    each slot at its own step: ``start`` puts examples in slots, ``banned`` and ``advance`` make one step of
    every slot (the rules of the module docstring), ``result`` reads a stopped example's hypotheses.

    A slot without a (searching) example is ``done``: its rows are dead (score -inf), their candidates
    ignored. ``last`` (rows,) are the tokens to decode next, ``beam_indices`` (rows,) the row each row
    continues (None before the first step), ``tokens`` (rows, max_len) the hypotheses (a row's first
    ``steps`` of its slot).
    """

    def __init__(self, batch_size: int, settings: SearchSettings, *, max_len: int,
                 constraints: Sequence[Constraint] = CONSTRAINTS):
        beam_size = settings.beam_size
        self.settings, self.constraints = settings, tuple(constraints)
        self.batch, self.beam, self.bos, self.eos = batch_size, beam_size, settings.bos, settings.eos
        self.n_best, self.alpha, self.kind = settings.n_best, settings.length_penalty, settings.length_penalty_type
        rows = batch_size * beam_size
        self.scores = np.full(rows, -np.inf)  # (rows,) summed log-probs, -inf for a dead row
        self.last = np.full(rows, self.eos, dtype=np.int64)  # (rows,)
        self.tokens = np.zeros((rows, max_len), dtype=np.int64)  # (rows, max_len)
        self.beam_indices = None
        self.steps = np.zeros(batch_size, dtype=np.int64)  # (batch,) tokens generated per slot
        self.max_len = np.ones(batch_size, dtype=np.int64)
        self.min_len = np.zeros(batch_size, dtype=np.int64)
        self.finished: list[list[Hypothesis]] = [[] for _ in range(batch_size)]
        self.done = np.ones(batch_size, dtype=bool)

    def start(self, slots: np.ndarray, max_len: np.ndarray, min_len: np.ndarray):
        """Put new examples in ``slots`` (n,), at most ``max_len`` (n,) tokens each, at least ``min_len``
        before ``eos``."""
        max_len = _lengths(max_len, len(slots))
        if max_len.max(initial=0) > self.tokens.shape[1]:
            raise ValueError(f"max_len {max_len.max()} exceeds the search's {self.tokens.shape[1]}")
        rows = slot_rows(slots, self.beam)  # (n * beam,)
        # only beam 0 of an example is live at first: the others would duplicate it
        self.scores[rows] = np.tile(np.r_[0.0, np.full(self.beam - 1, -np.inf)], len(slots))
        self.last[rows] = self.bos
        if self.beam_indices is not None:
            self.beam_indices[rows] = rows
        self.steps[slots], self.max_len[slots], self.min_len[slots] = 0, max_len, min_len
        for slot in slots:
            self.finished[slot] = []
        self.done[slots] = False

    def row_steps(self) -> np.ndarray:
        """(rows,) the step of each row's slot: the position of the token it decodes next."""
        return np.repeat(self.steps, self.beam)

    def banned(self) -> np.ndarray:
        """(rows, width) the token ids each row may not choose at its next step (-1 padded): every
        constraint's (``decoding_constraints.banned_ids``), each row at its own step."""
        view = StepView(self.tokens, self.row_steps(), np.repeat(self.min_len, self.beam))
        return banned_ids(view, self.settings, self.constraints)

    def advance(self, cand: Candidates) -> np.ndarray:
        """One step of every searching slot from each row's candidates (rows, k); returns the slots whose
        example stopped at this step (``done`` from now on)."""
        batch_size, beam_size, eos = self.batch, self.beam, self.eos
        rows = batch_size * beam_size
        k = cand.tokens.shape[1]
        # (batch, beam * k): every row's candidates with the row's summed log-prob
        values = self.scores[:, None] + np.asarray(cand.log_probs, dtype=np.float64)
        values = values.reshape(batch_size, beam_size * k)
        cand_tokens = np.asarray(cand.tokens, dtype=np.int64).reshape(batch_size, beam_size * k)
        beam_of = np.repeat(np.arange(beam_size), k)[None, :]  # (1, beam * k): the candidate's beam
        # by summed log-prob, then (beam, token): the order of the flat (beam * vocab) index
        order = np.lexsort((np.broadcast_to(cand_tokens, values.shape), np.broadcast_to(beam_of, values.shape),
                            -values), axis=1)[:, :min(2 * beam_size, beam_size * k)]  # (batch, 2 * beam)
        top_scores = np.take_along_axis(values, order, axis=1)  # (batch, 2 * beam)
        parent = np.arange(batch_size)[:, None] * beam_size + order // k  # (batch, 2 * beam) rows
        token = np.take_along_axis(cand_tokens, order, axis=1)  # (batch, 2 * beam)

        was_done = self.done.copy()
        usable = np.isfinite(top_scores) & ~was_done[:, None]  # (batch, 2 * beam)
        at_limit = (self.steps + 1 >= self.max_len)[:, None]  # (batch, 1): this token is the last allowed
        rank = np.arange(order.shape[1])[None, :]  # (1, 2 * beam)
        ends = usable & (rank < beam_size) & ((token == eos) | at_limit)
        for example, j in zip(*np.nonzero(ends), strict=True):
            sequence = self.tokens[parent[example, j], :self.steps[example]].tolist() + [int(token[example, j])]
            total = float(top_scores[example, j])
            score = total / float(length_normalizer(len(sequence), self.alpha, self.kind))
            self.finished[example].append(Hypothesis(sequence, score, total))

        # The first beam_size continuing candidates of each example become the live beams.
        continues = usable & (token != eos) & ~at_limit  # (batch, 2 * beam)
        chosen = np.argsort(~continues, axis=1, kind="stable")[:, :beam_size]  # (batch, beam)
        live = np.take_along_axis(continues, chosen, axis=1)  # (batch, beam)
        own_row = np.arange(rows).reshape(batch_size, beam_size)  # a dead row points at itself
        self.beam_indices = np.where(live, np.take_along_axis(parent, chosen, axis=1), own_row).reshape(rows)
        self.last = np.where(live, np.take_along_axis(token, chosen, axis=1), eos).reshape(rows)  # (rows,)
        scores = np.where(live, np.take_along_axis(top_scores, chosen, axis=1), -np.inf).reshape(rows)
        self.tokens = self.tokens[self.beam_indices]
        self.tokens[np.arange(rows), self.row_steps()] = self.last  # (rows, max_len)

        self.done |= _stopped(self.finished, scores.reshape(batch_size, beam_size), self.steps + 1, self.max_len,
                              beam_size=beam_size, n_best=self.n_best, alpha=self.alpha, kind=self.kind)
        self.scores = np.where(np.repeat(self.done, beam_size), -np.inf, scores)  # (rows,)
        self.steps += ~self.done  # a stopped slot stays at its last step (a position its rows may still decode)
        return np.flatnonzero(self.done & ~was_done)

    def result(self, slot: int) -> list[Hypothesis]:
        """The ``n_best`` hypotheses of the example in ``slot``, best first (ties: the earlier)."""
        return sorted(self.finished[slot], key=lambda h: -h.score)[:self.n_best]  # stable: ties by age


def slot_rows(slots, beam: int) -> np.ndarray:
    """The rows of example ``slots`` (n,), ``slot * beam + k``, slot by slot.

    >>> slot_rows([2, 0], 2).tolist()
    [4, 5, 0, 1]
    """
    return (np.asarray(slots)[:, None] * beam + np.arange(beam)).reshape(-1)


def _lengths(max_len, count: int) -> np.ndarray:
    max_len = np.broadcast_to(np.asarray(max_len, dtype=np.int64), (count,))  # (count,)
    if max_len.min(initial=1) < 1:
        raise ValueError(f"max_len must be >= 1, got {max_len.min()}")
    return max_len


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
