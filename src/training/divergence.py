"""When a training has gone wrong: a loss that stays NaN or Inf, or grows far beyond where it started.

A single step whose loss or gradients are not finite is an overflow: the step changes nothing
(src/training/train_step.py) and the training goes on. ``NON_FINITE_STEPS`` such steps in a row mean the
parameters themselves went wrong. A finite loss has diverged when its mean over the last ``WINDOW``
steps exceeds ``GROWTH`` times the larger of its mean over the first ``WINDOW`` steps of this process and
``ln(vocab_size)`` (the loss of a model that knows nothing), or ``CEILING`` times ``ln(vocab_size)`` whatever
the start (a run that went wrong in its first steps). The trainer then stops with a UserError and saves
nothing more, so the last checkpoint written is the last good one.

>>> guard = DivergenceGuard(vocab_size=50, window=2)
>>> [guard.observe(x) for x in (4.0, 4.0, 3.0, 3.5)]
[None, None, None, None]
>>> guard.observe(40.0)
'the mean loss of the last 2 steps, 21.8, is beyond 3x its start (4)'
"""

import math
from collections import deque

NON_FINITE_STEPS = 10
GROWTH = 3.0
CEILING = 10.0
WINDOW = 10


class DivergenceGuard:
    """Feed it each optimizer step's loss; ``observe`` returns why the training diverged, or None."""

    def __init__(self, vocab_size: int, window: int = WINDOW, growth: float = GROWTH,
                 patience: int = NON_FINITE_STEPS):
        self.floor = math.log(max(vocab_size, 2))
        self.window, self.growth, self.patience = window, growth, patience
        self.recent = deque(maxlen=window)
        self.start = None
        self.non_finite = 0

    def observe(self, loss: float) -> str | None:
        if not math.isfinite(loss):
            self.non_finite += 1
            if self.non_finite >= self.patience:
                return f"the loss was {loss} at {self.non_finite} steps in a row"
            return None
        self.non_finite = 0
        self.recent.append(loss)
        if len(self.recent) < self.window:
            return None
        mean = sum(self.recent) / len(self.recent)
        self.start = mean if self.start is None else self.start
        reference = max(self.start, self.floor)
        if mean > CEILING * self.floor:
            return (f"the mean loss of the last {self.window} steps, {mean:.3g}, is beyond {CEILING:g}x "
                    f"ln(vocab_size) = {self.floor:.3g}, the loss of a model that knows nothing")
        if mean > self.growth * reference:
            return (f"the mean loss of the last {self.window} steps, {mean:.3g}, is beyond {self.growth:g}x "
                    f"its start ({reference:.3g})")
        return None
