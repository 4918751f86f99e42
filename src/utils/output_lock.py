"""One writer per output: a lock file that names its holder.

Two train.py on one run folder, two eval.py on one hypotheses file or two builds of one dataset would
interleave their files. :func:`hold` takes an exclusive ``flock`` on a lock file next to the output
(``<folder>/.lock`` for a folder, ``.<name>.lock`` beside a file) and writes the holder into it: pid,
process start time, host and command line. A second writer is refused with
``<output>: in use by pid N (started ...)``. The kernel releases a ``flock`` when its process dies, however
it dies, so the lock file a dead writer left is simply taken over (its holder is logged); the holder
removes the file when it is done.

A ``flock`` belongs to the open file, and a forked child shares its parent's open files: a pool worker
that outlived a killed builder by a moment would keep the lock held. Every lock this process holds is
therefore closed in a child right after ``fork`` (``os.register_at_fork``), so only the writer itself
ever holds it.
"""

import contextlib
import errno
import fcntl
import json
import logging
import os
import socket
import sys
import time
from pathlib import Path

from src.utils.errors import UserError

logger = logging.getLogger(__name__)

FOLDER_LOCK = ".lock"

_HELD: set[int] = set()  # descriptors of the locks this process holds


def _close_in_child():
    """After ``fork``, in the child: drop the parent's locks (closing a copy leaves the parent's lock)."""
    for fd in _HELD:
        with contextlib.suppress(OSError):
            os.close(fd)
    _HELD.clear()


os.register_at_fork(after_in_child=_close_in_child)


def lock_file_for(output) -> Path:
    """Where the lock of ``output`` lives: ``<folder>/.lock`` for an existing folder, else
    ``.<name>.lock`` beside it.

    >>> str(lock_file_for("out/hyps.txt"))
    'out/.hyps.txt.lock'
    """
    output = Path(output)
    return output / FOLDER_LOCK if output.is_dir() else output.with_name(f".{output.name}.lock")


def process_start(pid: int) -> tuple[int, str] | None:
    """``(clock ticks since boot, local time)`` at which process ``pid`` started, or None if it is gone
    (Linux ``/proc``): a later process that got the same pid has another start."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        ticks = int(stat.rsplit(")", 1)[1].split()[19])  # field 22; the command name may hold ") "
        boot = next(int(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime "))
    except (OSError, ValueError, IndexError, StopIteration):
        return None
    seconds = boot + ticks / os.sysconf("SC_CLK_TCK")
    return ticks, time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(seconds))


def holder_of(lock_path) -> dict:
    """What a lock file says about its holder (``{}`` if it is missing or unreadable)."""
    try:
        holder = json.loads(Path(lock_path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return holder if isinstance(holder, dict) else {}


def describe(holder: dict) -> str:
    """``pid 123 (started 2025-01-02 10:11:12 on host, python train.py ...)`` from a lock file's content."""
    if not holder.get("pid"):
        return "another process (it has not written its pid yet)"
    where = f" on {holder['host']}" if holder.get("host") and holder["host"] != socket.gethostname() else ""
    command = f", {holder['command'][:120]}" if holder.get("command") else ""
    return f"pid {holder['pid']} (started {holder.get('started', '?')}{where}{command})"


@contextlib.contextmanager
def hold(output, lock_path=None):
    """Hold ``output`` (a folder or a file, see :func:`lock_file_for`) for this process while the block
    runs; a UserError naming the holder when another live process holds it."""
    lock_path = Path(lock_path) if lock_path is not None else lock_file_for(output)
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    fd = _acquire(output, lock_path)
    _HELD.add(fd)
    try:
        yield lock_path
    finally:
        _HELD.discard(fd)
        with contextlib.suppress(OSError):
            if os.fstat(fd).st_ino == lock_path.stat().st_ino:
                lock_path.unlink()  # still holding the flock: nobody can take it in between
        os.close(fd)


def _acquire(output, lock_path: Path) -> int:
    for _ in range(50):
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno not in (errno.EWOULDBLOCK, errno.EACCES):
                raise
            holder = holder_of(lock_path)
            if not holder.get("pid"):  # it has just taken the lock: give it a moment to write its name
                time.sleep(0.05)
                holder = holder_of(lock_path)
            raise UserError(f"{output}: in use by {describe(holder)}; wait for it to finish or stop it "
                            f"(lock file {lock_path})") from None
        try:
            same = os.fstat(fd).st_ino == os.stat(lock_path).st_ino
        except FileNotFoundError:
            same = False
        if not same:  # the previous holder removed the file as we opened it: lock the new one
            os.close(fd)
            continue
        previous = holder_of(lock_path)
        if previous.get("pid") and previous.get("pid") != os.getpid():
            logger.info("%s: taking over the lock file of %s, which no longer holds it (the process ended, or "
                        "its pid was reused)", output, describe(previous))
        start = process_start(os.getpid()) or (None, time.strftime("%Y-%m-%d %H:%M:%S"))
        record = {"pid": os.getpid(), "start_ticks": start[0], "started": start[1], "host": socket.gethostname(),
                  "command": " ".join(sys.argv)[:500]}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)
        return fd
    raise UserError(f"{output}: could not take its lock file {lock_path} (it keeps being replaced)")
