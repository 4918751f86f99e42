"""Benchmark: sentences/s of tokenize + BPE + MindRecord write, against the subword-nmt CLI.

Runs, side by side on the same text:
  baseline  single-process ``subword-nmt apply-bpe`` on the already tokenized text (BPE only)
  ours      tokenize_corpus.py -> apply_bpe_encoding.py -> news_crawl.py, --processes N each
and the peak memory (RSS summed over each stage's process tree) of our pipeline at 1x and 10x the
corpus, to show that memory does not grow with the corpus.

    python bench/bench_preprocess.py                       # ../shared/data/news-en, 2 processes
    python bench/bench_preprocess.py --lines 20000 --scale 1 10

Uses ../shared/data/news-en/newstest.en.dedup.txt, or a generated corpus when that is absent.
"""

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.machine import describe  # noqa: E402
from bench.proc_monitor import run_measured  # noqa: E402

NEWS = ROOT.parent / "shared" / "data" / "news-en" / "newstest.en.dedup.txt"


def corpus_lines(limit):
    if NEWS.is_file():
        with open(NEWS, encoding="utf-8") as f:
            lines = [line.rstrip("\n") for line in f]
        source = str(NEWS)
    else:
        from tests.helpers import random_sentences
        lines, source = random_sentences(limit or 50000, seed=0, min_words=8, max_words=30), "generated"
    return (lines[:limit] if limit else lines), source


def python_cmd(script, *args):
    return [sys.executable, str(ROOT / script), *map(str, args)]


def pipeline(work, raw_folder, codes, processes):
    """Our three stages; returns [(stage, seconds, peak_bytes)]."""
    tok, bpe, rec = work / "tok", work / "bpe", work / "rec"
    stages = [
        ("tokenize", python_cmd("tokenize_corpus.py", "--corpus_folder", raw_folder, "--output_folder", tok,
                                "--pool_size", processes)),
        ("bpe+vocab", python_cmd("apply_bpe_encoding.py", "--codes", codes, "--src_folder", tok,
                                 "--output_folder", bpe, "--vocab_path", work / "vocab.txt",
                                 "--processes", processes)),
        ("mindrecord", python_cmd("news_crawl.py", "--src_folder", bpe, "--existed_vocab", work / "vocab.txt",
                                  "--output_folder", rec, "--max_len", 256, "--min_len", 1,
                                  "--processes", processes)),
    ]
    results = []
    for name, cmd in stages:
        seconds, peak = run_measured(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        results.append((name, seconds, peak))
    return results


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lines", type=int, default=0, help="use the first N lines (0: all)")
    p.add_argument("--processes", type=int, default=2)
    p.add_argument("--merges", type=int, default=10000, help="BPE merges learned for the benchmark")
    p.add_argument("--scale", type=int, nargs="+", default=[1, 10], help="corpus multiples to run ours at")
    p.add_argument("--keep", action="store_true", help="keep the work folder")
    args = p.parse_args(argv)

    from src.text.byte_pair_encoding import learn_bpe

    lines, source = corpus_lines(args.lines)
    work = Path(tempfile.mkdtemp(prefix="bench_preprocess_"))
    try:
        raw = work / "raw"
        raw.mkdir()
        (raw / "news.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
        # set-up (untimed): tokenize once for the baseline and learn codes on it
        base_tok = work / "base_tok"
        run_measured(python_cmd("tokenize_corpus.py", "--corpus_folder", raw, "--output_folder", base_tok,
                                "--pool_size", args.processes), stdout=subprocess.DEVNULL,
                     stderr=subprocess.DEVNULL)
        tokenized = base_tok / "news_tokenized.txt"
        codes = work / "codes.bpe"
        learn_bpe([tokenized], codes, args.merges)

        subword_nmt = Path(sys.executable).parent / "subword-nmt"
        with open(tokenized, "rb") as fin, open(work / "base_out.txt", "wb") as fout:
            base_s, base_peak = run_measured([str(subword_nmt), "apply-bpe", "-c", str(codes)],
                                             stdin=fin, stdout=fout)
        n = len(lines)
        rows = [("subword-nmt apply-bpe (1 process, BPE only)", n, base_s, base_peak, 1.0)]
        for scale in args.scale:
            if scale != 1:
                (raw / "news.txt").write_text(("\n".join(lines) + "\n") * scale, encoding="utf-8")
            for d in ("tok", "bpe", "rec"):
                shutil.rmtree(work / d, ignore_errors=True)
            stages = pipeline(work, raw, codes, args.processes)
            total = sum(s for _, s, _ in stages)
            peak = max(m for _, _, m in stages)
            label = f"ours x{scale}: tokenize+BPE+MindRecord ({args.processes} processes)"
            rows.append((label, n * scale, total, peak, (n * scale / total) / (n / base_s)))
            for name, s, m in stages:
                rows.append((f"    {name}", n * scale, s, m, None))
        print(f"\n{describe()}")
        print(f"corpus: {source}, {n} lines; BPE merges {args.merges}; processes {args.processes}\n")
        print(f"| {'run':<58} | {'sentences':>9} | {'seconds':>7} | {'sent/s':>8} | {'peak MiB':>8} | "
              f"{'vs CLI':>6} |")
        print(f"|{'-' * 60}|{'-' * 11}|{'-' * 9}|{'-' * 10}|{'-' * 10}|{'-' * 8}|")
        for label, count, seconds, peak, ratio in rows:
            r = f"{ratio:.2f}x" if ratio is not None else ""
            print(f"| {label:<58} | {count:>9} | {seconds:>7.1f} | {count / seconds:>8.0f} | "
                  f"{peak / 2**20:>8.0f} | {r:>6} |")
    finally:
        if args.keep:
            print(f"work folder kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
