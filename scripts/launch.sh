#!/usr/bin/env bash
# Shared by run_cpu.sh, run_gpu.sh and run_ascend.sh (which set DEVICE_TARGET first); not run directly.
# Strict: unknown options are rejected, the job runs in the foreground, its exit code is ours.
set -euo pipefail

usage() {
    cat <<USAGE
Usage: bash scripts/run_${DEVICE_TARGET,,}.sh -t t|i [options] [-- config overrides]

  -t, --task t|i        t: train (train.py), i: inference/evaluation (eval.py)
  -n, --device_num N    number of devices; N > 1 runs data parallel through msrun (default 1)
  -i, --device_id ID    device to use when N = 1 (default: \$DEVICE_ID or 0)
  -c, --config FILE     config JSON (default config/config.json)
  -o, --output PATH     train: run folder (default output/); infer: hypotheses file or folder
  -v, --vocab FILE      vocabulary (inference)
  -m, --metric NAME     inference metric: rouge, rouge_pltrdy or ppl (default rouge)
  -h, --help            this text
Anything after -- goes to train.py / eval.py unchanged, e.g. -- --learn_rate_config.lr=5e-4

The process id of the job is written to <output>/train.pid; scripts/stop_training.sh <output> stops a
training run cleanly (a final checkpoint is written).
USAGE
}

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TASK="" DEVICE_NUM=1 DEVICE_ID_ARG="${DEVICE_ID:-0}" CONFIG="config/config.json" OUTPUT="" VOCAB="" METRIC="rouge"
EXTRA=()
while [ $# -gt 0 ]; do
    case "$1" in
        -t|--task) TASK="${2:?-t needs a value}"; shift 2 ;;
        -n|--device_num) DEVICE_NUM="${2:?-n needs a value}"; shift 2 ;;
        -i|--device_id) DEVICE_ID_ARG="${2:?-i needs a value}"; shift 2 ;;
        -c|--config) CONFIG="${2:?-c needs a value}"; shift 2 ;;
        -o|--output) OUTPUT="${2:?-o needs a value}"; shift 2 ;;
        -v|--vocab) VOCAB="${2:?-v needs a value}"; shift 2 ;;
        -m|--metric) METRIC="${2:?-m needs a value}"; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        --) shift; EXTRA=("$@"); break ;;
        *) echo "error: unknown option $1" >&2; usage >&2; exit 2 ;;
    esac
done
case "$TASK" in t|train) TASK=train ;; i|infer) TASK=infer ;;
    *) echo "error: -t must be t (train) or i (inference)" >&2; usage >&2; exit 2 ;; esac
[[ "$DEVICE_NUM" =~ ^[1-9][0-9]*$ ]] || { echo "error: -n must be a positive integer" >&2; exit 2; }
[ -f "$CONFIG" ] || { echo "error: config not found: $CONFIG" >&2; exit 2; }

PYTHON="${PYTHON:-python}"
if [ -x "$ROOT/.venv/bin/python" ] && [ -z "${VIRTUAL_ENV:-}" ]; then PYTHON="$ROOT/.venv/bin/python"; fi
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" GLOG_v="${GLOG_v:-3}"

if [ "$TASK" = train ]; then
    OUTPUT="${OUTPUT:-output}"
    [ -e "$OUTPUT" ] && [ ! -d "$OUTPUT" ] && { echo "error: $OUTPUT: is a file; -o names the run folder" >&2; exit 2; }
    mkdir -p "$OUTPUT" 2>/dev/null || { echo "error: $OUTPUT: cannot create this folder" >&2; exit 2; }
    ARGS=("$ROOT/train.py" --config "$CONFIG" --output "$OUTPUT" --device_target "$DEVICE_TARGET" "${EXTRA[@]}")
else
    [ -f "$ROOT/eval.py" ] || { echo "error: $ROOT/eval.py is missing: inference is not available in this checkout" >&2; exit 2; }
    [ -n "$OUTPUT" ] || { echo "error: inference needs -o (where the hypotheses go)" >&2; exit 2; }
    # a folder (existing, or named with a trailing /) gets the hypotheses as <folder>/hypotheses.txt
    if [ -d "$OUTPUT" ] || [[ "$OUTPUT" == */ ]]; then OUTPUT="${OUTPUT%/}/hypotheses.txt"; fi
    mkdir -p "$(dirname "$OUTPUT")" 2>/dev/null || { echo "error: $(dirname "$OUTPUT"): cannot create this folder" >&2; exit 2; }
    ARGS=("$ROOT/eval.py" --config "$CONFIG" --output "$OUTPUT" --metric "$METRIC" --device_target "$DEVICE_TARGET")
    [ -n "$VOCAB" ] && ARGS+=(--vocab "$VOCAB")
    ARGS+=("${EXTRA[@]}")
fi

PIDFILE="$OUTPUT/train.pid"
[ "$TASK" = infer ] && PIDFILE="$(dirname "$OUTPUT")/infer.pid"
if [ "$DEVICE_NUM" -gt 1 ]; then
    MSRUN="$(dirname "$PYTHON")/msrun"; command -v "$MSRUN" >/dev/null 2>&1 || MSRUN=msrun
    # msrun starts each worker with the "python" on PATH
    if [ "$PYTHON" != python ]; then export PATH="$(dirname "$PYTHON"):$PATH"; fi
    LOGDIR="$(dirname "$PIDFILE")/msrun_log"
    echo "launching $DEVICE_NUM workers on $DEVICE_TARGET through msrun (logs: $LOGDIR)" >&2
    "$MSRUN" --worker_num="$DEVICE_NUM" --local_worker_num="$DEVICE_NUM" --master_port="${MASTER_PORT:-8118}" \
        --log_dir="$LOGDIR" --join=True "${ARGS[@]}" &
else
    DEVICE_ID="$DEVICE_ID_ARG" "$PYTHON" "${ARGS[@]}" --device_id "$DEVICE_ID_ARG" &
fi
JOB=$!
source "$ROOT/scripts/job_pids.sh"
# the pid, its start time (a later process with the same pid is not this job) and the folder
echo "$JOB $(proc_start "$JOB") $(cd "$(dirname "$PIDFILE")" && pwd)" > "$PIDFILE"
# On INT/TERM, signal the train.py / eval.py processes themselves: msrun puts its workers in their own
# session (the terminal's Ctrl-C does not reach them) and would not forward the signal.
trap 'kill -TERM $(job_pids "$JOB") 2>/dev/null || true' INT TERM
set +e
wait "$JOB"; STATUS=$?
# a signal interrupts wait: keep waiting for the job to finish its clean stop
while kill -0 "$JOB" 2>/dev/null; do wait "$JOB"; STATUS=$?; done
set -e
rm -f "$PIDFILE"
exit "$STATUS"
