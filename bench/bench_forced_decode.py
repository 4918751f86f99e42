"""Benchmark: the forced-length cached decode of bench_decode.py alone, with the ``generate`` of any checkout.

Compares commits side by side in one session: pass the root of a checkout (e.g. a ``git worktree`` of an
older commit) and its ``generate`` and model code are timed on the bench's inputs (the first ``--lines``
Gigaword test articles with hashed ids, ``config/small.json`` with random weights, beam 4, forced to 64
tokens). Every batch is decoded once untimed (compiling every shape), then ``--rounds`` timed passes; the
last line gives the best pass and a hash of every hypothesis token (equal hashes: identical output).
Run checkouts alternately: the machine's noise moves single passes by 10-25%.

    git worktree add /tmp/old f438a51
    python bench/bench_forced_decode.py /tmp/old
    python bench/bench_forced_decode.py .
"""

import argparse
import hashlib
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkout", nargs="?", default=str(HERE), help="root of the checkout to time (default: this one)")
    p.add_argument("--lines", type=int, default=32)
    p.add_argument("--batch_size", type=int, default=16)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args(argv)
    root = Path(args.checkout).resolve()
    if not (root / "src" / "transformer" / "generator.py").is_file():
        print(f"error: {root}: not a checkout of this toolkit (no src/transformer/generator.py)", file=sys.stderr)
        return 2
    sys.path.insert(0, str(HERE))
    # this checkout's input helpers (the same inputs for every checkout timed), imported before the switch
    from bench.decode_inputs import BEAM, STEPS, VOCAB, batches, hashed_ids, read_lines
    from bench.machine import describe

    sys.path.insert(0, str(root))  # the checkout's own src/ and config/ from here on
    for name in [m for m in sys.modules if m in ("src", "config") or m.startswith(("src.", "config."))]:
        del sys.modules[name]
    from config.config import MassConfig
    from src.transformer.generator import generate
    from src.transformer.transformer import MassTransformer
    from src.utils.device import setup_device

    setup_device("CPU", mode="graph", distributed=False)
    cfg = MassConfig.from_json(str(root / "config" / "small.json")).override([f"--model_config.vocab_size={VOCAB}"])
    model = MassTransformer(cfg.model_config)
    model.set_train(False)
    lines, source = read_lines(args.lines)
    data = list(batches([hashed_ids(line, cfg.dataset_config.max_len) for line in lines], args.batch_size))
    print(describe())
    print(f"{root}: {len(lines)} sentences from {source}, batch {args.batch_size}, beam {BEAM}, forced to {STEPS}")

    options = dict(beam_size=BEAM, max_len_a=0.0, max_len_b=STEPS, min_len=STEPS)
    try:  # checkouts since the search settings became one value
        from src.transformer.search_settings import SearchSettings

        settings = SearchSettings(**options)

        def decode(batch):
            return generate(model, batch, settings)
    except ImportError:  # older checkouts: keyword arguments
        def decode(batch):
            return generate(model, batch, **options)

    def run():
        return [decode(batch) for batch in data]

    hyps = run()
    digest = hashlib.sha256(repr([[h[0].tokens for h in batch] for batch in hyps]).encode()).hexdigest()[:12]
    passes = []
    for _ in range(args.rounds):
        start = time.perf_counter()
        run()
        passes.append(time.perf_counter() - start)
    print("| pass | s |\n|---|---|")
    for i, seconds in enumerate(passes, 1):
        print(f"| {i} | {seconds:.2f} |")
    print(f"forced decode: best {min(passes):.2f} s, hypotheses {digest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
