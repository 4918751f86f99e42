#!/usr/bin/env bash
# Train (-t t) or evaluate (-t i) on GPU. bash scripts/run_gpu.sh -h for the options.
set -euo pipefail
DEVICE_TARGET=GPU
source "$(dirname "${BASH_SOURCE[0]}")/launch.sh"
