r"""Diagnose what a MASS model relies on: the source (span losses) and copying (copy rate).

``span``: teacher-forced token loss of a checkpoint on a validation set (pre-training: the masked
fragments with fixed masks; pairs: the targets) (a) as trained, (b) with the ``<mask>`` source
positions hidden from the decoder, (c) with the whole source hidden; then how much the source lowers
the loss, and which share of that comes through real tokens and through ``<mask>`` slots
(src/evaluation/source_reliance.py).

``copy``: the copy rate of generated texts (share of their words found in the paired source), next to
the references' copy rate and both average lengths (src/evaluation/copy_rate.py). eval.py's ROUGE report
holds the same numbers for every decode.

Examples:
    python scripts/diagnose_mass.py span --checkpoint runs/pretrain/checkpoints/ckpt_pretrain_best.ckpt \
        --dataset data/news_crawl_len_64_valid.mindrecord
    python scripts/diagnose_mass.py copy --hypotheses results/gigaword_mass.txt \
        --sources ../shared/data/gigaword/Giga/input.txt --references ../shared/data/gigaword/Giga/task1_ref0.txt
"""

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from src.utils.cli import run_cli  # noqa: E402
from src.utils.errors import UserError  # noqa: E402
from src.utils.fileio import atomic_open, iter_lines, require_file  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    span = sub.add_parser("span", help="span losses with the source (partly) hidden")
    span.add_argument("--checkpoint", required=True, help=".ckpt with its config (train.py checkpoints)")
    span.add_argument("--dataset", required=True, help="validation dataset (pre-training or pairs)")
    span.add_argument("--batches", type=int, default=0, help="use only the first N batches (0: all)")
    span.add_argument("--output", default="", help="also write the result as JSON here")
    copy = sub.add_parser("copy", help="copy rate of hypotheses and references")
    copy.add_argument("--hypotheses", required=True, help="generated texts, one per line")
    copy.add_argument("--sources", required=True, help="the source texts, line-aligned")
    copy.add_argument("--references", default="", help="the references, line-aligned (optional)")
    copy.add_argument("--output", default="", help="also write the result as JSON here")
    return p.parse_args(argv)


def span(args) -> dict:
    from config.config import with_vocab_size
    from src.dataset.load_dataset import load_from_config, resolve_datasets
    from src.dataset.writer import read_manifest
    from src.evaluation.api import resolve_config
    from src.evaluation.source_reliance import span_losses
    from src.transformer.transformer import MassTransformer
    from src.utils.checkpoint import assign_weights, read_model_file
    from src.utils.device import setup_device

    require_file(args.checkpoint, "checkpoint")
    weights, state = read_model_file(args.checkpoint)  # one read: the config and the weights
    cfg = resolve_config(state, args.checkpoint)
    datasets = resolve_datasets(args.dataset)
    cfg = with_vocab_size(cfg, read_manifest(datasets[0])["vocab_size"], f"{args.dataset}")
    setup_device("CPU", distributed=False)
    model = MassTransformer(cfg.model_config)
    assign_weights(model, weights, args.checkpoint)
    batches = load_from_config(cfg, datasets, epoch=0, shuffle=False, training=False).create_tuple_iterator(
        num_epochs=1, output_numpy=True)
    if args.batches:
        batches = (b for i, b in zip(range(args.batches), batches, strict=False))
    result = span_losses(model, batches)
    return {"checkpoint": str(args.checkpoint), "dataset": str(args.dataset),
            "hide_masked_source_from_decoder": cfg.model_config.hide_masked_source_from_decoder,
            "kind": read_manifest(datasets[0])["kind"], **result}


def _lines(path, what):
    return [line for _, line in iter_lines(require_file(path, what))]


def copy(args) -> dict:
    from src.evaluation.copy_rate import copy_rate, mean_words

    hyps, sources = _lines(args.hypotheses, "hypotheses"), _lines(args.sources, "sources")
    if len(hyps) != len(sources):
        raise UserError(f"{args.hypotheses}: {len(hyps)} lines but {args.sources} has {len(sources)}")
    result = {"hypotheses": str(args.hypotheses), "lines": len(hyps),
              "copy_rate": copy_rate(hyps, sources), "hypothesis_words": mean_words(hyps)}
    if args.references:
        refs = _lines(args.references, "references")
        if len(refs) != len(sources):
            raise UserError(f"{args.references}: {len(refs)} lines but {args.sources} has {len(sources)}")
        result.update(reference_copy_rate=copy_rate(refs, sources), reference_words=mean_words(refs))
    return result


def main(argv=None):
    args = parse_args(argv)
    result = span(args) if args.command == "span" else copy(args)
    text = json.dumps(result, indent=2)
    if args.output:
        with atomic_open(args.output) as handle:
            handle.write(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
