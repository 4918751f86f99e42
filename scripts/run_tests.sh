#!/usr/bin/env bash
# Run the test suite and the linter: bash scripts/run_tests.sh [--fast] [pytest arguments]
# Creates .venv and installs requirements.txt first if needed. --fast leaves out the tests marked slow
# (end-to-end training, decoding and launcher runs): the quick lane for your own edit-test loop; CI runs
# everything. The tests run in MASS_TEST_WORKERS parallel processes (pytest-xdist, default: one per core, at
# most 4; 1 runs them in this process), each test file in one worker so that its module fixtures are built once.
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

CORES="$(nproc)"
WORKERS="${MASS_TEST_WORKERS:-$(( CORES < 4 ? CORES : 4 ))}"
PARALLEL=()
if [ "$WORKERS" -gt 1 ]; then
    PARALLEL=(-n "$WORKERS" --dist loadfile)
fi

echo "== pytest ($WORKERS worker(s))" >&2
set +e
"$VENV/bin/python" -m pytest ${PARALLEL[@]+"${PARALLEL[@]}"} ${FAST[@]+"${FAST[@]}"} "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
    echo "error: pytest collected no tests" >&2
    exit 1
fi
exit "$status"
