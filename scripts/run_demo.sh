#!/usr/bin/env bash
# The whole MASS pipeline on the small corpus shipped in scripts/demo_corpus/, on CPU, in a few minutes:
# tokenize -> BPE -> vocabulary -> MindRecord -> MASS pre-training -> fine-tuning (Gigaword headlines and
# Cornell dialogs, from the pre-trained model and from scratch) -> beam search -> ROUGE and perplexity.
#
#   bash scripts/run_demo.sh [output folder (default runs/demo)] [extra scripts/pipeline.py options]
#
# Creates .venv and installs requirements.txt first if needed. Prints a results table and where every
# artefact is. The corpus is synthetic and tiny: the numbers show the pipeline works, not what MASS can do
# (for that see docs/RESULTS.md and scripts/run_experiment.sh).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
    sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
    exit 0
fi
WORK="${1:-runs/demo}"
shift || true
source "$ROOT/scripts/setup_venv.sh"
cd "$ROOT"
CORPUS=scripts/demo_corpus
start=$(date +%s)
"$VENV/bin/python" scripts/pipeline.py --work "$WORK" --force --config config/tiny.json \
    --news "$CORPUS/news.txt" --gigaword "$CORPUS/gigaword" --cornell "$CORPUS/cornell" \
    --bpe_merges 1000 --max_len 64 --pretrain_steps 600 --finetune_steps 400 --cornell_steps 300 --evals 2 --pad_multiple 32 \
    --train_option=--dataset_config.bucket_boundaries=[] "$@"
echo
echo "demo finished in $(( $(date +%s) - start )) s; report: $WORK/report.md, curves: $WORK/results/curves.png"
