"""The machine a benchmark ran on, for the first line of its output (figures are only comparable on one
CPU kind: docs/PERFORMANCE.md names it next to every number)."""

import os
import platform


def cpu_model() -> str:
    """The CPU's model name (``lscpu``'s "Model name", read from /proc/cpuinfo), else the platform's."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def describe() -> str:
    """``machine: <cpu model>, <n> cores``."""
    return f"machine: {cpu_model()}, {os.cpu_count()} cores"
