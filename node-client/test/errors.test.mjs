// Errors as one vocabulary: a refused login and a bad URL surface promptly as their own classes,
// against real redis-servers (one with --requirepass); every DothisError class the package exports
// is in schema/client-errors.json with the same code, and every Node class the table names exists.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { after, before, describe, test } from 'node:test';

import * as dothis from '../dist/esm/index.js';
import { startRedis, uniqueQueue } from './support/redis.mjs';

const {
  AuthenticationFailedError, ConnectionFailedError, DependencyError, DothisError, ERROR_CODES, InvalidArgumentsError,
  InvalidUrlError, MalformedResultError, PermissionDeniedError, Queue, QueueClosedError, TaskExistsError, TaskFailedError,
  TaskNotFoundError,
  WaitTimeoutError,
} = dothis;

const PASSWORD = 'secret';
const PASSWORD_FIX = ['redis://:PASSWORD@host:6379/0', 'redis://USER:PASSWORD@host:6379/0', 'DOTHIS_REDIS_URL'];
/** A call that hit the first failed login or SELECT must settle well within this (connectTimeout is 3000). */
const PROMPT_MS = 1500;

let plain;
let locked;
before(async () => {
  [plain, locked] = await Promise.all([startRedis(), startRedis(undefined, { password: PASSWORD })]);
});
after(async () => { await Promise.all([plain?.stop(), locked?.stop()]); });

const address = (server) => `127.0.0.1:${server.port}`;

/** Runs `call` on a new Queue for `url`, closing it afterwards. */
async function withQueue(url, run) {
  const queue = new Queue(uniqueQueue('errors'), { url });
  try {
    return await run(queue);
  } finally {
    await queue.close();
  }
}

/** Asserts that `promise` rejects within PROMPT_MS with `Class`, `code`, every `needle` and none of `secrets`. */
async function rejectsWith(promise, Class, code, needles, secrets = []) {
  const started = Date.now();
  let caught;
  await assert.rejects(promise, (error) => { caught = error; return true; });
  const took = Date.now() - started;
  assert.ok(caught instanceof Class, `expected ${Class.name}, got ${caught?.name}: ${caught?.message}`);
  assert.ok(caught instanceof DothisError);
  assert.equal(caught.code, code);
  for (const needle of needles) assert.ok(caught.message.includes(needle), `"${needle}" missing from: ${caught.message}`);
  for (const secret of secrets) {
    assert.ok(!caught.message.includes(secret), `the message prints "${secret}": ${caught.message}`);
    assert.ok(!String(caught.url ?? '').includes(secret), `error.url prints "${secret}": ${caught.url}`);
  }
  assert.ok(took < PROMPT_MS, `took ${took} ms`);
  return caught;
}

/** Connections the server accepted so far (to tell whether a client keeps reconnecting). */
async function connectionsReceived(server) {
  const stats = await server.raw.info('stats');
  return Number(/total_connections_received:(\d+)/.exec(stats)?.[1]);
}

describe('a server that requires a password', () => {
  test('no password: AuthenticationFailedError naming the fix, promptly, for every call, without reconnecting', async () => {
    await withQueue(`redis://${address(locked)}/0`, async (queue) => {
      const needles = ['requires a password and none was given', ...PASSWORD_FIX];
      const error = await rejectsWith(queue.length(), AuthenticationFailedError, 'authentication-failed', needles);
      assert.ok(error instanceof ConnectionFailedError, 'an AuthenticationFailedError is a ConnectionFailedError');
      assert.equal(error.passwordGiven, false);
      assert.equal(error.url, `redis://${address(locked)}/0`);
      await rejectsWith(queue.enqueue('echo', { text: 'x' }), AuthenticationFailedError, 'authentication-failed', needles);
      await rejectsWith(queue.task('x').wait({ timeout: 10000 }), AuthenticationFailedError, 'authentication-failed', needles);
      const before = await connectionsReceived(locked);
      await new Promise((resolve) => setTimeout(resolve, 1200));
      assert.equal(await connectionsReceived(locked), before, 'the queue kept reconnecting in the background');
      await rejectsWith(queue.length(), AuthenticationFailedError, 'authentication-failed', needles);
    });
  });

  test('a wrong password, or a user that does not exist: AuthenticationFailedError, password masked', async () => {
    const cases = [
      [`redis://:hunter2-nope@${address(locked)}/0`, 'hunter2-nope'],
      [`redis://bob:${PASSWORD}@${address(locked)}/0`, PASSWORD],
    ];
    for (const [url, secret] of cases) {
      await withQueue(url, async (queue) => {
        const needles = ['refused the password (or user)', '****', ...PASSWORD_FIX];
        const error = await rejectsWith(queue.enqueue('echo'), AuthenticationFailedError, 'authentication-failed', needles, [secret]);
        assert.equal(error.passwordGiven, true);
        assert.match(error.message, /WRONGPASS/);
        await rejectsWith(queue.length(), AuthenticationFailedError, 'authentication-failed', needles, [secret]);
      });
    }
  });

  test('the right password works', async () => {
    await withQueue(`redis://:${PASSWORD}@${address(locked)}/0`, async (queue) => {
      const task = await queue.enqueue('echo', { text: 'let in' });
      assert.equal(await queue.length(), 1);
      assert.equal(await locked.raw.hget(task.key, 'state'), 'pending');
      assert.equal(queue.url, `redis://:****@${address(locked)}/0`);
    });
  });
});

describe('a URL that cannot be used', () => {
  test('database 99 does not exist: InvalidUrlError naming the databases, and nothing lands in database 0', async () => {
    const needles = ['database 99 does not exist', '`databases`', '16 by default', '/0', 'DOTHIS_REDIS_URL'];
    const name = await withQueue(plain.url.replace(/\/0$/, '/99'), async (queue) => {
      const error = await rejectsWith(queue.enqueue('echo', { text: 'x' }, { id: 'a' }), InvalidUrlError, 'invalid-url', needles);
      assert.ok(!(error instanceof ConnectionFailedError));
      assert.equal(error.url, `redis://${address(plain)}/99`);
      // Again: the connection that SELECT refused must never be used (it would be on database 0).
      await rejectsWith(queue.enqueue('echo', { text: 'x' }, { id: 'b' }), InvalidUrlError, 'invalid-url', needles);
      await rejectsWith(queue.length(), InvalidUrlError, 'invalid-url', needles);
      await rejectsWith(queue.task('a').wait({ timeout: 10000 }), InvalidUrlError, 'invalid-url', needles);
      return queue.name;
    });
    assert.deepEqual(await plain.raw.keys(`${name}:*`), []);
  });

  test('database 99 with a password: the password is not printed', async () => {
    await withQueue(`redis://:${PASSWORD}@${address(locked)}/99`, async (queue) => {
      await rejectsWith(queue.length(), InvalidUrlError, 'invalid-url', ['database 99 does not exist', '****'], [PASSWORD]);
    });
  });

  test('a malformed URL: new Queue throws InvalidUrlError naming the form to write', () => {
    const cases = [
      [`redis://:hunter2@127.0.0.1:notaport/0`, 'cannot be parsed', 'hunter2'],
      [`redis://:pa/ss@127.0.0.1:6379/0`, 'cannot be parsed', 'pa/ss'],
      ['http://127.0.0.1:6379/0', 'does not start with redis:// or rediss://'],
      ['127.0.0.1:6379', 'does not start with redis:// or rediss://'],
      ['redis://127.0.0.1:6379/abc', 'path must be a database number'],
      ['redis://127.0.0.1:6379/-1', 'path must be a database number'],
    ];
    for (const [url, problem, secret] of cases) {
      assert.throws(() => new Queue('q', { url }), (error) => {
        assert.ok(error instanceof InvalidUrlError && error instanceof DothisError, `${url}: got ${error}`);
        assert.equal(error.code, 'invalid-url');
        assert.ok(error.message.includes(problem), error.message);
        assert.ok(error.message.includes('redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]'), error.message);
        assert.ok(error.message.includes('DOTHIS_REDIS_URL'), error.message);
        if (secret) assert.ok(!error.message.includes(secret) && !error.url.includes(secret), error.message);
        return true;
      });
    }
  });

  test('a malformed DOTHIS_REDIS_URL is reported the same way', () => {
    const saved = process.env.DOTHIS_REDIS_URL;
    process.env.DOTHIS_REDIS_URL = 'redis://:hunter2@localhost:port/0';
    try {
      assert.throws(() => new Queue('q'), (error) => error instanceof InvalidUrlError && !error.message.includes('hunter2'));
    } finally {
      if (saved === undefined) delete process.env.DOTHIS_REDIS_URL;
      else process.env.DOTHIS_REDIS_URL = saved;
    }
  });
});

test('a successful hash without a readable result-value: MalformedResultError', async () => {
  await withQueue(plain.url, async (queue) => {
    await plain.raw.hset(`${queue.name}:task:m`, 'function', 'echo', 'state', 'finished', 'result', 'successful',
      'result-value', '{not json');
    await rejectsWith(queue.task('m').wait(), MalformedResultError, 'malformed-result', ['"m"', 'not JSON']);
  });
});

const table = JSON.parse(await readFile(new URL('../../schema/client-errors.json', import.meta.url), 'utf8'));

describe('schema/client-errors.json', () => {
  const url = 'redis://127.0.0.1:6379/0';
  // One or more instances per exported class, made the way the package makes them.
  const SAMPLES = {
    DothisError: () => [new DothisError('x')],
    ConnectionFailedError: () => [new ConnectionFailedError(url, 'connect ECONNREFUSED')],
    AuthenticationFailedError: () => [new AuthenticationFailedError(url, false, 'NOAUTH'),
      new AuthenticationFailedError(url, true, 'WRONGPASS')],
    InvalidUrlError: () => [new InvalidUrlError(url, 'x')],
    PermissionDeniedError: () => [new PermissionDeniedError('x', 'evalsha', ['+evalsha'])],
    QueueClosedError: () => [new QueueClosedError('q')],
    InvalidArgumentsError: () => [new InvalidArgumentsError('id', 'x')],
    TaskExistsError: () => [new TaskExistsError(['a'])],
    WaitTimeoutError: () => [new WaitTimeoutError('a', 1)],
    TaskFailedError: () => ERROR_CODES.map((code) => new TaskFailedError('a', code, 'r', 'e')),
    DependencyError: () => [new DependencyError('a', 'parent-failed', 'p'), new DependencyError('a', 'parent-missing', null)],
    TaskNotFoundError: () => [new TaskNotFoundError('a', 'q')],
    MalformedResultError: () => [new MalformedResultError('a', 'x')],
  };
  const exported = Object.entries(dothis).filter(([, value]) => typeof value === 'function'
    && (value === DothisError || value.prototype instanceof DothisError));
  const byCode = new Map(table.errors.map((entry) => [entry.code, entry]));

  test('every exported DothisError class is in the table with the codes it carries', () => {
    assert.ok(exported.length >= 12, `only ${exported.length} classes found`);
    for (const [name, Class] of exported) {
      const make = SAMPLES[name];
      assert.ok(make, `${name} is exported: add it to schema/client-errors.json and to SAMPLES here`);
      const entries = table.errors.filter((entry) => entry.node === name);
      assert.ok(entries.length > 0, `${name} has no entry in schema/client-errors.json`);
      const codes = new Set();
      for (const error of make()) {
        assert.ok(error instanceof Class && error.name === name);
        const fixed = entries.find((entry) => entry.code === error.code && !('code-from' in entry));
        const copied = entries.find((entry) => entry['code-from'] === 'error-code');
        if (copied) assert.ok(ERROR_CODES.includes(error.code), `${name}: ${error.code} is no task error-code`);
        else assert.ok(fixed, `${name} carries code ${error.code}, which its entries do not list`);
        codes.add(copied ? copied.code : error.code);
      }
      assert.deepEqual([...codes].sort(), entries.map((entry) => entry.code).sort(), `${name}: codes`);
      // The class derives from the class of its entry's parent.
      const [entry] = entries;
      if (entry.parent === null) assert.equal(Class, DothisError);
      else assert.equal(Object.getPrototypeOf(Class).name, byCode.get(entry.parent)?.node, `${name}: parent`);
    }
  });

  test('every Node class the table names is exported and derives from DothisError', () => {
    const names = new Set(exported.map(([name]) => name));
    for (const entry of table.errors) {
      if (entry.node === null) continue;
      assert.ok(names.has(entry.node), `${entry.code}: ${entry.node} is not exported by the package`);
    }
  });
});
