#!/usr/bin/env bash
# Runs every test: lint and type gates, the schema tests, the Python tests, the Node client's
# build/typecheck/lint/tests, the conformance suite for every implementation, the repository
# checks, and the benchmark's quick smoke run. Exits non-zero on the first failure.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
source scripts/setup.sh
PY="$ROOT/.venv/bin/python"
# The tests mostly wait on Redis and on worker processes, so they run in parallel (pytest-xdist),
# more processes than cores; DOTHIS_TEST_JOBS=1 runs them one at a time.
JOBS="${DOTHIS_TEST_JOBS:-3}"

STARTED=$SECONDS
step() { printf '\n== %s == (at %d s)\n' "$*" $((SECONDS - STARTED)); }

step "Python gates: ruff, mypy (strict), the import layers (lint-imports)"
(cd python && "$PY" -m ruff check src tests && "$PY" -m ruff format --check src tests && "$PY" -m mypy \
  && "$ROOT/.venv/bin/lint-imports")

step "schema/ tests"
"$PY" -m pytest -q -p no:cacheprovider schema/tests

step "Python tests (unit, integration, acceptance)"
"$PY" -m pytest -q -p no:cacheprovider -n "$JOBS" python/tests

step "Node client: build, typecheck, lint, node --test"
(cd node-client && DOTHIS_PYTHON="$PY" npm run --silent ci)

step "Conformance suite (every implementation)"
"$PY" -m pytest -q -s -p no:cacheprovider conformance/tests   # -s: show the pass table

step "Repository checks (docker-compose.yml, README commands)"
"$PY" -m pytest -q -p no:cacheprovider -n "$JOBS" tests

if [ -f bench/run.py ]; then
  step "Benchmark smoke run (checks that it runs, not timings)"
  "$PY" bench/run.py --quick
fi

printf '\nall tests passed in %d s\n' $((SECONDS - STARTED))
