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
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(clean) + "\n")


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
