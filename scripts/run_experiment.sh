#!/usr/bin/env bash
# The real-data experiment of docs/RESULTS.md (round 4): MASS pre-training vs training from scratch, on CPU.
#
#   bash scripts/run_experiment.sh [work folder (default runs/experiment)] [extra scripts/pipeline.py options]
#   bash scripts/run_experiment.sh runs/from_release --pretrained models/mass-small-news-keep40-7k
#
# Pre-trains config/small.json on the 91K news sentences of ../shared/data/news-en (plus the Gigaword
# training articles and Cornell training responses) for 7,000 steps of a 14,000-step schedule (poly decay
# over 14,000 steps, warm-up 350, peak lr 1e-3), keeping 40% of the masked fragment's tokens visible in the
# encoder (mask_config.replace_probs [0.5, 0.1, 0.4] instead of the paper's 80/10/10, docs/RESULTS.md
# round 3). Then fine-tunes on the 10K Gigaword pairs and the Cornell dialogs from the pre-trained model and
# from scratch (the same steps), decodes the 1951-pair Gigaword test set (ROUGE) and scores the Cornell test
# pairs (perplexity). Gigaword checkpoints are chosen by ROUGE on 300 validation pairs; the learning rates,
# the decoding and the checkpoint averaging are the validation choices of docs/RESULTS.md (MASS: lr 1e-3,
# the average of its 5 checkpoints, beam 4, length penalty 2.5, at least 4 tokens; scratch: lr 5e-4, the
# average of its 2 best, beam 5, length penalty 2.5, at least 6 tokens; both: no subword token twice in a
# headline, decode_config.no_repeat_ngram_size 1; Cornell: lr 1e-3). Every phase trains with dropout 0
# (--pretrain_dropout / --finetune_dropout): the runs these choices come from trained without dropout (until
# 2026-12-08 the trainer never switched it on), and dropout 0.1 was no better on validation for either
# system (docs/RESULTS.md, "Session 7"). The fine-tunings compile their step
# once for every batch shape (dataset_config.dynamic_shapes: bitwise the same losses, at most 4 GB of memory
# instead of 9.6 GB for Cornell, 1.6-1.9x slower steps; docs/PERFORMANCE.md). With --pretrained, the released
# model replaces the pre-training (its BPE codes and vocabulary are used). One training at a time; an
# interrupted run continues where it stopped when started again (finished stages are skipped; changed
# options redo what they reach).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
    sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
    exit 0
fi
DATA="${MASS_SHARED_DATA:-$ROOT/../shared/data}"
WORK="${1:-runs/experiment}"
shift || true
for d in "$DATA/news-en" "$DATA/gigaword" "$DATA/cornell-movie-dialogs"; do
    if [ ! -d "$d" ]; then
        echo "error: $d not found (set MASS_SHARED_DATA to the folder holding news-en/, gigaword/, cornell-movie-dialogs/)" >&2
        exit 2
    fi
done
source "$ROOT/scripts/setup_venv.sh"
cd "$ROOT"
exec "$VENV/bin/python" scripts/pipeline.py --work "$WORK" --config config/small.json \
    --news "$DATA/news-en/newstest.en.dedup.txt" --gigaword "$DATA/gigaword" \
    --cornell "$DATA/cornell-movie-dialogs" --bpe_merges 10000 --max_len 64 --lr 1e-3 --scratch_lr 5e-4 \
    --pretrain_steps 7000 --finetune_steps 1500 --cornell_steps 600 --evals 5 --pad_multiple 32 \
    --pretrain_dropout 0 --finetune_dropout 0 \
    "--pretrain_option=--mask_config.replace_probs=[0.5,0.1,0.4]" \
    --pretrain_option=--learn_rate_config.decay_steps=14000 --pretrain_option=--learn_rate_config.warmup_steps=350 \
    --pretrain_option=--checkpoint_options.save_ckpt_steps=700 \
    --pretrain_option=--checkpoint_options.eval_every_steps=700 \
    --finetune_option=--dataset_config.dynamic_shapes=true \
    --average best:5 --decode_option=--decode_config.length_penalty_weight=2.5 \
    --decode_option=--decode_config.min_decode_length=4 --decode_option=--decode_config.no_repeat_ngram_size=1 \
    --scratch_average best:2 --scratch_decode_option=--decode_config.beam_width=5 \
    --scratch_decode_option=--decode_config.length_penalty_weight=2.5 \
    --scratch_decode_option=--decode_config.min_decode_length=6 \
    --scratch_decode_option=--decode_config.no_repeat_ngram_size=1 "$@"
