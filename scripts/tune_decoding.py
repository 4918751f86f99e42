"""Choose decoding settings (and checkpoint averages) on validation pairs: a grid of beam sizes, length
penalties, minimum lengths, ``a * src_len + b`` caps and repeated n-gram bans, each decoded over the same
validation pairs and scored like the trainer's validation (ROUGE-1/2/L F1 x100, rouge-score with stemming,
references = the pairs' target ids with BPE removed), with the hypotheses' and references' mean length and copy rate.

Each --model is one checkpoint (.ckpt, or .npz with --config), or several joined by '+', which are averaged
in memory first (as weights_average.py would write them). Every model is read once and decoded with every
grid point; the rows go to <output>.json (and a Markdown table to <output>.md) as they are measured, so an
interrupted sweep keeps what it measured and skips it when run again. The last line printed names the best
row by the mean of ROUGE-1/2/L. Use a validation split, never the test set.

Examples:
    python scripts/tune_decoding.py --model runs/ft/checkpoints/ckpt_finetune_best.ckpt \
        --dataset data/gigaword_valid.mindrecord --lines 1000 --beam 4,5 --length_penalty 0.6,1.0,1.4,2.0 \
        --output runs/ft/decode_sweep
    C=runs/ft/checkpoints
    python scripts/tune_decoding.py --model $C/ckpt_finetune_step1200.ckpt+$C/ckpt_finetune_step1500.ckpt \
        --dataset data/gigaword_valid.mindrecord --output runs/ft/avg_sweep
"""

import argparse
import itertools
import json
import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from src.utils.cli import run_cli, setup_logging  # noqa: E402
from src.utils.errors import UserError  # noqa: E402
from src.utils.fileio import atomic_open, check_output_file  # noqa: E402

logger = logging.getLogger("tune_decoding")


def number_list(kind):
    def parse(text):
        try:
            values = [kind(v) for v in text.split(",") if v.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a comma-separated list of {kind.__name__}: {text!r}") from None
        if not values:
            raise argparse.ArgumentTypeError("empty list")
        return values
    return parse


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", action="append", required=True,
                   help="checkpoint (.ckpt/.npz), or several joined by '+' to average (repeatable)")
    p.add_argument("--config", default="", help="JSON config (default: the one stored in the first .ckpt)")
    p.add_argument("--dataset", required=True, help="validation pair MindRecord dataset")
    p.add_argument("--lines", type=int, default=1000, help="first N validation pairs (by index) to decode")
    p.add_argument("--beam", type=number_list(int), default=[4], help="beam sizes, e.g. 4,5")
    p.add_argument("--length_penalty", type=number_list(float), default=[1.0], help="GNMT weights, e.g. 0.6,1.0")
    p.add_argument("--min_len", type=number_list(int), default=[0], help="minimum lengths in tokens, e.g. 0,6")
    p.add_argument("--max_len_a", type=number_list(float), default=None,
                   help="cap a in a * src_len + b (default: the config's)")
    p.add_argument("--max_len_b", type=number_list(int), default=None,
                   help="cap b in a * src_len + b (default: the config's)")
    p.add_argument("--no_repeat_ngram", type=number_list(int), default=None,
                   help="n-gram sizes (subword tokens) a hypothesis may not repeat, 0 = none, e.g. 0,2,3 "
                        "(default: the config's)")
    p.add_argument("--batch_size", type=int, default=0, help="sentences decoded at once (default: the config's)")
    p.add_argument("--output", required=True, help="results prefix: <output>.json and <output>.md")
    args = p.parse_args(argv)
    if args.lines < 1:
        p.error(f"--lines must be >= 1, got {args.lines}")
    for name in ("beam", "min_len", "no_repeat_ngram"):
        bad = [v for v in getattr(args, name) or () if v < (1 if name == "beam" else 0)]
        if bad:
            p.error(f"--{name}: {bad[0]} is out of range")
    return args


def load_model(spec: str, config_path: str):
    """``(model, config, description)`` for one --model value (averaged when it names several files)."""
    from src.evaluation.api import resolve_config
    from src.utils.average import average_checkpoints
    from src.utils.checkpoint import read_model_file
    from src.utils.fileio import require_file

    paths = [p for p in spec.split("+") if p]
    for path in paths:
        require_file(path, "--model")
    weights, state = read_model_file(paths[0])
    if len(paths) > 1:
        weights = average_checkpoints(paths)
    cfg = resolve_config(state, paths[0], config_path or None)
    return cfg, weights, paths


def grid(args, decode_config) -> list[dict]:
    a_values = args.max_len_a if args.max_len_a is not None else [decode_config.max_decode_length_a]
    b_values = args.max_len_b if args.max_len_b is not None else [decode_config.max_decode_length_b]
    n_values = args.no_repeat_ngram if args.no_repeat_ngram is not None else [decode_config.no_repeat_ngram_size]
    return [{"beam_size": beam, "length_penalty": lp, "min_len": min_len, "max_len_a": a, "max_len_b": b,
             "no_repeat_ngram_size": n}
            for beam, lp, min_len, a, b, n in itertools.product(args.beam, args.length_penalty, args.min_len,
                                                                a_values, b_values, n_values)]


GRID_KEYS = ("beam_size", "length_penalty", "min_len", "max_len_a", "max_len_b", "no_repeat_ngram_size")


def row_key(model: str, options: dict) -> str:
    """One row's identity; rows written before the n-gram ban was a grid axis decoded without one."""
    return json.dumps({"model": model, "no_repeat_ngram_size": 0, **options}, sort_keys=True)


def write_results(output: Path, rows: list[dict]):
    with atomic_open(output.with_name(output.name + ".json")) as handle:
        json.dump(rows, handle, indent=1)
        handle.write("\n")
    with atomic_open(output.with_name(output.name + ".md")) as handle:
        handle.write(markdown(rows))


def markdown(rows: list[dict]) -> str:
    lines = ["| model | beam | lp | min | a | b | no repeat | R-1 | R-2 | R-L | mean | words (ref) | copy (ref) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['beam_size']} | {r['length_penalty']} | {r['min_len']} | {r['max_len_a']} "
                     f"| {r['max_len_b']} | {r.get('no_repeat_ngram_size', 0)} | {r['rouge1']:.2f} | "
                     f"{r['rouge2']:.2f} | {r['rougeL']:.2f} | "
                     f"{r['mean']:.2f} | {r['hyp_words']:.2f} ({r['ref_words']:.2f}) | "
                     f"{r['copy_rate']:.3f} ({r['ref_copy_rate']:.3f}) |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    args = parse_args(argv)
    setup_logging()
    output = Path(args.output)
    check_output_file(output.with_name(output.name + ".json"), "--output")
    results_path = output.with_name(output.name + ".json")
    rows = []
    if results_path.is_file():
        try:
            rows = json.loads(results_path.read_text())
        except ValueError as exc:
            raise UserError(f"{results_path}: not a results file of this script ({exc})") from None
    done = {row_key(r["model"], {k: r[k] for k in GRID_KEYS if k in r}) for r in rows}
    from src.evaluation.scorers import get
    from src.evaluation.valid_generation import GenerationValidator, first_pairs
    from src.text.dictionary import Dictionary
    from src.utils.device import setup_device

    setup_device("CPU", None, mode="graph", distributed=False)
    for spec in args.model:
        cfg, weights, paths = load_model(spec, args.config)
        from src.dataset.writer import read_manifest

        vocab = read_manifest(args.dataset).get("vocab_path", "")
        if not vocab:
            raise UserError(f"{args.dataset}: its manifest names no vocabulary")
        dictionary = Dictionary.load_from_persisted_dict(vocab)
        from src.dataset.identity import check_model_vocabulary
        from src.evaluation.api import build_model

        check_model_vocabulary(cfg.model_config.vocab_sha256, dictionary.digest(), paths[0], args.dataset)
        sources, targets = first_pairs(args.dataset, args.lines, cfg.dataset_config.max_len)
        validator = GenerationValidator(sources, targets, dictionary, cfg.decode_config,
                                        args.batch_size or cfg.dataset_config.batch_size, get("rouge"))
        model = build_model(cfg, len(dictionary), weights, paths[0])
        for options in grid(args, cfg.decode_config):
            if row_key(spec, options) in done:
                continue
            start = time.time()
            figures = validator(model, **options)
            row = {"model": spec, **options, "pairs": figures["valid_rouge_pairs"],
                   "rouge1": figures["valid_rouge1"], "rouge2": figures["valid_rouge2"],
                   "rougeL": figures["valid_rougeL"], "mean": figures["valid_rouge"],
                   "hyp_words": figures["valid_hyp_words"], "ref_words": figures["valid_ref_words"],
                   "copy_rate": figures["valid_copy_rate"], "ref_copy_rate": figures["valid_ref_copy_rate"],
                   "seconds": round(time.time() - start, 1)}
            rows.append(row)
            write_results(output, rows)
            print(markdown([row]).splitlines()[-1], flush=True)
    if not rows:
        raise UserError("no row measured")
    best = max(rows, key=lambda r: r["mean"])
    print(markdown(rows), end="")
    print(f"best by mean ROUGE-1/2/L: {best['model']} beam {best['beam_size']} lp {best['length_penalty']} "
          f"min {best['min_len']} a {best['max_len_a']} b {best['max_len_b']} "
          f"no repeat {best.get('no_repeat_ngram_size', 0)}: "
          f"{best['rouge1']:.2f} / {best['rouge2']:.2f} / {best['rougeL']:.2f}")


if __name__ == "__main__":
    sys.exit(run_cli(main))
