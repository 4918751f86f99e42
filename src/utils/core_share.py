"""Sharing the CPU with other processes: this process's threads keep to the cores the others leave free.

MindSpore's CPU kernels split each operation over a fixed pool of threads and wait for every part. When
another process keeps the cores busy, a part whose thread is preempted stalls the whole operation until the
scheduler gives that thread its turn again, at every one of the thousands of small kernels of a decode.
Measured on 2 cores beside a training (AMD EPYC, family 26 model 2): a beam-search decode took 2.1x its
quiet time on both cores, but only 1.04x its quiet one-core time when kept to one core (``taskset -c 1``).

``CoreShare.adapt`` estimates how many of its cores other processes used since its previous sample (the
busy time of those cores in ``/proc/stat`` less this process's own, ``/proc/self/stat``) and keeps every
thread of this process on ``cores_to_use`` of its allowed cores; when the others stop, it gives all of
them back. Samples are at least ``interval`` seconds apart, so a call at every step costs one clock read.
Processes of this toolkit that share the machine (two trainings, a training and a decode) keep to
different cores: a core kept is claimed with a ``flock`` on ``<tmp>/mass-cores-<uid>/cpu<N>`` (released
when the process lets go of the core or ends), and free cores are taken before claimed ones. Affinity
does not change what a kernel computes (MindSpore's thread pools keep their size), so results are the
same bit for bit. Linux only (elsewhere it does nothing); ``MASS_CORE_SHARE=0`` turns it off.
"""

import fcntl
import logging
import os
import tempfile
import time
from typing import NamedTuple

logger = logging.getLogger(__name__)

ENV_SWITCH = "MASS_CORE_SHARE"
# a core counts as taken by others once they used this much of it over the interval: a light, bursty
# neighbour (an editor, a shell) must not cost a decode its second core
TAKEN_SHARE = 0.75
RETURN_MARGIN = 0.5


class CpuSample(NamedTuple):
    """Cumulative clock ticks: busy and total time of the sampled cores, this process's CPU time."""
    busy: int
    total: int
    own: int


def parse_proc_stat(text: str, cpus) -> tuple[int, int]:
    """``(busy, total)`` ticks of the cores ``cpus`` (ids) from ``/proc/stat``'s ``cpuN`` lines; idle and
    iowait are not busy; guest time is already inside user time. A missing core is a ValueError."""
    wanted = {f"cpu{cpu}" for cpu in cpus}
    busy = total = 0
    for line in text.splitlines():
        fields = line.split()
        if fields and fields[0] in wanted:
            ticks = [int(value) for value in fields[1:9]]  # user nice system idle iowait irq softirq steal
            busy += sum(ticks) - ticks[3] - ticks[4]
            total += sum(ticks)
            wanted.discard(fields[0])
    if wanted:
        raise ValueError(f"/proc/stat has no line for {', '.join(sorted(wanted))}")
    return busy, total


def parse_own_ticks(text: str) -> int:
    """This process's user + system ticks (all threads) from ``/proc/self/stat`` (the command name, field
    2, is parenthesised and may hold spaces: count fields after its closing parenthesis)."""
    fields = text[text.rindex(")") + 2:].split()
    return int(fields[11]) + int(fields[12])  # utime, stime: fields 14 and 15 of the whole line


def cores_used_by_others(before: CpuSample, after: CpuSample, cores: int) -> float:
    """Cores (of the ``cores`` sampled) other processes kept busy between two samples, on average (0 when no
    time passed)."""
    total = after.total - before.total
    if total <= 0:
        return 0.0
    others = (after.busy - before.busy) - (after.own - before.own)
    return max(0.0, cores * others / total)


def cores_to_use(allowed: int, others: float, using: int | None = None) -> int:
    """How many of ``allowed`` cores to keep when others use ``others`` cores: the ones they leave, at
    least one (a core counts as taken from ``TAKEN_SHARE`` of it). With ``using`` (the cores kept now), a
    core comes back only once the others use ``RETURN_MARGIN`` of a core less than that: a neighbour that
    itself waits between bursts (a decode, a training sharing cores the same way) must not make both
    processes swap cores every second."""
    def left(used: float) -> int:
        return max(1, min(allowed, allowed - int(used + (1.0 - TAKEN_SHARE))))

    count = left(others)
    if using is not None and count > using:
        count = max(using, left(others + RETURN_MARGIN))
    return count


def read_sample(cpus) -> CpuSample:
    """The machine's ticks on the cores ``cpus`` and this process's own."""
    with open("/proc/stat") as f:
        busy, total = parse_proc_stat(f.read(), cpus)
    with open("/proc/self/stat") as f:
        own = parse_own_ticks(f.read())
    return CpuSample(busy, total, own)


def set_thread_affinity(cpus) -> None:
    """Every thread of this process (threads created later inherit their creator's set)."""
    for tid in os.listdir("/proc/self/task"):
        try:
            os.sched_setaffinity(int(tid), cpus)
        except OSError:  # the thread ended meanwhile
            pass


def claims_folder() -> str:
    """The folder of the per-core claim files, shared by this user's processes (made on first use)."""
    base = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else tempfile.gettempdir()
    folder = os.path.join(base, f"mass-cores-{os.getuid()}")
    os.makedirs(folder, mode=0o700, exist_ok=True)
    return folder


def claim(folder: str, cpu: int):
    """An open file holding an exclusive ``flock`` on core ``cpu``'s claim file, or None when another
    process holds it."""
    fd = os.open(os.path.join(folder, f"cpu{cpu}"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


class CoreShare:
    """Keeps this process's threads on the cores other processes leave free; see the module's text."""

    def __init__(self, interval: float = 1.0, enabled: bool | None = None):
        if enabled is None:
            enabled = os.environ.get(ENV_SWITCH, "1") != "0"
        self.enabled = enabled and hasattr(os, "sched_setaffinity") and os.path.exists("/proc/self/task")
        self.interval = interval
        self.allowed = sorted(os.sched_getaffinity(0)) if self.enabled else []
        self.using = self.announced = len(self.allowed)
        self.cpus = self.allowed
        self.sample, self.sampled_at, self.others = None, 0.0, 0.0
        self.claims = {}  # cpu -> the fd of its flock
        if self.enabled:
            try:
                self.sample, self.sampled_at = read_sample(self.allowed), time.monotonic()
            except (OSError, ValueError, IndexError):
                self.enabled = False

    def adapt(self) -> int:
        """Sample (at most once per interval) and keep to the cores the last sample left; returns the
        cores in use. The first sample is taken when the object is made (``shared()``: at import)."""
        if not self.enabled:
            return self.using
        now = time.monotonic()
        if now - self.sampled_at >= self.interval:
            try:
                sample = read_sample(self.allowed)
            except (OSError, ValueError, IndexError):
                self.enabled = False
                return self.using
            if self.sample is not None:
                self.others = cores_used_by_others(self.sample, sample, len(self.allowed))
            self.sample, self.sampled_at = sample, now
        self._use(cores_to_use(len(self.allowed), self.others, self.using))
        if self.using != self.announced:  # a decision, logged once (not again after each decode's release)
            logger.info("core share: %d of %d cores (%s; other processes used %.1f)", self.using,
                        len(self.allowed), ",".join(map(str, self.cpus)), self.others)
            self.announced = self.using
        return self.using

    def release(self) -> None:
        """All allowed cores again until the next ``adapt`` (the end of a decode: what runs next may not
        adapt, and a training keeps whatever cores it is given)."""
        if self.enabled:
            self._use(len(self.allowed))

    def _use(self, count: int) -> None:
        if count == self.using:
            return
        self._let_go()
        if count >= len(self.allowed):
            cpus = self.allowed
        else:
            cpus = self._claim(count)
        set_thread_affinity(cpus)
        self.using, self.cpus = count, sorted(cpus)

    def _claim(self, count: int) -> list:
        """``count`` cores: the ones no other process of ours claims first (claimed here), then any."""
        try:
            folder = claims_folder()
            for cpu in self.allowed:
                if len(self.claims) == count:
                    break
                fd = claim(folder, cpu)
                if fd is not None:
                    self.claims[cpu] = fd
        except OSError:  # no claim files (read-only temporary folder): choose without them
            pass
        rest = [cpu for cpu in self.allowed if cpu not in self.claims]
        return sorted(self.claims) + rest[:count - len(self.claims)]

    def _let_go(self) -> None:
        for fd in self.claims.values():
            os.close(fd)  # closing the file releases its flock
        self.claims = {}


_SHARED = None
_OFF = None


def shared() -> CoreShare:
    """The process's one ``CoreShare`` (made at the first call)."""
    global _SHARED
    if _SHARED is None:
        _SHARED = CoreShare()
    return _SHARED


def for_device(device_target: str) -> CoreShare:
    """``shared()`` where the kernels run on the CPU; elsewhere one that does nothing (a GPU or Ascend run's
    host threads only feed the device)."""
    global _OFF
    if device_target == "CPU":
        return shared()
    if _OFF is None:
        _OFF = CoreShare(enabled=False)
    return _OFF
