r"""Evaluate a MASS model: ROUGE of generated summaries, or teacher-forced perplexity.

ROUGE (--metric rouge, or rouge_pltrdy for ModelZoo-comparable numbers): the whole test set is decoded
with beam search (decode_config), the hypotheses are de-BPE'd, detokenized and written one per line in
the order of the source file to --output. They are scored against the raw reference file the test
dataset was built from (its manifest's "sources"; a BPE'd *_bpe* file is de-BPE'd and detokenized the
same way), or against --test_ref. With --tokenized_output hypotheses (and BPE'd references) stay
space-separated tokens, which is right when the references are tokenized text (Gigaword).
PPL (--metric ppl): teacher-forced perplexity per subword and per word
(subwords merged back, </s> one word), no label smoothing. Either way a JSON report goes to
<output>.report.json and a summary to <output>.summary.txt and stdout.

Examples:
    python eval.py --checkpoint runs/giga/checkpoints/ckpt_finetune_best.ckpt \
        --test_dataset data/gigaword_test.mindrecord --output runs/giga/test_hyps.txt
    python eval.py --config config/config.json --checkpoint avg.npz --vocab vocab/vocab.txt \
        --test_src Giga/input.txt --test_ref Giga/task1_ref0.txt --codes vocab/all.bpe.codes \
        --output out/hyps.txt --decode_config.beam_width=5
    python eval.py --checkpoint run.ckpt --test_dataset data/gigaword_test.mindrecord --metric ppl \
        --output out/ppl.txt
    echo "some article text" | python eval.py --checkpoint run.ckpt --vocab vocab.txt --codes codes \
        --interactive

The config defaults to the one stored in the checkpoint; --config replaces it (needed for an .npz).
Config keys can be overridden as --section.key=value, e.g. --decode_config.length_penalty_weight=0.6.
On CPU, beam search runs its attention in two kernels that g++ (or $CXX) compiles on first use into
$MASS_KERNEL_CACHE (default ~/.cache/mass_mindspore/kernels); MASS_CPU_KERNELS=0, or no compiler, uses
MindSpore ops instead (same hypotheses). When other processes keep the cores busy, beam search keeps its
threads to the cores they leave (same hypotheses); MASS_CORE_SHARE=0 turns that off.
"""

import argparse
import sys

from src.evaluation.scorers import SCORERS
from src.utils.cli import add_normalization_options, parse_with_overrides, run_cli
from src.utils.device import DEVICE_TARGETS

METRICS = (*SCORERS, "ppl")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="", help="JSON config (default: the one stored in the checkpoint)")
    p.add_argument("--checkpoint", default="", help=".ckpt or .npz (default: checkpoint_options.existed_ckpt)")
    p.add_argument("--vocab", default="", help="vocabulary file (default: the test dataset's vocab_path)")
    p.add_argument("--codes", default="", help="BPE codes, to encode raw text (--test_src, --interactive)")
    p.add_argument("--metric", default="rouge", choices=METRICS,
                   help="rouge: rouge-score with stemming; rouge_pltrdy: the pltrdy rouge package (ModelZoo); "
                        "bleu, chrf: sacrebleu's corpus BLEU and chrF; ppl: perplexity")
    p.add_argument("--hypotheses", default="",
                   help="score this hypotheses file against --test_ref (no model: e.g. another system's outputs); "
                        "the report goes to <output>.report.json")
    p.add_argument("--output", default="output/hypotheses.txt",
                   help="hypotheses file; <output>.report.json and <output>.summary.txt go next to it")
    p.add_argument("--test_dataset", default="", help="pair MindRecord dataset (default: dataset_config.test_dataset)")
    p.add_argument("--test_src", default="", help="raw source text file, instead of --test_dataset")
    p.add_argument("--test_ref", default="", help="raw reference file (with --test_src, or to replace the "
                                                  "dataset's own references)")
    add_normalization_options(p, ", for raw input: as the training data was")
    p.add_argument("--tokenized_output", action="store_true",
                   help="write hypotheses as tokens (BPE removed, not detokenized), to score against tokenized "
                        "references such as Gigaword's ('do n't', '#.# percent')")
    p.add_argument("--batch_size", type=int, default=None,
                   help="sentences decoded at once (a slot is refilled as its sentence stops); "
                        "default: dataset_config.batch_size")
    p.add_argument("--interactive", action="store_true", help="read raw lines on stdin, print one output each")
    p.add_argument("--device_target", "--platform", default="CPU", choices=DEVICE_TARGETS)
    p.add_argument("--device_id", type=int, default=None, help="default: $DEVICE_ID or 0")
    p.add_argument("--pynative", action="store_true", help="PyNative instead of graph mode (debugging)")
    args, rest = parse_with_overrides(p, argv)
    if args.hypotheses and not args.test_ref:
        p.error("--hypotheses needs --test_ref")
    if args.hypotheses and args.metric == "ppl":
        p.error("--hypotheses scores text: choose --metric " + "|".join(SCORERS))
    if args.test_src and not (args.test_ref or args.interactive):
        p.error("--test_src needs --test_ref")
    if args.batch_size is not None and args.batch_size < 1:
        p.error(f"--batch_size must be at least 1, got {args.batch_size}")
    args.overrides = rest + ([f"--dataset_config.batch_size={args.batch_size}"] if args.batch_size else [])
    return args


def main(argv=None):
    args = parse_args(argv)
    from src.evaluation.evaluate import EvalRequest, run_evaluation

    return run_evaluation(EvalRequest.from_namespace(args))


if __name__ == "__main__":
    sys.exit(run_cli(main))
