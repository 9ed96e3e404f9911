// A throwaway redis-server per test file, on a free loopback port (never the shared 6379).
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import net from 'node:net';
import { Redis } from 'ioredis';

/** A TCP port nothing listens on right now. */
export async function freePort() {
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address();
  server.close();
  await once(server, 'close');
  return port;
}

/** Polls `probe` until it returns a truthy value or `ms` pass. */
export async function until(probe, { ms = 5000, every = 20, what = 'condition' } = {}) {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, every));
  }
}

/**
 * Starts redis-server (on `port`, else a free one); resolves once it answers PING. `stop()` ends it by pid.
 * With `password` the server runs with --requirepass and `url` (and `raw`) carry the password.
 */
export async function startRedis(port, { password } = {}) {
  port ??= await freePort();
  const child = spawn('redis-server', [
    '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
    ...(password === undefined ? [] : ['--requirepass', password]),
  ], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (chunk) => { output += chunk; });
  child.stderr.on('data', (chunk) => { output += chunk; });
  const exited = once(child, 'exit');
  const url = `redis://${password === undefined ? '' : `:${encodeURIComponent(password)}@`}127.0.0.1:${port}/0`;
  const raw = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  raw.on('error', () => undefined);
  await until(async () => {
    if (child.exitCode !== null) throw new Error(`redis-server exited: ${output}`);
    try {
      if (raw.status === 'wait' || raw.status === 'end') await raw.connect();
      return (await raw.ping()) === 'PONG';
    } catch {
      raw.disconnect();
      return false;
    }
  }, { what: `redis-server on port ${port}` });
  return {
    port,
    url,
    raw,
    pid: child.pid,
    async stop() {
      raw.disconnect();
      if (child.exitCode === null) {
        process.kill(child.pid, 'SIGTERM');
        await exited;
      }
    },
  };
}

let counter = 0;
/** A queue name no other test in this process uses. */
export const uniqueQueue = (label = 'q') => `test-${label}-${process.pid}-${++counter}`;

/** Plays the worker's side of the protocol for `key`: writes the outcome, then announces it. */
export async function finishRaw(raw, queue, key, outcome) {
  const now = new Date().toISOString().replace('Z', '000Z');
  const fields = outcome.failed
    ? ['state', 'finished', 'result', 'failed', 'error-code', outcome.code, 'error-reason', outcome.reason,
      'error-exception', outcome.exception, 'finished-created', now]
    : ['state', 'finished', 'result-value', JSON.stringify(outcome.value), 'result', 'successful', 'finished-created', now];
  await raw.multi().hset(key, ...fields).publish(`${queue}:results`, key).exec();
}

/**
 * The Python interpreter of the dothis package: $DOTHIS_PYTHON, else ../.venv/bin/python relative
 * to node-client. Returns null when neither exists (cross-language tests then skip).
 */
export async function findPython() {
  const { access, constants } = await import('node:fs/promises');
  const { fileURLToPath } = await import('node:url');
  const candidate = process.env.DOTHIS_PYTHON || fileURLToPath(new URL('../../../.venv/bin/python', import.meta.url));
  try {
    await access(candidate, constants.X_OK);
    return candidate;
  } catch {
    return null;
  }
}

/**
 * Spawns `command args` as a user would, its output kept for `log()`; `stop()` sends SIGTERM, then
 * SIGKILL if it has not exited within `graceMs`, and resolves with the exit code; `kill()` SIGKILL.
 */
export function spawnWorker(command, args) {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  child.stdout.on('data', (chunk) => { log += chunk; });
  child.stderr.on('data', (chunk) => { log += chunk; });
  const exited = once(child, 'exit');
  return {
    pid: child.pid,
    log: () => log,
    async stop(graceMs = 15000) {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      process.kill(child.pid, 'SIGTERM');
      const timer = setTimeout(() => { log += `\n[not stopped after ${graceMs} ms: SIGKILL]\n`; child.kill('SIGKILL'); }, graceMs);
      const [code] = await exited;
      clearTimeout(timer);
      return code;
    },
    async kill() {
      if (child.exitCode === null && child.signalCode === null) process.kill(child.pid, 'SIGKILL');
      await exited;
    },
  };
}

/** Starts `python -m dothis worker ... dothis.examples` as a user would (spawnWorker). */
export function startWorker(python, url, queue, extra = []) {
  return spawnWorker(python, ['-m', 'dothis', 'worker', '--url', url, '--queue', queue, '--processes', '1', ...extra, 'dothis.examples']);
}

/** Runs a Python snippet with the dothis package; resolves with its stdout, rejects on failure. */
export async function runPython(python, code, env = {}) {
  const child = spawn(python, ['-c', code], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk) => { stdout += chunk; });
  child.stderr.on('data', (chunk) => { stderr += chunk; });
  const [exitCode] = await once(child, 'exit');
  if (exitCode !== 0) throw new Error(`python exited ${exitCode}: ${stderr}`);
  return stdout;
}
