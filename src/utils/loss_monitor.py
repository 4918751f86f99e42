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
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]
