#!/usr/bin/env bash
# Installs what the tests and the demo need, when missing: redis-server, a Python virtualenv with
# the dothis package (editable, with its dev tools), and the Node client's npm dependencies.
# Idempotent; sourced by scripts/test.sh and scripts/demo.sh.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"

need_apt() {
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing $*" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null \
      || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null; }
  else
    echo "missing: $* (install it: sudo apt-get install -y $*)" >&2
    exit 1
  fi
}

command -v redis-server >/dev/null && command -v redis-cli >/dev/null || need_apt redis-server
command -v python3 >/dev/null || need_apt python3
# The dashboard's browser test drives Debian's chromium through chromium-driver (never a downloaded
# browser); without them that one test is skipped.
if ! { command -v chromium && command -v chromedriver; } >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    need_apt chromium chromium-driver
  else
    echo "note: chromium and chromium-driver are missing, so the dashboard's browser test will be" \
      "skipped (sudo apt-get install -y chromium chromium-driver)" >&2
  fi
fi
command -v node >/dev/null && command -v npm >/dev/null \
  || { echo "Node.js 20 and npm are needed: https://nodejs.org/ (or apt-get install nodejs npm)" >&2; exit 1; }

if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV" 2>/dev/null || { need_apt python3-venv; python3 -m venv "$VENV"; }
fi
stamp="$VENV/.dothis-installed"
if [ ! -f "$stamp" ] || [ "$ROOT/python/pyproject.toml" -nt "$stamp" ]; then
  "$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null 2>&1 || true
  "$VENV/bin/python" -m pip install -q -e "$ROOT/python[dev]" 2>&1 | grep -v '^WARNING: Location' || true
  "$VENV/bin/python" -c "import dothis, redis, hiredis, jsonschema, yaml" \
    || { echo "installing the Python package failed" >&2; exit 1; }
  touch "$stamp"
fi

node_stamp="$ROOT/node-client/node_modules/.dothis-installed"
if [ ! -f "$node_stamp" ] || [ "$ROOT/node-client/package-lock.json" -nt "$node_stamp" ]; then
  (cd "$ROOT/node-client" && npm ci --no-audit --no-fund --loglevel=error)
  touch "$node_stamp"
fi
(cd "$ROOT/node-client" && npm run --silent build >/dev/null)
export PATH="$VENV/bin:$PATH"
