"""src/utils/core_share.py: the cores other processes use, read from /proc, and this process's threads kept to
the cores they leave (then given all of them back), measured against real busy processes."""

import multiprocessing
import os
import threading
import time

import numpy as np
import pytest

from src.utils import core_share
from src.utils.core_share import CoreShare, CpuSample, cores_to_use, cores_used_by_others, parse_proc_stat

LINUX = os.path.exists("/proc/self/task") and hasattr(os, "sched_setaffinity")
needs_linux = pytest.mark.skipif(not LINUX, reason="core sharing reads /proc and sets thread affinity (Linux)")

STAT = """cpu  100 5 50 1000 20 3 2 1 0 0
cpu0 60 5 30 400 10 2 1 1 0 0
cpu1 40 0 20 600 10 1 1 0 0 0
intr 12345
"""


def test_proc_stat_counts_idle_and_iowait_as_not_busy_per_core():
    assert parse_proc_stat(STAT, [0]) == (60 + 5 + 30 + 2 + 1 + 1, 60 + 5 + 30 + 400 + 10 + 2 + 1 + 1)
    busy, total = parse_proc_stat(STAT, [0, 1])
    assert (busy, total) == (99 + 62, 509 + 672)
    with pytest.raises(ValueError, match="cpu2"):
        parse_proc_stat(STAT, [2])


def test_others_are_the_busy_time_less_our_own_in_cores():
    before, after = CpuSample(busy=1000, total=5000, own=300), CpuSample(busy=1300, total=5200, own=350)
    # 200 ticks over 2 cores = 100 ticks of wall; others 300 - 50 = 250 ticks = 2.5 cores' worth of 100 ticks
    assert cores_used_by_others(before, after, 2) == pytest.approx(2.5)
    assert cores_used_by_others(after, after, 2) == 0.0
    assert cores_used_by_others(before, CpuSample(1010, 5200, 350), 2) == 0.0  # never negative


@pytest.mark.parametrize("allowed, others, want", [
    (2, 0.0, 2), (2, 0.5, 2), (2, 0.8, 1), (2, 1.3, 1), (2, 2.0, 1),
    (16, 2.0, 14), (16, 1.74, 15), (1, 3.0, 1), (4, 9.0, 1),
])
def test_cores_to_use_leaves_the_cores_the_others_take_and_keeps_one(allowed, others, want):
    assert cores_to_use(allowed, others) == want
    assert cores_to_use(allowed, others, using=allowed) == want  # shrinking: no margin


@pytest.mark.parametrize("allowed, others, using, want", [
    (2, 0.6, 1, 1), (2, 0.3, 1, 1), (2, 0.2, 1, 2), (2, 0.0, 1, 2),
    (16, 1.5, 14, 14), (16, 1.2, 14, 15), (16, 0.1, 14, 16),
])
def test_a_core_comes_back_only_with_a_margin(allowed, others, using, want):
    assert cores_to_use(allowed, others, using) == want


@needs_linux
def test_own_ticks_follow_this_process_cpu_time():
    clock = os.sysconf("SC_CLK_TCK")
    first, t0 = core_share.read_sample(sorted(os.sched_getaffinity(0))), os.times()
    deadline = time.process_time() + 0.5
    while time.process_time() < deadline:
        pass
    second, t1 = core_share.read_sample(sorted(os.sched_getaffinity(0))), os.times()
    spent = (t1.user + t1.system - t0.user - t0.system) * clock
    assert abs((second.own - first.own) - spent) <= 3
    assert second.busy - first.busy >= spent - 3  # our time is inside the machine's busy time


def _spin(seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


def _thread_cpus():
    return {tid: frozenset(os.sched_getaffinity(int(tid))) for tid in os.listdir("/proc/self/task")}


@needs_linux
def test_busy_neighbours_shrink_every_thread_to_one_core(monkeypatch, tmp_path):
    """Real spinning processes on every allowed core: measured, and every thread (one made before the
    decision too) kept to one core; release gives all of them back."""
    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) < 2:
        pytest.skip("one allowed core: nothing to give up")
    monkeypatch.setattr(core_share, "claims_folder", lambda: str(tmp_path))
    share = CoreShare(interval=0.2, enabled=True)
    stop = threading.Event()
    worker = threading.Thread(target=stop.wait)
    worker.start()
    spinners = [multiprocessing.get_context("spawn").Process(target=_spin, args=(3.0,)) for _ in allowed]
    try:
        for p in spinners:
            p.start()
        time.sleep(1.2)  # the spinners start (spawn imports) and fill the cores
        share.adapt()
        time.sleep(0.6)
        used = share.adapt()
        assert share.others >= len(allowed) - 1 + core_share.TAKEN_SHARE
        assert used == 1
        pinned = set(_thread_cpus().values())
        assert len(pinned) == 1 and len(next(iter(pinned))) == 1
    finally:
        share.release()
        for p in spinners:
            p.join()
        stop.set()
        worker.join()
    assert set(_thread_cpus().values()) == {frozenset(allowed)}


@needs_linux
def test_the_cores_come_back_when_the_others_stop(monkeypatch, tmp_path):
    """The decisions over a busy interval, then a quiet one (samples given: the real machine may be busy
    with the test suite's other workers), applied to the real threads."""
    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) < 2:
        pytest.skip("one allowed core: nothing to give up")
    monkeypatch.setattr(core_share, "claims_folder", lambda: str(tmp_path))
    n, own = len(allowed), 0
    samples = iter([CpuSample(0, 0, 0), CpuSample(100 * n, 100 * n, own),  # others on every core
                    CpuSample(100 * n, 200 * n, own)])  # then nobody
    monkeypatch.setattr(core_share, "read_sample", lambda cpus: next(samples))
    share = CoreShare(interval=0.0, enabled=True)
    try:
        assert share.adapt() == 1
        assert set(_thread_cpus().values()) == {frozenset(allowed[:1])}
        assert share.adapt() == n
        assert set(_thread_cpus().values()) == {frozenset(allowed)}
    finally:
        share.release()
        core_share.set_thread_affinity(allowed)


def test_switched_off_by_the_environment(monkeypatch):
    monkeypatch.setenv(core_share.ENV_SWITCH, "0")
    share = CoreShare()
    assert not share.enabled
    assert share.adapt() == share.using


@needs_linux
def test_processes_of_ours_keep_to_different_cores(monkeypatch, tmp_path):
    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) < 2:
        pytest.skip("one allowed core: nothing to share out")
    monkeypatch.setattr(core_share, "claims_folder", lambda: str(tmp_path))
    first, second, third = (CoreShare(enabled=True) for _ in range(3))
    try:
        assert first._claim(1) == allowed[:1]
        assert second._claim(1) == allowed[1:2]  # a flock on another open file: as another process sees it
        assert sorted(third._claim(2)) == allowed[:2]  # every core claimed: it shares
        assert third.claims == {} if len(allowed) == 2 else True
        first._let_go()
        assert CoreShare(enabled=True)._claim(1) == allowed[:1]  # a released claim is free again
    finally:
        for share in (first, second, third):
            share._let_go()
        set_all = CoreShare(enabled=True)
        core_share.set_thread_affinity(set_all.allowed)


@needs_linux
def test_a_training_kept_to_one_core_computes_the_same_bits(tiny_model_config):
    """Affinity changes where the kernels' threads run, not how the work is split: a training moved to one
    core after its first step gives every loss and parameter of the same training left on all cores."""
    from tests.test_train_step import copy_batch, make_step, params

    allowed = sorted(os.sched_getaffinity(0))
    runs = []
    try:
        for pinned in (False, True):
            step = make_step(tiny_model_config, smoothing=0.1)
            losses = []
            for i in range(6):
                losses.append(step(*copy_batch(16, 24, seed=i))[0].asnumpy())
                if pinned and i == 0:
                    core_share.set_thread_affinity(allowed[:1])
            runs.append((losses, params(step.network)))
    finally:
        core_share.set_thread_affinity(allowed)
    assert len({float(v) for v in runs[0][0]}) == 6  # the steps differ
    for got, want in zip(runs[1][0], runs[0][0], strict=True):
        np.testing.assert_array_equal(got, want)
    for name, value in runs[0][1].items():
        np.testing.assert_array_equal(runs[1][1][name], value, err_msg=name)
