#!/usr/bin/env bash
# The dothis demo: a private redis-server (unless DOTHIS_REDIS_URL is set), one Python worker
# running dothis.examples, then tasks from redis-cli, Python and Node, with their results.
# Cleans up everything it started.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
source scripts/setup.sh >/dev/null
PY="$ROOT/.venv/bin/python"
WORK="$(mktemp -d)"
REDIS_PID="" WORKER_PID=""

cleanup() {
  [ -n "$WORKER_PID" ] && kill -TERM "$WORKER_PID" 2>/dev/null && wait "$WORKER_PID" 2>/dev/null || true
  [ -n "$REDIS_PID" ] && kill -TERM "$REDIS_PID" 2>/dev/null && wait "$REDIS_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

if [ -z "${DOTHIS_REDIS_URL:-}" ]; then
  PORT="$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  redis-server --port "$PORT" --bind 127.0.0.1 --save "" --appendonly no --dir "$WORK" \
    --logfile "$WORK/redis.log" &
  REDIS_PID=$!
  export DOTHIS_REDIS_URL="redis://127.0.0.1:$PORT/0"
  for _ in $(seq 100); do redis-cli -p "$PORT" PING >/dev/null 2>&1 && break; sleep 0.05; done
  echo "started a private redis-server at $DOTHIS_REDIS_URL"
fi
CLI=(redis-cli -u "$DOTHIS_REDIS_URL")

"$ROOT/.venv/bin/dothis" worker --queue dothis --processes 1 dothis.examples >"$WORK/worker.log" 2>&1 &
WORKER_PID=$!
for _ in $(seq 200); do
  [ -n "$("${CLI[@]}" --scan --pattern 'dothis:worker:*')" ] && break
  kill -0 "$WORKER_PID" 2>/dev/null || { cat "$WORK/worker.log"; exit 1; }
  sleep 0.05
done
echo "started a worker: dothis worker --queue dothis --processes 1 dothis.examples"

echo
echo "== from redis-cli =="
ID="$("$PY" -c 'import uuid; print(uuid.uuid4())')"
typed() {
  printf 'redis-cli'
  for word in "$@"; do case "$word" in *" "*) printf " '%s'" "$word" ;; *) printf ' %s' "$word" ;; esac; done
  echo
  "${CLI[@]}" "$@" >/dev/null
}
typed HSET "dothis:task:$ID" function echo
typed HSET "dothis:task:$ID" state pending
typed HSET "dothis:task:$ID" args '{ "text": "ooh yeeah" }'
typed LPUSH dothis:pending "$ID"
for _ in $(seq 200); do
  [ "$("${CLI[@]}" HGET "dothis:task:$ID" result)" != "" ] && break
  sleep 0.05
done
echo "HMGET dothis:task:$ID result result-value"
"${CLI[@]}" --no-raw HMGET "dothis:task:$ID" result result-value

echo
echo "== from Python =="
"$PY" - <<'PYTHON'
from dothis import Queue, TaskFailed

queue = Queue("dothis")
print("add(a=2, b=3) ->", queue.enqueue("add", a=2, b=3).wait(timeout=10))
try:
    queue.enqueue("fail", message="on purpose").wait(timeout=10)
except TaskFailed as error:
    print(f"fail(message='on purpose') -> failed: {error.code}: {error.reason}")
queue.close()
PYTHON

echo
echo "== from Node =="
node --input-type=module - <<NODE
import { Queue } from '$ROOT/node-client/dist/esm/index.js';

const queue = new Queue('dothis', { url: process.env.DOTHIS_REDIS_URL });
const task = await queue.enqueue('echo', { text: 'ooh yeeah from Node' });
console.log('echo ->', await task.wait({ timeout: 10000 }));
await queue.close();
NODE

echo
echo "done; stopping the worker$([ -n "$REDIS_PID" ] && echo " and redis-server")"
