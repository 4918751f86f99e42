"""Decoding constraints: the tokens each hypothesis may not choose at its next step, one small function each.

The one contract, for both decoding paths: a constraint is ``constraint(view, settings) -> banned``, where

* ``view`` (``StepView``) is the search at one step: ``tokens`` (rows, T), each row's hypothesis so far in
  its first ``steps[row]`` columns (without ``<s>``), ``steps`` (rows,) the step each row is at (a stream
  search has rows at different steps) and ``min_len`` (rows,) the minimum length of each row's example;
* ``settings`` is the search's ``SearchSettings``;
* ``banned`` is a ``(rows, width)`` int array of token ids the row may not choose, padded with -1, or None
  when the constraint bans nothing at this step.

``banned_ids`` gathers the constraints of ``CONSTRAINTS`` (and any extra ones) into one such array; the
device path writes ``-inf`` at those ids before its top-k (``src/transformer/generator.py``), the host
path in the full distribution (``ban``). A new constraint is one function here and one line in
``CONSTRAINTS`` (its setting, if any, a ``SearchSettings`` field)::

    >>> from src.transformer.search_settings import SearchSettings
    >>> view = StepView(np.array([[5, 6, 5]]), np.array([3]), np.array([4]))
    >>> banned_ids(view, SearchSettings(no_repeat_ngram_size=2, forbid=(0,), eos=2)).tolist()
    [[0, 2, 6, -1, -1, -1, -1, -1]]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

if TYPE_CHECKING:
    from src.transformer.search_settings import SearchSettings


class StepView(NamedTuple):
    """What a constraint sees of the search at one step (see the module docstring)."""

    tokens: np.ndarray  # (rows, T) int: row r's hypothesis in its first steps[r] columns
    steps: np.ndarray  # (rows,) int: the step of each row (the position of the token it chooses)
    min_len: np.ndarray  # (rows,) int: the minimum length (tokens before eos) of each row's example


Constraint = Callable[[StepView, "SearchSettings"], "np.ndarray | None"]


def never_generated(view: StepView, settings: SearchSettings) -> np.ndarray | None:
    """``settings.forbid`` (``<pad>``, ``<s>``, ``<mask>``: the dictionary's ``NEVER_GENERATED``) for every row."""
    if not settings.forbid:
        return None
    return np.broadcast_to(np.asarray(settings.forbid, dtype=np.int64), (len(view.steps), len(settings.forbid)))


def eos_before_min_len(view: StepView, settings: SearchSettings) -> np.ndarray:
    """``eos`` for the rows whose hypothesis is shorter than its example's minimum length. Always one
    column (-1 where ``eos`` is allowed), so that the banned ids keep one width from step to step."""
    return np.where(view.steps < view.min_len, settings.eos, -1).astype(np.int64).reshape(-1, 1)


def repeated_ngrams(view: StepView, settings: SearchSettings) -> np.ndarray | None:
    """The tokens that would repeat an n-gram (``settings.no_repeat_ngram_size``) of the row's hypothesis:
    with tokens ``[5, 6, 7, 5]`` and n = 2 the bigram ``(5, 6)`` exists, so ``6`` is banned next; with
    n = 1 every token already used is."""
    n = settings.no_repeat_ngram_size
    if not n:
        return None
    parts = []
    for step in np.unique(view.steps):
        rows = np.flatnonzero(view.steps == step)
        banned = repeated_ngram_tokens(view.tokens[rows, :step], n, int(step))
        if banned is not None:
            parts.append((rows, banned))
    if not parts:
        return None
    merged = np.full((len(view.steps), max(b.shape[1] for _, b in parts)), -1, dtype=np.int64)
    for rows, banned in parts:
        merged[rows, :banned.shape[1]] = banned
    return merged


# the constraints every search applies, in order (their settings in SearchSettings)
CONSTRAINTS: tuple[Constraint, ...] = (never_generated, eos_before_min_len, repeated_ngrams)


def banned_ids(view: StepView, settings: SearchSettings, constraints: Sequence[Constraint] = CONSTRAINTS) -> np.ndarray:
    """``(rows, width)`` every token id the ``constraints`` ban, padded with -1; ``width`` a multiple of 4 (at
    least 4), so that a compiled consumer sees few shapes."""
    rows = len(view.steps)
    columns = [banned for banned in (constraint(view, settings) for constraint in constraints) if banned is not None]
    banned = np.concatenate(columns, axis=1) if columns else np.zeros((rows, 0), dtype=np.int64)
    width = max(-(-banned.shape[1] // 4) * 4, 4)
    return np.pad(banned, ((0, 0), (0, width - banned.shape[1])), constant_values=-1)


def ban(log_probs: np.ndarray, banned: np.ndarray) -> np.ndarray:
    """``log_probs`` (rows, vocab) with ``-inf`` at the ``banned`` ids (rows, width; -1: none), as a new array.

    >>> ban(np.zeros((2, 3)), np.array([[0, -1], [2, 1]])).tolist()
    [[-inf, 0.0, 0.0], [0.0, -inf, -inf]]
    """
    out = np.array(log_probs, copy=True)
    rows, columns = np.nonzero(banned >= 0)
    out[rows, banned[rows, columns]] = -np.inf
    return out


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
    """``(rows, width)`` the tokens that would complete an ``n``-gram already in each row's hypothesis
    ``tokens`` (rows, step), padded with -1 (width a multiple of 4); None when no row has any."""
    if n < 1:
        raise ValueError(f"no_repeat_ngram_size must be >= 1 here, got {n}")
    rows, ids = _ngram_completions(tokens, n, step)
    if not len(rows):
        return None
    counts = np.bincount(rows, minlength=tokens.shape[0])
    width = -(-int(counts.max()) // 4) * 4
    banned = np.full((tokens.shape[0], width), -1, dtype=np.int64)
    slot = np.arange(len(rows)) - np.concatenate([[0], np.cumsum(counts)[:-1]])[rows]  # rank inside its row
    banned[rows, slot] = ids
    return banned
