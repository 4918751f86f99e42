"""Run a command and report its wall time and peak memory (sum of RSS over its process tree).

Linux only: polls /proc every 50 ms, so it sees worker processes a pool starts and stops.
"""

import os
import subprocess
import threading
import time


def _children_map():
    children = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(name))
    return children


def _tree_rss_bytes(pid):
    children, total, todo = _children_map(), 0, [pid]
    while todo:
        p = todo.pop()
        todo.extend(children.get(p, []))
        try:
            with open(f"/proc/{p}/statm") as f:
                total += int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, IndexError, ValueError):
            pass
    return total


def run_measured(cmd, **kwargs):
    """Run ``cmd``; return ``(seconds, peak_rss_bytes)``. Raises if it fails."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, **kwargs)
    peak = [0]
    done = threading.Event()

    def poll():
        while not done.is_set():
            peak[0] = max(peak[0], _tree_rss_bytes(proc.pid))
            done.wait(0.05)

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    code = proc.wait()
    seconds = time.perf_counter() - start
    done.set()
    thread.join()
    if code != 0:
        raise RuntimeError(f"command failed with exit code {code}: {' '.join(map(str, cmd))}")
    return seconds, peak[0]
