#!/usr/bin/env bash
# Sourced by launch.sh and stop_training.sh: job_pids PID prints PID and its descendant processes that
# run train.py or eval.py, one per line. Under msrun these are the workers: msrun itself (train.py is
# one of its arguments) and its scheduler process (MS_ROLE=MS_SCHED) are left alone, since a signal
# would end them before the workers have written their checkpoint.
job_pids() {
    local pid cmd
    for pid in "$1" $(_job_descendants "$1"); do
        cmd="$(tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null)" || continue
        [[ "$cmd" =~ (^|[[:space:]/])(train|eval)\.py([[:space:]]|$) ]] || continue  # not bench_train.py
        [[ "$cmd" == *msrun* ]] && continue
        tr '\0' '\n' < "/proc/$pid/environ" 2>/dev/null | grep -qx "MS_ROLE=MS_SCHED" && continue
        echo "$pid"
    done
}
# proc_start PID: the process's start time (clock ticks since boot, /proc/PID/stat field 22), which
# tells a process from a later one that got the same pid
proc_start() {
    local stat
    stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
    stat="${stat##*) }"          # the command name may hold spaces and parentheses: skip past it
    set -- $stat
    echo "${20}"                  # field 22 of the whole line = field 20 after "pid (comm)"
}
_job_descendants() {
    local child
    for child in $(pgrep -P "$1" || true); do echo "$child"; _job_descendants "$child"; done
}
# job_output PID: the run folder a train.py process writes to (its --output, resolved from its working
# folder; "output" when it has none), or nothing if that cannot be read
job_output() {
    local args=() cwd out="output" i
    mapfile -d '' args < "/proc/$1/cmdline" 2>/dev/null || return 1
    cwd="$(readlink "/proc/$1/cwd" 2>/dev/null)" || return 1
    for ((i = 0; i < ${#args[@]}; i++)); do
        case "${args[$i]}" in
            --output) out="${args[$((i + 1))]:-}" ;;
            --output=*) out="${args[$i]#--output=}" ;;
        esac
    done
    [[ "$out" == /* ]] || out="$cwd/$out"
    (cd "$out" 2>/dev/null && pwd -P)
}
