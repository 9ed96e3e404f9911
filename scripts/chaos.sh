#!/usr/bin/env bash
# The chaos suite: fault-injection scenarios against real redis-server and worker processes,
# at full size unless DOTHIS_CHAOS is set otherwise. Prints one table row per scenario.
# Bounded in time: the whole run is stopped after DOTHIS_CHAOS_TIMEOUT seconds (default 900).
#
#   bash scripts/chaos.sh                    # full sizes
#   DOTHIS_CHAOS=bounded bash scripts/chaos.sh   # the sizes the ordinary test run uses
#   bash scripts/chaos.sh -k poison          # extra arguments go to pytest
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="$ROOT/.venv/bin/python"
if [ ! -x "$PY" ]; then
  source scripts/setup.sh
fi
command -v redis-server >/dev/null || { echo "redis-server is needed: apt-get install -y redis-server" >&2; exit 1; }
export DOTHIS_CHAOS="${DOTHIS_CHAOS:-full}"
started=$(date +%s)
status=0
timeout --signal=TERM --kill-after=30 "${DOTHIS_CHAOS_TIMEOUT:-900}" \
  "$PY" -m pytest -p no:cacheprovider -m chaos -rfEX python/tests/chaos "$@" || status=$?
echo "chaos suite ($DOTHIS_CHAOS sizes): exit $status after $(( $(date +%s) - started )) s"
exit "$status"
