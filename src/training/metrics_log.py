"""Training metrics: one JSON object per line in ``metrics.jsonl`` (appended, flushed every record)."""

import json
import math
import time
from pathlib import Path


class MetricsWriter:
    def __init__(self, path, enabled=True):
        self.path = Path(path)
        self.enabled = enabled
        self.start = time.time()
        if enabled:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, record: dict):
        if not self.enabled:
            return
        record = {"time": round(time.time() - self.start, 3), **record}
        clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in record.items()}
        try:
            with open(self.path, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(clean) + "\n")
        except OSError as exc:  # a full disk: name the file (a failed write() names none)
            raise OSError(exc.errno, exc.strerror or str(exc), str(self.path)) from None


PRETRAIN, FINETUNE = "pretrain", "finetune"  # the phase names (checkpoint names, metrics records, run state)
PHASES = (PRETRAIN, FINETUNE)  # the order train.py runs them in


def drop_after(path, phase: str, step: int) -> int:
    """Before resuming ``phase`` at ``step``: remove the records the abandoned run wrote past that point
    (later steps of ``phase``, and any later phase), so that re-done steps are not listed twice. The
    file is rewritten atomically; returns how many records were dropped."""
    from src.utils.fileio import atomic_open

    path = Path(path)
    if not path.is_file():
        return 0
    records = read_metrics(path)
    order = PHASES.index(phase) if phase in PHASES else len(PHASES)
    keep = [r for r in records if not (
        (r.get("phase") == phase and r["step"] > step)
        or (r.get("phase") in PHASES and PHASES.index(r["phase"]) > order))]
    if len(keep) < len(records):
        with atomic_open(path) as handle:
            handle.writelines(json.dumps(r) + "\n" for r in keep)
    return len(records) - len(keep)


def read_metrics(path) -> list[dict]:
    """The records of a ``metrics.jsonl``; a line that is not a JSON object with a ``step`` is a UserError
    naming the file and line."""
    from src.utils.errors import UserError, where
    from src.utils.fileio import iter_lines, require_file

    path = require_file(path, "metrics file")
    records = []
    for line_no, line in iter_lines(path):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UserError(f"{where(path, line_no)}: not a JSON record ({exc.msg})") from None
        if not isinstance(record, dict) or "step" not in record:
            raise UserError(f"{where(path, line_no)}: expected a JSON object with a 'step'")
        records.append(record)
    return records
