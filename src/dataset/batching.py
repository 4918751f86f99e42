"""Truncation, padding and batch widths of id sequences: the one definition used by the loader, the
generator, evaluation and the benchmarks.

Sequences are 1-D int arrays that end with ``</s>``; batches are ``(batch, width)`` int32 arrays,
right-padded with ``<pad>`` = 0. Widths are rounded up to a multiple, so a jit-compiled step sees few
distinct shapes (each new shape is compiled once).
"""

import numpy as np

from src.text.dictionary import EOS_ID, PAD_ID


def round_up(length: int, multiple: int) -> int:
    """``length`` rounded up to a multiple of ``multiple`` (unchanged for a multiple of 1 or less).

    >>> round_up(9, 8), round_up(16, 8), round_up(5, 1)
    (16, 16, 5)
    """
    return int(-(-length // multiple) * multiple) if multiple > 1 else int(length)


def cut(ids, max_len):
    """``ids`` cut to ``max_len`` tokens; a sequence that ended with ``</s>`` still does.

    >>> cut(np.array([7, 8, 9, 2]), 3).tolist(), cut(np.array([7, 8, 9]), 2).tolist()
    ([7, 8, 2], [7, 8])
    """
    if not max_len or len(ids) <= max_len:
        return ids
    if ids[-1] == EOS_ID:
        return np.concatenate([ids[: max_len - 1], [EOS_ID]]).astype(ids.dtype)
    return ids[:max_len]


def unpad(batch) -> list:
    """The rows of a right-padded ``(batch, width)`` array without their padding."""
    batch = np.asarray(batch)
    lengths = (batch != PAD_ID).sum(axis=1)
    return [row[:n] for row, n in zip(batch, lengths, strict=True)]


def cut_batch(batch, max_len: int) -> np.ndarray:
    """:func:`cut` applied to every row of a right-padded batch, which keeps its width if it fits.

    >>> cut_batch(np.array([[7, 8, 9, 2], [7, 2, 0, 0]]), 3)
    array([[7, 8, 2],
           [7, 2, 0]])
    """
    batch = np.asarray(batch)
    if batch.shape[1] <= max_len:
        return batch
    out = np.full((len(batch), max_len), PAD_ID, dtype=batch.dtype)
    for i, row in enumerate(unpad(batch)):
        row = cut(row, max_len)
        out[i, : len(row)] = row
    return out


def pad_width(batch, multiple: int, limit: int | None = None) -> np.ndarray:
    """``batch`` (rows, width) right-padded with ``<pad>`` to ``round_up(width, multiple)`` columns, at most
    ``limit`` (never fewer than it has), as int32.

    >>> pad_width(np.array([[5, 2]]), 4).tolist(), pad_width(np.array([[5, 2]]), 8, limit=3).tolist()
    ([[5, 2, 0, 0]], [[5, 2, 0]])
    """
    batch = np.asarray(batch)
    width = round_up(batch.shape[1], multiple)
    if limit is not None:
        width = min(width, max(limit, batch.shape[1]))
    if width == batch.shape[1]:
        return batch.astype(np.int32)
    return np.pad(batch, ((0, 0), (0, width - batch.shape[1])), constant_values=PAD_ID).astype(np.int32)


def pad_batch(columns, multiple: int = 1) -> list:
    """Right-pad each list of 1-D arrays to a common length rounded up to ``multiple``.

    >>> [a.tolist() for a in pad_batch([[np.array([5, 6, 2]), np.array([7, 2])]], multiple=4)]
    [[[5, 6, 2, 0], [7, 2, 0, 0]]]
    """
    out = []
    for arrays in columns:
        width = round_up(max(len(a) for a in arrays), multiple)
        batch = np.full((len(arrays), width), PAD_ID, dtype=np.int32)
        for row, a in enumerate(arrays):
            batch[row, : len(a)] = a
        out.append(batch)
    return out


def sort_by_length(sequences) -> list[int]:
    """Indices of ``sequences`` longest first (batches of similar lengths waste less padding).

    >>> sort_by_length([[1], [1, 2, 3], [1, 2]])
    [1, 2, 0]
    """
    return sorted(range(len(sequences)), key=lambda i: -len(sequences[i]))


def batch_ids(sequences, batch_size: int, fill: bool = False):
    """Yield ``(indices, padded (batch, len) int32)`` over ``sequences`` (1-D id arrays), longest first.

    With ``fill``, a last batch shorter than ``batch_size`` (when there are several batches) is filled
    up with copies of its first row: the rows after ``len(indices)`` are those copies, to be ignored.
    A decoder compiled per batch shape then reuses the full batches' graphs.

    >>> [(i, p.tolist()) for i, p in batch_ids([[5], [6, 7], [8, 9, 3]], 2, fill=True)]
    [([2, 1], [[8, 9, 3], [6, 7, 0]]), ([0], [[5], [5]])]
    """
    order = sort_by_length(sequences)
    for start in range(0, len(order), batch_size):
        chosen = order[start:start + batch_size]
        rows = [np.asarray(sequences[i]) for i in chosen]
        if fill and start > 0:
            rows += rows[:1] * (batch_size - len(rows))
        (padded,) = pad_batch([rows])
        yield chosen, padded




def fixed_shape_batches(batches, rows: int, multiple: int = 1):
    """Teacher-forced batches (4 columns: source, decoder input, positions, labels) re-cut to one shape:
    ``rows`` rows, the source as wide as the widest source and the three target columns as wide as the
    widest target, each rounded up to ``multiple``.

    A graph compiled per batch shape keeps its own memory (hundreds of MB each for the small preset), so
    scoring every batch in one shape bounds that to one graph. All the batches are read first (scoring
    sets are small), each row's padding dropped and made again. Rows keep their order; the last batch is
    filled with copies of its first row whose labels are all ``<pad>``: they count no token, so the sum of
    a per-token loss over the filled batch is unchanged.

    >>> out = list(fixed_shape_batches([[np.array([[5, 2, 0], [7, 5, 2]]), np.array([[1, 6], [1, 0]]),
    ...                                  np.array([[0, 1], [0, 0]]), np.array([[6, 2], [2, 0]])]], rows=3))
    >>> [c.tolist() for c in out[0]]
    [[[5, 2, 0], [7, 5, 2], [5, 2, 0]], [[1, 6], [1, 0], [1, 6]], [[0, 1], [0, 0], [0, 1]], [[6, 2], [2, 0], [0, 0]]]
    """
    examples = [tuple(np.trim_zeros(c, "b") for c in row)  # trailing <pad> (0) is made again below
                for batch in batches for row in zip(*(np.asarray(c, dtype=np.int32) for c in batch), strict=True)]
    if not examples:
        return
    src_width = round_up(max(1, max(len(e[0]) for e in examples)), multiple)
    tgt_width = round_up(max(1, max(len(c) for e in examples for c in e[1:])), multiple)
    for start in range(0, len(examples), rows):
        chunk = examples[start:start + rows]
        out = []
        for c, width in enumerate((src_width, tgt_width, tgt_width, tgt_width)):
            column = np.full((rows, width), PAD_ID, dtype=np.int32)
            for r, example in enumerate(chunk):
                column[r, : len(example[c])] = example[c]
            if c < 3:  # filler rows: copies of the first row, real keys to attend to, nothing to score
                column[len(chunk):] = column[0]
            out.append(column)
        yield tuple(out)
