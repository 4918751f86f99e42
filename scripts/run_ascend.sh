#!/usr/bin/env bash
# Train (-t t) or evaluate (-t i) on Ascend. bash scripts/run_ascend.sh -h for the options.
set -euo pipefail
DEVICE_TARGET=Ascend
source "$(dirname "${BASH_SOURCE[0]}")/launch.sh"
