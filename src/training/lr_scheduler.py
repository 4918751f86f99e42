"""Learning-rate schedules as pure functions of the 0-based optimizer step.

Every schedule shares the same linear warm-up: update number ``n = step + 1`` gets ``lr * n / warmup``,
so the first update (step 0) uses ``lr / warmup`` rather than 0 (ModelZoo's ``linspace(0, lr, W)``
makes step 0 a no-op) and the peak ``lr`` is reached exactly at step ``warmup - 1``. The decay starts
from that peak, so no schedule jumps anywhere.

>>> [round(polynomial(s, lr=1.0, min_lr=0.0, warmup_steps=4, decay_steps=4, power=1.0), 2)
...  for s in range(10)]
[0.25, 0.5, 0.75, 1.0, 0.75, 0.5, 0.25, 0.0, 0.0, 0.0]
>>> [round(inverse_sqrt(s, lr=1.0, warmup_steps=4, min_lr=0.0), 3) for s in (3, 7, 15)]
[1.0, 0.707, 0.5]
"""

import functools
import math

from src.utils.errors import UserError


def _warmup(step: int, lr: float, warmup_steps: int) -> float | None:
    """The warm-up value at ``step``, or None once the warm-up is over (and when there is none)."""
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    if step + 1 < warmup_steps:
        return lr * (step + 1) / warmup_steps
    return None


def _steps_after_peak(step: int, warmup_steps: int) -> int:
    """0 at the peak step ``warmup - 1`` (step 0 without warm-up), then 1, 2, ..."""
    return step + 1 - max(warmup_steps, 1)


def polynomial(step: int, *, lr: float, min_lr: float, warmup_steps: int, decay_steps: int,
               power: float) -> float:
    """Warm-up, then ``(lr - min_lr) * (1 - t / decay_steps) ** power + min_lr`` for ``t`` steps after
    the peak, reaching ``min_lr`` at ``t = decay_steps`` and staying there (no cycling, unlike
    ModelZoo's TF-style decay that jumps back up every ``decay_steps``).

    With ``power < 1`` the curve is steepest at its end: the last decay step drops by
    ``(lr - min_lr) / decay_steps ** power``.
    """
    warm = _warmup(step, lr, warmup_steps)
    if warm is not None:
        return warm
    t = min(_steps_after_peak(step, warmup_steps), decay_steps)
    return (lr - min_lr) * (1.0 - t / decay_steps) ** power + min_lr


def inverse_sqrt(step: int, *, lr: float, warmup_steps: int, min_lr: float = 0.0) -> float:
    """Warm-up, then ``lr * sqrt(warmup / n)`` for update number ``n = step + 1``, never below ``min_lr``.

    Continuous at the peak (``n = warmup`` gives ``lr``); ModelZoo's variant held ``lr`` until a
    separate ``decay_start_step`` and then dropped abruptly.
    """
    warm = _warmup(step, lr, warmup_steps)
    if warm is not None:
        return warm
    return max(min_lr, lr * math.sqrt(max(warmup_steps, 1) / (step + 1)))


def constant(step: int, *, lr: float, warmup_steps: int = 0) -> float:
    """``lr`` after the (optional) warm-up."""
    warm = _warmup(step, lr, warmup_steps)
    return lr if warm is None else warm


SCHEDULES = {"poly": polynomial, "isr": inverse_sqrt, "constant": constant}


def build_schedule(name: str, **kwargs):
    """``build_schedule("isr", lr=1e-4, warmup_steps=4000, min_lr=1e-6)(step) -> float``.

    ``name`` is a ``learn_rate_config.lr_scheduler`` value; the keyword arguments are those of the
    chosen function, all required except the documented defaults.
    """
    if name not in SCHEDULES:
        raise UserError(f"unknown lr_scheduler '{name}' (known: {', '.join(SCHEDULES)})")
    schedule = functools.partial(SCHEDULES[name], **kwargs)
    schedule(0)  # a missing or misspelt argument fails here, not at the first training step
    return schedule


def schedule_from_config(learn_rate_config):
    """The schedule described by a ``LearnRateConfig`` (``config/config.py``)."""
    c = learn_rate_config
    if c.lr_scheduler == "poly":
        return build_schedule("poly", lr=c.lr, min_lr=c.min_lr, warmup_steps=c.warmup_steps,
                              decay_steps=c.decay_steps, power=c.poly_lr_scheduler_power)
    if c.lr_scheduler == "isr":
        return build_schedule("isr", lr=c.lr, warmup_steps=c.warmup_steps, min_lr=c.min_lr)
    return build_schedule(c.lr_scheduler, lr=c.lr, warmup_steps=c.warmup_steps)
