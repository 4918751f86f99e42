"""Process pools for the data-preparation stages: ordered, bounded, and loud about worker errors.

``concurrent.futures`` rather than ``multiprocessing.Pool``: a worker that dies raises
BrokenProcessPool instead of being respawned forever, and errors raised in a task re-raise here.
"""

import collections
import os
import signal
import threading
import time
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
    """A process pool for :func:`ordered_pool_map`; None when ``processes`` <= 1 (work in-process).

    Its workers end when the parent process dies, even by ``kill -9`` (which gives the parent no chance
    to shut the pool down)."""
    if processes <= 1:
        return None
    return ProcessPoolExecutor(processes, initializer=_worker_start, initargs=(os.getpid(), initializer, initargs))


def _worker_start(parent_pid, initializer, initargs):
    _die_with_parent(parent_pid)
    if initializer is not None:
        initializer(*initargs)


def _die_with_parent(parent_pid):
    """Linux: ask the kernel for SIGKILL when the parent dies; elsewhere (and as a fallback, since the
    request is tied to the thread that forked) a daemon thread that exits when the parent is gone."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass

    def watch():
        while os.getppid() == parent_pid:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="die-with-parent").start()
    if os.getppid() != parent_pid:  # the parent died before we got here
        os._exit(1)


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
