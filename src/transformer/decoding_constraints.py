"""Decoding constraints: small pure NumPy functions that forbid tokens at one decoding step.

Every constraint has the signature ``(tokens, log_probs, step) -> log_probs``:

* ``tokens``: ``(rows, step)`` int array, the hypothesis of each row so far, without ``<s>``;
* ``log_probs``: ``(rows, vocab)`` float array for the token about to be chosen at ``step``;
* the result is a new array with ``-inf`` where a token is forbidden; the inputs are never modified.

The factories below return such functions; ``apply_constraints`` runs a list of them in order, so
the search loop never has to know what a constraint does::

    >>> lp = np.zeros((1, 3))
    >>> apply_constraints([forbid_tokens([0]), min_length(2, eos=2)], np.zeros((1, 1), int), lp, 1)
    array([[-inf,   0., -inf]])
"""

from collections.abc import Callable, Iterable, Sequence

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

Constraint = Callable[[np.ndarray, np.ndarray, int], np.ndarray]


def forbid_tokens(ids: Iterable[int]) -> Constraint:
    """Never choose any of ``ids`` (e.g. ``<pad>``, ``<unk>``, ``<mask>``, ``<s>``)."""
    ids = np.asarray(sorted(set(ids)), dtype=np.int64)

    def constraint(tokens, log_probs, step):
        out = log_probs.copy()
        out[:, ids] = -np.inf
        return out

    return constraint


def min_length(n, eos: int) -> Constraint:
    """Forbid ``eos`` until the hypothesis holds ``n`` tokens (``eos`` excluded).

    ``n`` is an int or a ``(rows,)`` array, one minimum per row.
    """
    n = np.asarray(n)

    def constraint(tokens, log_probs, step):
        out = log_probs.copy()
        out[:, eos] = np.where(step < n, -np.inf, out[:, eos])
        return out

    return constraint


def force_eos_at(max_len, eos: int) -> Constraint:
    """At the last step of a ``max_len``-token hypothesis (``eos`` included) allow only ``eos``.

    ``max_len`` is an int or a ``(rows,)`` array. Without this constraint, beam search ends a
    hypothesis at ``max_len`` tokens without ``eos``.
    """
    max_len = np.asarray(max_len)

    def constraint(tokens, log_probs, step):
        last = np.broadcast_to(step + 1 >= max_len, (log_probs.shape[0],))  # (rows,)
        out = log_probs.copy()
        keep_eos = out[last, eos]
        out[last] = -np.inf
        out[last, eos] = keep_eos
        return out

    return constraint


def _ngram_completions(tokens: np.ndarray, n: int, step: int) -> tuple[np.ndarray, np.ndarray]:
    """``(rows, ids)``: row ``rows[i]`` would repeat an ``n``-gram of its hypothesis with token ``ids[i]``."""
    if step < n:  # no complete n-gram yet
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    windows = sliding_window_view(tokens, n, axis=1)  # (rows, step - n + 1, n)
    suffix = tokens[:, step - n + 1:]  # (rows, n - 1): the n-gram about to be completed
    matches = (windows[:, :, :n - 1] == suffix[:, None, :]).all(axis=-1)  # (rows, step - n + 1)
    rows, starts = np.nonzero(matches)
    return rows, windows[rows, starts, n - 1]


def repeated_ngram_tokens(tokens: np.ndarray, n: int, step: int) -> np.ndarray | None:
    """``(rows, width)`` the tokens that would complete an ``n``-gram already in each row's hypothesis,
    padded with -1 (width a multiple of 4, so that a compiled consumer sees few shapes); None when no
    row has any."""
    rows, ids = _ngram_completions(tokens, n, step)
    if not len(rows):
        return None
    counts = np.bincount(rows, minlength=tokens.shape[0])
    width = -(-int(counts.max()) // 4) * 4
    banned = np.full((tokens.shape[0], width), -1, dtype=np.int64)
    slot = np.arange(len(rows)) - np.concatenate([[0], np.cumsum(counts)[:-1]])[rows]  # rank inside its row
    banned[rows, slot] = ids
    return banned


def no_repeat_ngram(n: int) -> Constraint:
    """Forbid a token that would complete an ``n``-gram already present in the hypothesis.

    With tokens ``[5, 6, 7, 5]`` and ``n = 2`` the bigram ``(5, 6)`` exists, so ``6`` is forbidden
    next; with ``n = 1`` every token already used is forbidden.
    """
    if n < 1:
        raise ValueError(f"no_repeat_ngram needs n >= 1, got {n}")

    def constraint(tokens, log_probs, step):
        out = log_probs.copy()
        rows, ids = _ngram_completions(tokens, n, step)
        out[rows, ids] = -np.inf
        return out

    return constraint


def apply_constraints(constraints: Sequence[Constraint], tokens: np.ndarray, log_probs: np.ndarray,
                      step: int) -> np.ndarray:
    """Apply ``constraints`` in order; returns a new array (``log_probs`` itself when the list is empty)."""
    for constraint in constraints:
        log_probs = constraint(tokens, log_probs, step)
    return log_probs
