#!/usr/bin/env bash
# Run the test suite and the linter: bash scripts/run_tests.sh [--fast] [pytest arguments]
# Creates .venv and installs requirements.txt first if needed. --fast leaves out the tests marked slow
# (end-to-end training, decoding and launcher runs): the quick lane for your own edit-test loop; CI runs
# everything.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup_venv.sh
VENV="${MASS_VENV:-$ROOT/.venv}"
export PYTHONDONTWRITEBYTECODE=1 GLOG_v="${GLOG_v:-3}"

echo "== ruff" >&2
"$VENV/bin/ruff" check .

FAST=()
if [ "${1:-}" = "--fast" ]; then
    shift
    FAST=(-m "not slow")
fi

echo "== pytest" >&2
set +e
"$VENV/bin/python" -m pytest ${FAST[@]+"${FAST[@]}"} "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
    echo "error: pytest collected no tests" >&2
    exit 1
fi
exit "$status"
