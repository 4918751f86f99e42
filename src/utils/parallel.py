"""Process pools for the data-preparation stages: ordered, bounded, and loud about worker errors.

``concurrent.futures`` rather than ``multiprocessing.Pool``: a worker that dies raises
BrokenProcessPool instead of being respawned forever, and errors raised in a task re-raise here.
"""

import collections
from concurrent.futures import ProcessPoolExecutor

from src.utils.fileio import iter_lines

CHUNK_LINES = 2000


def ordered_pool_map(pool, func, iterable, max_in_flight):
    """Like ``pool.imap(func, iterable)`` (ordered, worker errors re-raised) but with at most
    ``max_in_flight`` tasks queued, so reading never runs ahead of processing and memory stays bounded.

    ``pool`` is a ``concurrent.futures`` executor (a dead worker raises BrokenProcessPool instead of
    hanging as ``multiprocessing.Pool`` would), or None to map in this process.
    """
    if pool is None:
        yield from map(func, iterable)
        return
    pending = collections.deque()
    for item in iterable:
        pending.append(pool.submit(func, item))
        if len(pending) >= max_in_flight:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


def make_pool(processes, initializer=None, initargs=()):
    """A process pool for :func:`ordered_pool_map`; None when ``processes`` <= 1 (work in-process)."""
    if processes <= 1:
        return None
    return ProcessPoolExecutor(processes, initializer=initializer, initargs=initargs)


def close_pool(pool, failed):
    """Shut a pool down: wait for the workers on success, drop queued tasks on failure."""
    if pool is not None:
        pool.shutdown(wait=True, cancel_futures=failed)


def chunked(items, size):
    """Yield lists of up to ``size`` consecutive items."""
    chunk = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def chunked_lines(path, chunk_lines=CHUNK_LINES, numbered=False):
    """Yield lists of up to ``chunk_lines`` lines of ``path`` (``(line_no, line)`` pairs when
    ``numbered``); a UserError on undecodable bytes."""
    lines = iter_lines(path) if numbered else (line for _, line in iter_lines(path))
    return chunked(lines, chunk_lines)
