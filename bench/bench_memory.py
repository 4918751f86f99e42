"""Benchmark: peak memory of training over many batch shapes against training on one shape.

MindSpore compiles the training step once per distinct input shape and keeps every compiled graph,
so a run whose batches come in many widths can grow with the number of widths. This trains the small
preset (config/small.json, vocabulary 10,000, batch ``--batch``) for one pass over every
(source width, target width) pair with widths ``--widths`` (default 8..64 in steps of 8, target at
most the source width), and the same number of steps on the widest shape alone, each in a fresh
process, and reports their peak resident memory, for each way the step can be compiled:

  static     one graph per shape (``ms.jit``), every width its own shape (``pad_multiple`` 8)
  buckets    the same, with every width rounded up to a multiple of 32 as the loader does with
             ``dataset_config.pad_multiple=32``: a bounded set of shapes (3 for widths up to 64)
  dynamic    the step compiled with dynamic (batch, length) dimensions (``ms.enable_dynamic``): one graph

    python bench/bench_memory.py
    python bench/bench_memory.py --widths 16,32,48,64 --modes dynamic

The last line compares the toolkit's default (``buckets``: one graph per shape is much faster per step than
dynamic shapes on CPU, and the presets pad to multiples of 32): ``memory ratio many-shapes/one-shape: X.XX``.
"""

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.machine import describe  # noqa: E402

MODES = ("static", "buckets", "dynamic")
BUCKET = 32  # the width multiple of the buckets mode (dataset_config.pad_multiple=32)


def shapes_for(widths: list[int], many: bool, multiple: int = 1) -> list[tuple[int, int]]:
    from src.dataset.batching import round_up

    pairs = [(round_up(s, multiple), round_up(t, multiple)) for s in widths for t in widths if t <= s]
    return pairs if many else [max(pairs)] * len(pairs)


def make_batch(batch, src, tgt, vocab, seed):
    import numpy as np

    rng = np.random.default_rng(seed)
    src_ids = rng.integers(5, vocab, (batch, src)).astype(np.int32)
    tgt_ids = rng.integers(5, vocab, (batch, tgt)).astype(np.int32)
    dec_in = np.concatenate([np.ones((batch, 1), np.int32), tgt_ids[:, :-1]], axis=1)
    positions = np.tile(np.arange(tgt, dtype=np.int32), (batch, 1))
    return src_ids, dec_in, positions, tgt_ids


def child(args):
    import mindspore as ms

    from config.config import LearnRateConfig, MassConfig
    from src.training.optimizer import build_optimizer
    from src.training.train_step import TrainStep
    from src.transformer.transformer import MassTransformer

    ms.set_context(mode=ms.GRAPH_MODE)
    ms.set_device("CPU")
    cfg = MassConfig.from_json(args.config).override([f"--model_config.vocab_size={args.vocab}"])
    net = MassTransformer(cfg.model_config)
    opt = build_optimizer(net.trainable_params(), LearnRateConfig(lr=1e-4, min_lr=0.0))
    static = 0 if args.child_mode == "dynamic" else None  # 0: every shape through the one dynamic graph
    step = TrainStep(net, opt, label_smoothing=0.1, clip_norm=1.0, max_static_shapes=static)
    multiple = BUCKET if args.child_mode == "buckets" else 1
    shapes = shapes_for([int(w) for w in args.widths.split(",")], args.child_many, multiple)
    start = time.perf_counter()
    for i, (src, tgt) in enumerate(shapes):
        step(*(ms.Tensor(a) for a in make_batch(args.batch, src, tgt, args.vocab, i)), lr=1e-4)[0].asnumpy()
    seconds = time.perf_counter() - start
    widest = [ms.Tensor(a) for a in make_batch(args.batch, max(shapes)[0], max(shapes)[1], args.vocab, 0)]
    start = time.perf_counter()
    for _ in range(3):  # the steady step time on the widest shape, compiled by now
        step(*widest, lr=1e-4)[0].asnumpy()
    steady = (time.perf_counter() - start) / 3
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"steps": len(shapes), "distinct": len(set(shapes)), "seconds": seconds,
                      "steady": steady, "peak": peak}))


def measure(args, mode, many):
    cmd = [sys.executable, __file__, "--child_mode", mode, "--widths", args.widths, "--batch", str(args.batch),
           "--vocab", str(args.vocab), "--config", args.config] + (["--child_many"] if many else [])
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"error: the {mode} run failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default=str(ROOT / "config/small.json"))
    p.add_argument("--vocab", type=int, default=10000)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--widths", default="8,16,24,32,40,48,56,64", help="comma-separated batch widths")
    p.add_argument("--modes", default=",".join(MODES), help=f"comma-separated, of {', '.join(MODES)}")
    p.add_argument("--default", default=None, help="the mode of the last line (default: the trainer's)")
    p.add_argument("--child_mode", choices=MODES, help=argparse.SUPPRESS)
    p.add_argument("--child_many", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child_mode:
        return child(args)
    from config.config import DatasetConfig

    DEFAULT_DYNAMIC_SHAPES = DatasetConfig.dynamic_shapes  # the configs' default

    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = set(modes) - set(MODES)
    if unknown:
        p.error(f"unknown mode(s): {', '.join(sorted(unknown))}")
    default = args.default or ("dynamic" if DEFAULT_DYNAMIC_SHAPES else "buckets")
    results = {}
    for mode in modes:
        for many in (True, False):
            results[mode, many] = measure(args, mode, many)
    print(f"\n{describe()}")
    print(f"model {Path(args.config).name}, vocab {args.vocab}, batch {args.batch}, widths {args.widths}\n")
    print("| compile | shapes | steps | s for the steps | s/step after (widest) | peak RSS GiB | ratio to one shape |")
    print("|---|---|---|---|---|---|---|")
    for mode in modes:
        one = results[mode, False]["peak"]
        for many in (True, False):
            r = results[mode, many]
            print(f"| {mode} | {r['distinct']} | {r['steps']} | {r['seconds']:.1f} | {r['steady']:.3f} | "
                  f"{r['peak'] / 2**30:.2f} | {r['peak'] / one:.2f} |")
    if default in modes:
        ratio = results[default, True]["peak"] / results[default, False]["peak"]
        print(f"memory ratio many-shapes/one-shape: {ratio:.2f} ({default})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
