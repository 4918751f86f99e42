#!/usr/bin/env bash
# Train (-t t) or evaluate (-t i) on CPU. bash scripts/run_cpu.sh -h for the options.
set -euo pipefail
DEVICE_TARGET=CPU
source "$(dirname "${BASH_SOURCE[0]}")/launch.sh"
