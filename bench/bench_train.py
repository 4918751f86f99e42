"""Benchmark: training throughput of our MindSpore step against a PyTorch eager model of the same shape.

For the chosen preset (default config/small.json) and batch, it times, side by side in one run:
  ours     MassTransformer + TrainStep (Adam, global-norm clipping, label smoothing), GRAPH_MODE, fp32,
           compiled as the trainer does (one graph per shape or dynamic shapes: dataset_config.dynamic_shapes,
           default false) and the other way, kept to the cores other processes leave as the trainer does
           (src/utils/core_share.py; MASS_CORE_SHARE=0 turns it off)
  torch    the same pre-LN encoder-decoder in PyTorch eager (torch.nn layers, tied output), Adam
and reports source/target tokens per second, the ratio, and model FLOP/s as a share of a measured numpy
sgemm peak. ``--paper`` also runs the paper-size model (6+6, d 1024) at batch 8 x 64 in a separate
process and reports its step time and peak memory. PyTorch is a benchmark-only extra
(``pip install torch``); without it that row is skipped. The last line: ``ours vs PyTorch eager: X.XXx``
(speed ratio of the default row, > 1 means ours is faster).

    python bench/bench_train.py                       # small preset, batch 32, source 64, target 32
    python bench/bench_train.py --paper
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.machine import describe  # noqa: E402


def sgemm_peak(n=1024, repeats=10):
    a, b = np.random.rand(n, n).astype(np.float32), np.random.rand(n, n).astype(np.float32)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best


def model_flops(m, batch, src, tgt, vocab):
    """Matmul FLOPs of one training step (forward x 3 for forward + backward)."""
    d, f, enc, dec = m["hidden_size"], m["intermediate_size"], m["num_hidden_layers"], m["num_decoder_layers"]
    enc_layer = 2 * (4 * src * d * d + 2 * src * src * d + 2 * src * d * f)
    dec_layer = 2 * (4 * tgt * d * d + 2 * tgt * tgt * d                 # self-attention
                     + 2 * tgt * d * d + 2 * src * d * d + 2 * tgt * src * d  # cross-attention
                     + 2 * tgt * d * f)
    logits = 2 * tgt * d * vocab
    return 3 * batch * (enc * enc_layer + dec * dec_layer + logits)


def make_batch(batch, src, tgt, vocab, seed=0):
    rng = np.random.default_rng(seed)
    src_ids = rng.integers(5, vocab, (batch, src)).astype(np.int32)
    start = src // 4
    tgt_ids = src_ids[:, start:start + tgt].copy()
    dec_in = src_ids[:, start - 1:start + tgt - 1].copy()
    positions = np.tile(np.arange(start, start + tgt, dtype=np.int32), (batch, 1))
    return src_ids, dec_in, positions, tgt_ids


def time_steps(step, steps, warmup):
    for _ in range(warmup):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - start) / steps


def ours(model_cfg, batch, steps, warmup, dynamic_shapes=None):
    import mindspore as ms

    from config.config import LearnRateConfig
    from src.training.optimizer import build_optimizer
    from src.training.train_step import TrainStep
    from src.transformer.transformer import MassTransformer
    from src.utils import core_share

    ms.set_context(mode=ms.GRAPH_MODE)
    ms.set_device("CPU")
    net = MassTransformer(model_cfg)
    opt = build_optimizer(net.trainable_params(), LearnRateConfig(lr=1e-4, min_lr=0.0))
    options = {} if dynamic_shapes is None else {"max_static_shapes": 0 if dynamic_shapes else None}
    train_step = TrainStep(net, opt, label_smoothing=0.1, clip_norm=1.0, **options)
    tensors = [ms.Tensor(a) for a in batch]
    cores = core_share.shared()  # as the trainer: the cores other processes leave, checked at every step

    def step():
        loss = train_step(*tensors, lr=1e-4)[0].asnumpy()
        cores.adapt()
        return loss

    try:
        return time_steps(step, steps, warmup)
    finally:
        cores.release()


def torch_step_fn(m, batch):
    import torch
    from torch import nn

    torch.manual_seed(0)
    torch.set_num_threads(os.cpu_count())
    d, heads, f = m["hidden_size"], m["num_attention_heads"], m["intermediate_size"]
    vocab, max_pos = m["vocab_size"], m["max_position_embeddings"]

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(vocab, d, padding_idx=0)
            pos = np.arange(max_pos)[:, None] / np.power(10000, np.arange(0, d, 2) / d)
            self.register_buffer("pe", torch.tensor(np.concatenate([np.sin(pos), np.cos(pos)], 1), dtype=torch.float32))
            drop = m["hidden_dropout_prob"]
            self.drop = nn.Dropout(drop)  # on the embeddings, as ours
            self.encoder = nn.TransformerEncoder(nn.TransformerEncoderLayer(
                d, heads, f, drop, batch_first=True, norm_first=True), m["num_hidden_layers"], nn.LayerNorm(d),
                enable_nested_tensor=False)
            self.decoder = nn.TransformerDecoder(nn.TransformerDecoderLayer(
                d, heads, f, drop, batch_first=True, norm_first=True), m["num_decoder_layers"], nn.LayerNorm(d))

        def forward(self, src, dec_in, positions):
            scale = d ** 0.5
            x = self.drop(self.embed(src) * scale + self.pe[: src.shape[1]])
            memory = self.encoder(x, src_key_padding_mask=src == 0)
            y = self.drop(self.embed(dec_in) * scale + self.pe[positions])
            causal = nn.Transformer.generate_square_subsequent_mask(dec_in.shape[1])
            h = self.decoder(y, memory, tgt_mask=causal, memory_key_padding_mask=src == 0)
            return h @ self.embed.weight.T

    model = Model()
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-4, betas=(0.9, 0.98), eps=1e-8)
    src, dec_in, pos, tgt = (torch.tensor(a, dtype=torch.long) for a in batch)
    loss_fn = nn.CrossEntropyLoss(ignore_index=0, label_smoothing=0.1)

    def step():
        opt.zero_grad()
        logits = model(src, dec_in, pos)
        loss = loss_fn(logits.reshape(-1, vocab), tgt.reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return loss.item()

    return step


def run_paper(args):
    """Paper-size step time and peak memory (this process only)."""
    from config.config import MassConfig

    cfg = MassConfig.from_json(ROOT / "config/paper.json").override([f"--model_config.vocab_size={args.vocab}"])
    batch = make_batch(8, 64, 32, args.vocab)
    seconds = ours(cfg.model_config, batch, args.paper_steps, 1)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    from src.transformer.transformer import MassTransformer, count_parameters
    params = count_parameters(MassTransformer(cfg.model_config))
    print(json.dumps({"seconds_per_step": seconds, "peak_bytes": peak, "parameters": params}))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default=str(ROOT / "config/small.json"))
    p.add_argument("--vocab", type=int, default=10000, help="vocabulary size of the benchmark model")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--src_len", type=int, default=64)
    p.add_argument("--tgt_len", type=int, default=32, help="decoder length (MASS decodes half the sentence)")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--rounds", type=int, default=2, help="alternate ours/torch this many times, keep the best")
    p.add_argument("--paper", action="store_true", help="also time the paper-size model at batch 8 x 64")
    p.add_argument("--paper_steps", type=int, default=3)
    p.add_argument("--paper_only", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.paper_only:
        return run_paper(args)

    from config.config import MassConfig

    cfg = MassConfig.from_json(args.config).override([f"--model_config.vocab_size={args.vocab}"])
    m = cfg.model_config
    batch = make_batch(args.batch, args.src_len, args.tgt_len, args.vocab)
    flops = model_flops(m.__dict__, args.batch, args.src_len, args.tgt_len, args.vocab)
    peak = sgemm_peak()
    try:
        torch_step = torch_step_fn({**m.__dict__}, batch)
    except ImportError:
        torch_step = None
    from config.config import DatasetConfig

    DEFAULT_DYNAMIC_SHAPES = DatasetConfig.dynamic_shapes  # the configs' default

    best = {"ours": float("inf"), "ours_other": float("inf"), "torch": float("inf")}
    for _ in range(args.rounds):
        best["ours"] = min(best["ours"], ours(m, batch, args.steps, args.warmup))
        best["ours_other"] = min(best["ours_other"], ours(m, batch, args.steps, args.warmup,
                                                          dynamic_shapes=not DEFAULT_DYNAMIC_SHAPES))
        if torch_step:
            best["torch"] = min(best["torch"], time_steps(torch_step, args.steps, args.warmup))
    print(f"\n{describe()}")
    print(f"model {Path(args.config).name}: d {m.hidden_size}, {m.num_hidden_layers}+{m.num_decoder_layers} layers, "
          f"{m.num_attention_heads} heads, FFN {m.intermediate_size}, vocab {args.vocab}; batch {args.batch} x "
          f"source {args.src_len} / target {args.tgt_len}; numpy sgemm peak {peak / 1e9:.1f} GFLOP/s\n")
    print("| implementation | s/step | source tok/s | target tok/s | GFLOP/s | % of sgemm peak | vs PyTorch |")
    print("|---|---|---|---|---|---|---|")
    kinds = ("one graph per shape", "dynamic shapes")
    default, other = kinds[::-1] if DEFAULT_DYNAMIC_SHAPES else kinds
    for name, label in (("ours", f"MindSpore 2.10 GRAPH_MODE (ours, {default}: the default)"),
                        ("ours_other", f"MindSpore 2.10 GRAPH_MODE (ours, {other})"), ("torch", "PyTorch eager")):
        s = best[name]
        if s == float("inf"):
            print(f"| {label} | n/a (not installed) | | | | | |")
            continue
        ratio = best["torch"] / s if best["torch"] != float("inf") else float("nan")
        print(f"| {label} | {s:.3f} | {args.batch * args.src_len / s:.0f} | {args.batch * args.tgt_len / s:.0f} | "
              f"{flops / s / 1e9:.1f} | {100 * flops / s / peak:.0f}% | {ratio:.2f}x |")
    if args.paper:
        out = subprocess.run([sys.executable, __file__, "--paper_only", "--vocab", str(args.vocab),
                              "--paper_steps", str(args.paper_steps)], capture_output=True, text=True, check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"\npaper size ({r['parameters'] / 1e6:.0f}M parameters at vocab {args.vocab}), batch 8 x 64/32: "
              f"{r['seconds_per_step']:.2f} s/step, peak memory {r['peak_bytes'] / 2**30:.2f} GiB")
    if best["torch"] != float("inf"):
        print(f"ours vs PyTorch eager: {best['torch'] / best['ours']:.2f}x")


if __name__ == "__main__":
    main()
