"""The decoding benchmarks' inputs: Gigaword test articles (or generated sentences) as hashed ids, and the
search's shape (bench_decode.py, bench_forced_decode.py). Import it with the repository root on sys.path."""

import zlib
from pathlib import Path

import numpy as np

from src.dataset.batching import pad_batch

GIGA = Path(__file__).resolve().parents[2] / "shared" / "data" / "gigaword" / "Giga" / "input.txt"
VOCAB = 10000
NUM_SPECIALS = 5
STEPS = 64
BEAM = 4
EOS = 2
BOS = 1


def read_lines(n):
    if GIGA.is_file():
        with open(GIGA, encoding="utf-8") as handle:
            lines = [line.strip() for _, line in zip(range(n), handle, strict=False)]
        return lines, str(GIGA)
    print(f"{GIGA} not found: using {n} generated sentences instead")
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(3000)]
    return [" ".join(rng.choice(words, size=rng.integers(15, 40))) for _ in range(n)], "generated"


def hashed_ids(line, max_len):
    ids = [NUM_SPECIALS + zlib.crc32(w.encode("utf-8")) % (VOCAB - NUM_SPECIALS) for w in line.split()]
    return np.array(ids[: max_len - 1] + [EOS], dtype=np.int32)


def batches(sequences, batch_size):
    """The sequences in order, ``batch_size`` at a time, each batch padded to a multiple of 8."""
    for start in range(0, len(sequences), batch_size):
        (padded,) = pad_batch([sequences[start:start + batch_size]], multiple=8)
        yield padded
