#!/usr/bin/env bash
# Stop a run started by scripts/run_{cpu,gpu,ascend}.sh cleanly: the job finishes its current step,
# writes a checkpoint and exits; resume it later with  -- --resume auto
#   bash scripts/stop_training.sh [run folder (default output)] [seconds to wait, default 600]
set -euo pipefail
case "${1:-}" in -h|--help) sed -n '2,4p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;; esac
RUN="${1:-output}" WAIT="${2:-600}"
PIDFILE="$RUN/train.pid"
[ -f "$PIDFILE" ] || { echo "error: no $PIDFILE: is a run started by scripts/run_*.sh going on there?" >&2; exit 2; }
read -r PID START FOLDER < "$PIDFILE" || true
source "$(dirname "${BASH_SOURCE[0]}")/job_pids.sh"
if ! [[ "$PID" =~ ^[0-9]+$ ]]; then
    echo "error: $PIDFILE: not a pid file of scripts/run_*.sh (no process id in it)" >&2; exit 2
fi
if ! [[ "${START:-}" =~ ^[0-9]+$ ]] || [ -z "${FOLDER:-}" ]; then
    echo "error: $PIDFILE: not a pid file of scripts/run_*.sh (it must hold the process id, its start time and" \
         "the run folder): nothing signalled" >&2; exit 2
fi
if ! kill -0 "$PID" 2>/dev/null; then
    echo "error: process $PID from $PIDFILE is not running (stale pid file removed)" >&2
    rm -f "$PIDFILE"; exit 2
fi
if [ "$(proc_start "$PID")" != "$START" ]; then
    echo "error: $PIDFILE: process $PID is not the job that wrote it (a later process got its pid; stale pid" \
         "file removed)" >&2
    rm -f "$PIDFILE"; exit 2
fi
if [ "$FOLDER" != "$(cd "$RUN" && pwd)" ]; then
    echo "error: $PIDFILE was written for the run in $FOLDER, not for $RUN: nothing signalled" >&2; exit 2
fi
# Signal the train.py processes themselves (under msrun: every worker, which agree on the step to stop
# at), not msrun, which could kill its workers before they write the checkpoint.
TARGETS=($(job_pids "$PID"))
if [ ${#TARGETS[@]} -eq 0 ]; then
    echo "error: process $PID is not a training job started by scripts/run_*.sh (no train.py in it)" >&2
    exit 2
fi
# and every one of them must write to this run folder (its --output): a pid file that names another
# training (copied, edited, or of a folder moved since) never stops it
HERE="$(cd "$RUN" && pwd -P)"
for T in "${TARGETS[@]}"; do
    WRITES="$(job_output "$T")" || WRITES=""
    if [ "$WRITES" != "$HERE" ]; then
        echo "error: $PIDFILE: process $T writes to ${WRITES:-an unknown folder}, not to $RUN: nothing signalled" >&2
        exit 2
    fi
done
# and one of them must be the holder of the run folder's lock (src/utils/output_lock.py writes its pid and
# start time into $RUN/.lock while train.py runs): a process whose command line merely reads like a training
# of this folder holds none, and a lock file whose holder died names a process that is gone or another one
LOCK="$RUN/.lock"
HOLDER="$(cat "$LOCK" 2>/dev/null)" || HOLDER=""
HPID="" HSTART=""
[[ "$HOLDER" =~ \"pid\":\ ([0-9]+) ]] && HPID="${BASH_REMATCH[1]}"
[[ "$HOLDER" =~ \"start_ticks\":\ ([0-9]+) ]] && HSTART="${BASH_REMATCH[1]}"
if [ -z "$HPID" ]; then
    echo "error: $LOCK: no process holds $RUN (no lock holder recorded): process $PID is not its training, or" \
         "it has not started yet (try again in a moment): nothing signalled" >&2
    exit 2
fi
HOLDS=""
for T in "${TARGETS[@]}"; do if [ "$T" = "$HPID" ]; then HOLDS=1; fi; done
if [ -z "$HOLDS" ]; then
    echo "error: $LOCK: $RUN is held by pid $HPID, not by process $PID from $PIDFILE (nor by its workers):" \
         "nothing signalled" >&2
    exit 2
fi
if [ -z "$HSTART" ] || [ "$(proc_start "$HPID")" != "$HSTART" ]; then
    echo "error: $LOCK: the holder it records (pid $HPID) is no longer running (process $HPID now is another" \
         "one): nothing signalled" >&2
    exit 2
fi
kill -TERM "${TARGETS[@]}"
echo "sent SIGTERM to ${TARGETS[*]}; waiting for the final checkpoint..." >&2
for _ in $(seq 1 "$WAIT"); do
    kill -0 "$PID" 2>/dev/null || { echo "stopped" >&2; exit 0; }
    sleep 1
done
echo "error: $PID still running after ${WAIT}s" >&2
exit 1
