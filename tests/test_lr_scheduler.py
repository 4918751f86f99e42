import math

import numpy as np
import pytest

from config.config import MassConfig
from src.training.lr_scheduler import build_schedule, constant, inverse_sqrt, polynomial, schedule_from_config
from src.utils.errors import UserError

LR, MIN_LR, WARMUP, DECAY = 1e-3, 1e-5, 10, 100


def poly(step, power=0.5):
    return polynomial(step, lr=LR, min_lr=MIN_LR, warmup_steps=WARMUP, decay_steps=DECAY, power=power)


def isr(step):
    return inverse_sqrt(step, lr=LR, warmup_steps=WARMUP, min_lr=MIN_LR)


def test_polynomial_golden_values():
    # warm-up: update n = step + 1 gets lr * n / warmup
    assert poly(0) == pytest.approx(1e-4)  # the first update is not a no-op
    assert poly(WARMUP - 2) == pytest.approx(9e-4)
    assert poly(WARMUP - 1) == pytest.approx(1e-3)  # peak
    # decay: t = 1, 2 steps after the peak
    assert poly(WARMUP) == pytest.approx((1e-3 - 1e-5) * math.sqrt(1 - 1 / 100) + 1e-5)
    assert poly(WARMUP + 1) == pytest.approx((1e-3 - 1e-5) * math.sqrt(1 - 2 / 100) + 1e-5)
    assert poly(WARMUP - 1 + 50) == pytest.approx(0.99e-3 * math.sqrt(0.5) + 1e-5)
    last = WARMUP - 1 + DECAY
    assert poly(last - 1) == pytest.approx(0.99e-3 * math.sqrt(0.01) + 1e-5)
    assert poly(last) == pytest.approx(MIN_LR)
    # no cycling: min_lr for ever after
    assert poly(last + 1) == poly(last + DECAY + 1) == poly(10 * last) == pytest.approx(MIN_LR)


def test_polynomial_power_one_is_linear():
    values = [poly(WARMUP - 1 + t, power=1.0) for t in range(DECAY + 1)]
    expected = [LR - (LR - MIN_LR) * t / DECAY for t in range(DECAY + 1)]
    np.testing.assert_allclose(values, expected, rtol=1e-12)


def test_inverse_sqrt_golden_values():
    assert isr(0) == pytest.approx(1e-4)
    assert isr(WARMUP - 1) == pytest.approx(1e-3)
    assert isr(WARMUP) == pytest.approx(1e-3 * math.sqrt(10 / 11))
    assert isr(WARMUP + 1) == pytest.approx(1e-3 * math.sqrt(10 / 12))
    assert isr(39) == pytest.approx(5e-4)  # n = 40 = 4 * warmup halves the rate
    # clamped at min_lr once lr * sqrt(10 / n) < 1e-5, i.e. n > 100000
    assert isr(99_999) == pytest.approx(1e-5)
    assert isr(1_000_000) == MIN_LR


def test_constant_and_no_warmup():
    assert constant(0, lr=LR) == constant(10**6, lr=LR) == LR
    assert constant(0, lr=LR, warmup_steps=4) == pytest.approx(LR / 4)
    assert constant(3, lr=LR, warmup_steps=4) == LR
    # without warm-up every schedule starts at its peak
    assert polynomial(0, lr=LR, min_lr=0.0, warmup_steps=0, decay_steps=4, power=1.0) == LR
    assert polynomial(2, lr=LR, min_lr=0.0, warmup_steps=0, decay_steps=4, power=1.0) == pytest.approx(LR / 2)
    assert inverse_sqrt(0, lr=LR, warmup_steps=0) == LR
    assert inverse_sqrt(3, lr=LR, warmup_steps=0) == pytest.approx(LR / 2)


def test_negative_step_raises():
    with pytest.raises(ValueError):
        poly(-1)


@pytest.mark.parametrize("name,schedule,max_step", [
    ("poly power 1", lambda s: poly(s, power=1.0), LR / WARMUP),
    ("poly power 2", lambda s: poly(s, power=2.0), LR / WARMUP),
    ("isr", isr, LR / WARMUP),
    # with power < 1 the steepest decay step is the last one: (lr - min_lr) / decay ** power
    ("poly power 0.5", poly, max(LR / WARMUP, (LR - MIN_LR) / DECAY ** 0.5)),
])
def test_no_jumps(name, schedule, max_step):
    values = np.array([schedule(s) for s in range(3 * (WARMUP + DECAY))])
    assert np.abs(np.diff(values)).max() <= max_step * (1 + 1e-9), name
    peak = WARMUP - 1
    assert np.all(np.diff(values[:peak + 1]) > 0), name  # strictly rising warm-up
    assert np.all(np.diff(values[peak:]) <= 0), name  # never rising again
    assert values.max() == pytest.approx(LR) and values.min() >= MIN_LR * (1 - 1e-12)


def test_build_schedule():
    schedule = build_schedule("poly", lr=LR, min_lr=MIN_LR, warmup_steps=WARMUP, decay_steps=DECAY, power=0.5)
    assert [schedule(s) for s in range(0, 300, 7)] == [poly(s) for s in range(0, 300, 7)]
    assert build_schedule("isr", lr=LR, warmup_steps=WARMUP, min_lr=MIN_LR)(25) == isr(25)
    assert build_schedule("constant", lr=LR)(5) == LR
    with pytest.raises(UserError, match="unknown lr_scheduler 'cosine'"):
        build_schedule("cosine", lr=LR)
    with pytest.raises(TypeError):
        build_schedule("poly", lr=LR, warmup_steps=WARMUP)  # missing arguments fail at build time


@pytest.mark.parametrize("name", ["poly", "isr", "constant"])
def test_schedule_from_config(name):
    cfg = MassConfig().override([f"--learn_rate_config.lr_scheduler={name}"]).learn_rate_config
    schedule = schedule_from_config(cfg)
    assert schedule(cfg.warmup_steps - 1) == pytest.approx(cfg.lr)
    assert schedule(0) == pytest.approx(cfg.lr / cfg.warmup_steps)
    if name == "poly":
        assert schedule(cfg.warmup_steps - 1 + cfg.decay_steps) == pytest.approx(cfg.min_lr)
