// Least-privilege users (SPEC.md ACL): the Node producer and worker work with exactly the rules
// `dothis acl` prints, and a refusal reads as a PermissionDeniedError naming the rule to add.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { after, before, describe, test } from 'node:test';

import { Queue, Worker, withParams } from '../dist/esm/index.js';
import { explainNoPerm, keyRule, PermissionDeniedError } from '../dist/esm/errors.js';
import { findPython, startRedis, uniqueQueue } from './support/redis.mjs';

const python = await findPython();
const skip = python ? false
  : `no Python interpreter with dothis: set DOTHIS_PYTHON or create ../.venv (tried ${process.env.DOTHIS_PYTHON || '../.venv/bin/python'})`;

/** Runs `command` with `input` on stdin; resolves with its stdout, rejects on a failure. */
async function run(command, args, input = '') {
  const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk) => { stdout += chunk; });
  child.stderr.on('data', (chunk) => { stderr += chunk; });
  child.stdin.end(input);
  const [code] = await once(child, 'exit');
  if (code !== 0) throw new Error(`${command} exited ${code}: ${stderr}`);
  return stdout;
}

/** The user `dothis acl` describes, created with its exact line through redis-cli; its URL. */
async function makeUser(redis, role, ...queues) {
  const user = `${role}-${Math.random().toString(16).slice(2, 10)}`;
  const line = (await run(python, ['-m', 'dothis', 'acl', '--role', role, '--user', user,
    ...queues.flatMap((queue) => ['--queue', queue])])).trim();
  assert.match(line, new RegExp(`^ACL SETUSER ${user} reset on >\\S+ resetkeys resetchannels -@all `));
  assert.equal((await run('redis-cli', ['-p', String(redis.port)], line)).trim(), 'OK');
  const password = line.split(' ')[5].slice(1);
  return `redis://${user}:${password}@127.0.0.1:${redis.port}/0`;
}

/** The error the call rejects with, as a PermissionDeniedError (explained here when the client threw the reply). */
async function refusal(promise) {
  const error = await promise.then(() => assert.fail('not refused'), (caught) => caught);
  const denied = error instanceof PermissionDeniedError ? error : explainNoPerm(error);
  assert.ok(denied, `not a permission refusal: ${error?.message}`);
  assert.equal(denied.code, 'permission-denied');
  return denied;
}

describe('ACL users made by dothis acl', { skip }, () => {
  let redis;

  before(async () => { redis = await startRedis(); });
  after(async () => { await redis?.stop(); });

  test('a producer and a worker run a queue with their rules only', async () => {
    const name = `{${uniqueQueue('acl')}}`;
    const queue = new Queue(name, { url: await makeUser(redis, 'producer', name) });
    const lines = [];
    const functions = { add: withParams(['a', 'b'], ({ a, b }) => a + b) };
    const worker = new Worker(name, { url: await makeUser(redis, 'worker', name), functions,
      log: (line) => { lines.push(String(line)); } });
    const running = worker.run();
    try {
      const task = await queue.enqueue('add', { a: 2, b: 40 });
      assert.equal(await task.wait({ timeout: 15000 }), 42);
      const many = await queue.enqueueMany([1, 2, 3].map((a) => ({ fn: 'add', args: { a, b: 1 } })));
      assert.deepEqual(await Promise.all(many.map((one) => one.wait({ timeout: 15000 }))), [2, 3, 4]);
      assert.equal((await task.info()).outcome, 'successful');
    } finally {
      await worker.stop({ graceMs: 1000 });
      await running;
      await queue.close();
    }
    assert.ok(!lines.some((line) => /NOPERM|permission/i.test(line)), lines.join('\n'));
  });

  test('a producer cannot write another queue: the refusal names the key rule', async () => {
    const mine = `{${uniqueQueue('acl')}}`;
    const other = `{${uniqueQueue('acl')}}`;
    const queue = new Queue(other, { url: await makeUser(redis, 'producer', mine) });
    try {
      const denied = await refusal(queue.enqueue('add', { a: 1, b: 2 }));
      assert.ok(denied.rules.includes(`~${other}:task:*`), denied.message);
      assert.match(denied.message, /^Redis refused a key of EVAL(SHA)? in enqueue\.lua/);
      for (const specs of [[{ fn: 'add' }], Array.from({ length: 1200 }, () => ({ fn: 'add' }))]) {
        const many = await refusal(queue.enqueueMany(specs));
        assert.ok(many.rules.includes(`~${other}:task:*`), many.message);
        assert.match(many.message, /^Redis refused a key of EVAL(SHA)? in enqueue\.lua \(one of \{[^}]+\}:task:/);
      }
      assert.equal(await redis.raw.exists(`${other}:pending`), 0);
    } finally {
      await queue.close();
    }
  });

  test('the monitor cannot enqueue: the refusal names the command', async () => {
    const name = `{${uniqueQueue('acl')}}`;
    const queue = new Queue(name, { url: await makeUser(redis, 'monitor', name) });
    try {
      const denied = await refusal(queue.enqueue('add', { a: 1, b: 2 }));
      assert.ok(['eval', 'evalsha'].includes(denied.command), denied.message);
      assert.deepEqual(denied.rules, [`+${denied.command}`]);
    } finally {
      await queue.close();
    }
  });
});

test('key rules are literal globs of the queue name', () => {
  assert.equal(keyRule('a*b:task:1'), '~a\\*b:task:*');
  assert.equal(keyRule('{q}:pending'), '~{q}:pending');
  assert.equal(keyRule('q:worker:w:1'), '~q:worker:*');
  const inScript = Object.assign(new Error("ERR The user executing the script can't publish to the channel mentioned in the command script: ab, on @user_script:3."),
    { command: { name: 'evalsha', args: ['ab', '1', 'q:task:1', 'x'] } });
  assert.deepEqual(explainNoPerm(inScript)?.rules, ['&q:results']);
  assert.equal(explainNoPerm(new Error('WRONGTYPE Operation against a key')), null);
});
