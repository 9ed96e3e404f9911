// Unit tests (no Redis): generated constants equal schema/protocol.json and schema/scripts.json; keys, time, validation.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { describe, test } from 'node:test';

import * as dothis from '../dist/esm/index.js';
import { encodeCall, encodeCalls, enqueueCall, hashFields, hashOf, randomUUIDs, stamp } from '../dist/esm/enqueue.js';
import { cancelCall } from '../dist/esm/queue.js';
import { checkTaskHash, serializeArgs } from '../dist/esm/validate.js';

const repo = new URL('../../', import.meta.url);
const protocol = JSON.parse(await readFile(new URL('schema/protocol.json', repo), 'utf8'));

describe('constants come from schema/protocol.json', () => {
  test('every exported constant equals the schema', () => {
    const data = { ...protocol };
    delete data.$schema;
    assert.deepEqual(dothis.PROTOCOL, data);
    assert.equal(dothis.PROTOCOL_VERSION, protocol.protocol);
    assert.deepEqual(dothis.KEY_TEMPLATES, protocol.keys);
    assert.deepEqual(dothis.STATES, protocol.states);
    assert.deepEqual(dothis.OUTCOMES, protocol.outcomes);
    assert.deepEqual(dothis.FIELDS, Object.keys(protocol.fields));
    assert.deepEqual(dothis.ERROR_CODES, Object.keys(protocol['error-codes']));
    assert.deepEqual(dothis.REJECT_CODES, Object.keys(protocol['reject-codes']));
    assert.deepEqual(dothis.LIMITS, protocol.limits);
    assert.deepEqual(dothis.DEFAULTS, protocol.defaults);
    assert.deepEqual(dothis.SCRIPT_NAMES, protocol.scripts);
  });

  test('the scripts are the bytes of lua/*.lua', async () => {
    for (const name of protocol.scripts) {
      assert.equal(dothis.SCRIPTS[name], await readFile(new URL(`lua/${name}.lua`, repo), 'utf8'), name);
      assert.equal(await readFile(new URL(`../dist/lua/${name}.lua`, import.meta.url), 'utf8'), dothis.SCRIPTS[name]);
    }
  });
});

describe('keys', () => {
  test('templates are filled literally', () => {
    assert.equal(dothis.buildKey('task', { queue: '{emails}', id: 'a:b*?' }), '{emails}:task:a:b*?');
    assert.equal(dothis.buildKey('task', { queue: 'q$&', id: '<queue>$1' }), 'q$&:task:<queue>$1');
    assert.equal(dothis.buildKey('results', { queue: 'q' }), 'q:results');
    assert.throws(() => dothis.buildKey('task', { queue: 'q' }), /<id>/);
  });
});

describe('timestamps', () => {
  const format = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/;
  test('ISO-8601 UTC with microseconds and Z', () => {
    assert.equal(dothis.formatMicros(1449274741834909n), '2015-12-05T00:19:01.834909Z');
    assert.equal(dothis.formatMicros(1449274741000001n), '2015-12-05T00:19:01.000001Z');
    for (let i = 0; i < 100; i += 1) assert.match(dothis.isoNow(), format);
  });

  test('tracks the wall clock', () => {
    const before = Date.now();
    const stamp = Date.parse(dothis.isoNow().slice(0, 23) + 'Z');
    assert.ok(stamp >= before - 2 && stamp <= Date.now() + 2, `${stamp} vs ${before}`);
  });
});

describe('validation (before any connection)', () => {
  const queue = new dothis.Queue('unit', { url: 'redis://127.0.0.1:1/0' });

  const rejectsField = (promise, field, pattern) => assert.rejects(promise, (error) => {
    assert.ok(error instanceof dothis.InvalidArgumentsError, `got ${error}`);
    assert.ok(error instanceof dothis.DothisError);
    assert.equal(error.code, 'invalid-arguments');
    assert.equal(error.field, field);
    assert.ok(error.message.includes(field), error.message);
    if (pattern) assert.match(error.message, pattern);
    return true;
  });

  test('args must be strict JSON; the error names the field', async () => {
    await rejectsField(queue.enqueue('echo', { text: NaN }), 'args.text', /NaN is not JSON/);
    await rejectsField(queue.enqueue('echo', { a: { b: [1, Infinity] } }), 'args.a.b[1]');
    await rejectsField(queue.enqueue('echo', { 'odd key': undefined }), 'args["odd key"]', /undefined/);
    await rejectsField(queue.enqueue('echo', { n: 10n }), 'args.n', /BigInt/);
    await rejectsField(queue.enqueue('echo', { when: new Date() }), 'args.when', /Date/);
    await rejectsField(queue.enqueue('echo', { f: () => 1 }), 'args.f');
    await rejectsField(queue.enqueue('echo', { s: 'a\ud800' }), 'args.s', /surrogate/);
    await rejectsField(queue.enqueue('echo', ['x']), 'args', /object/);
    await rejectsField(queue.enqueue('echo', null), 'args', /object/);
    let deep = {};
    const root = deep;
    for (let i = 0; i < 70; i += 1) deep = deep.x = {};
    await rejectsField(queue.enqueue('echo', root), `args${'.x'.repeat(64)}`, /deeper than 64/);
    const cyclic = {};
    cyclic.self = cyclic;
    await assert.rejects(queue.enqueue('echo', cyclic), dothis.InvalidArgumentsError);
  });

  test('function names, ids and queue names', async () => {
    await rejectsField(queue.enqueue('', {}), 'function');
    await rejectsField(queue.enqueue(42, {}), 'function');
    await rejectsField(queue.enqueue('echo', {}, { id: '' }), 'id');
    await rejectsField(queue.enqueue('echo', {}, { id: 'has space' }), 'id', /U\+0020/);
    await rejectsField(queue.enqueue('echo', {}, { id: 'tab\there' }), 'id');
    await rejectsField(queue.enqueue('echo', {}, { id: 'nbsp\u00a0' }), 'id');
    await rejectsField(queue.enqueue('echo', {}, { id: 'del\u007f' }), 'id');
    await rejectsField(queue.enqueue('echo', {}, { id: 'x'.repeat(257) }), 'id', /256/);
    await rejectsField(queue.enqueue('echo', {}, { id: 'é'.repeat(129) }), 'id', /258/);
    await rejectsField(queue.enqueueMany([{ fn: 'echo' }, { fn: 'echo', id: 'a b' }]), 'tasks[1].id');
    await rejectsField(queue.enqueue('echo', {}, { id: 'unit:task:x' }), 'id', /full-key form/);
    assert.throws(() => new dothis.Queue('', {}), dothis.InvalidArgumentsError);
    assert.throws(() => new dothis.Queue('a b'), /queue name/);
    assert.throws(() => new dothis.Queue('q'.repeat(129)), /128/);
    assert.throws(() => queue.task('a\nb'), /id/);
    assert.equal(queue.task('a:b*[?]').key, 'unit:task:a:b*[?]');
    assert.equal(new dothis.Queue('{emails}').name, '{emails}');
  });

  test('wait() rejects a bad timeout', async () => {
    await rejectsField(queue.task('x').wait({ timeout: -1 }), 'timeout');
    await queue.close();
  });
});

describe('the bundled schemas agree with schema/examples', () => {
  const examples = async (kind, verdict) => {
    const dir = new URL(`schema/examples/${kind}/${verdict}/`, repo);
    const files = (await readdir(dir)).filter((name) => name.endsWith('.json'));
    return Promise.all(files.map(async (name) => [name, JSON.parse(await readFile(new URL(name, dir), 'utf8'))]));
  };

  test('task hashes', async () => {
    for (const [name, hash] of await examples('task', 'valid')) assert.doesNotThrow(() => checkTaskHash(hash), name);
    for (const [name, hash] of await examples('task', 'invalid')) {
      assert.throws(() => checkTaskHash(hash), dothis.InvalidArgumentsError, name);
    }
  });

  test('args', async () => {
    for (const [name, args] of await examples('args', 'valid')) assert.doesNotThrow(() => serializeArgs(args), name);
    for (const [name, args] of await examples('args', 'invalid')) {
      assert.throws(() => serializeArgs(args), dothis.InvalidArgumentsError, name);
    }
  });

  test('a timestamp is judged on its own, whatever was checked before', () => {
    const hash = (stamp) => ({ function: 'f', state: 'pending', args: '{}', 'pending-created': stamp });
    for (const [stamp, valid] of [['2015-12-05T00:19:01.834909Z', true], ['2015-02-30T00:19:01.834909Z', false],
      ['2015-02-30T00:19:01.834909Z', false], ['2016-02-29T23:59:59.000000Z', true], ['2015-12-05T24:19:01.834909Z', false],
      ['2015-12-05T00:19:01.834909Z', true]]) {
      if (valid) assert.doesNotThrow(() => checkTaskHash(hash(stamp)), stamp);
      else assert.throws(() => checkTaskHash(hash(stamp)), (error) => error.field === 'task["pending-created"]', stamp);
    }
  });

  test('args without one exact JSON form are refused, naming the field', () => {
    const deep = (n) => (n === 0 ? 1 : [deep(n - 1)]);
    const cases = [
      [{ a: [1, , 3] }, 'args.a[1]'], // eslint-disable-line no-sparse-arrays
      [{ a: NaN }, 'args.a'], [{ a: { b: undefined } }, 'args.a.b'], [{ a: 1n }, 'args.a'], [{ a: () => 1 }, 'args.a'],
      [{ a: new Date(0) }, 'args.a'], [{ 'x y': [{ s: 'a\ud800' }] }, 'args["x y"][0].s'], [{ ['\udc00']: 1 }, 'args["\\udc00"]'],
    ];
    for (const [args, field] of cases) {
      assert.throws(() => serializeArgs(args), (error) => error instanceof dothis.InvalidArgumentsError && error.field === field, field);
    }
    const limit = dothis.LIMITS['json-max-depth'];
    assert.doesNotThrow(() => serializeArgs({ a: deep(limit - 2) }));
    assert.throws(() => serializeArgs({ a: deep(limit + 5) }), (error) => /^args\.a(\[0\])+$/.test(error.field) && /nesting/.test(error.problem));
    assert.equal(serializeArgs({ a: [1, null, 'x', { b: [] }], c: -0 }), '{"a":[1,null,"x",{"b":[]}],"c":0}');
  });
});

describe('the script manifest (schema/scripts.json) agrees with the bundled Lua', () => {
  const manifest = JSON.parse(readFileSync(new URL('schema/scripts.json', repo), 'utf8'));

  /** The slots a script's header declares: KEYS[n] / ARGV[n] lines, and the KEYS[n..] / ARGV[a..b] tails. */
  const header = (text) => {
    const lines = [];
    for (const line of text.split('\n')) {
      if (!line.startsWith('--') || line.startsWith('-- >>> ')) break;
      lines.push(line);
    }
    const slots = (kind) => lines.flatMap((line) => {
      const match = new RegExp(`^-- ${kind}\\[([^\\]]+)\\]\\s+(.*)$`).exec(line);
      return match ? [{ index: match[1], rest: match[2] }] : [];
    });
    const keys = slots('KEYS');
    const args = slots('ARGV');
    const fixed = (list) => list.filter((s) => /^\d+$/.test(s.index));
    // an optional key after the repeated group: KEYS[4+2N], told apart by the group count
    const afterGroup = keys.filter((s) => !/^\d+$/.test(s.index) && !s.index.includes('..'));
    return {
      keys: fixed(keys).filter((s) => !s.rest.includes('optional')).length,
      optionalKeys: [...fixed(keys), ...afterGroup].filter((s) => s.rest.includes('optional')).length,
      keysPerRepeat: keys.filter((s) => s.index.includes('..')).reduce((n, s) => n + (s.rest.match(/<queue>:/g) ?? []).length, 0),
      args: fixed(args).filter((s) => !s.rest.includes('optional')).length,
      optionalArgs: fixed(args).filter((s) => s.rest.includes('optional')).length,
      repeatedArgs: args.filter((s) => s.index.includes('..')).length,
    };
  };

  test('the generated SCRIPT_MANIFEST is schema/scripts.json, in the order of protocol.json', () => {
    assert.deepEqual(Object.keys(dothis.SCRIPT_MANIFEST), protocol.scripts);
    for (const { name, ...entry } of manifest.scripts) {
      const { counts, ...generated } = dothis.SCRIPT_MANIFEST[name];
      assert.deepEqual(generated, entry, name);
      assert.ok(counts, name);
    }
  });

  test('KEYS and ARGV counts equal each script header', () => {
    for (const name of protocol.scripts) {
      assert.deepEqual(header(dothis.SCRIPTS[name]), { ...dothis.SCRIPT_MANIFEST[name].counts }, name);
    }
  });

  test('scripts that publish are the ones whose Lua calls PUBLISH', () => {
    for (const name of protocol.scripts) {
      assert.equal(dothis.SCRIPT_MANIFEST[name].publishes !== null, dothis.SCRIPTS[name].includes("'PUBLISH'"), name);
    }
  });

  test('lua/lib/ is no script: nothing bundles it, and the ending block in each script is its bytes', () => {
    const ending = readFileSync(new URL('lua/lib/ending.lua', repo), 'utf8');
    const begin = '-- >>> lib/ending.lua (generated: edit lua/lib/ending.lua, then run scripts/build-lua.py)\n';
    assert.ok(!Object.keys(dothis.SCRIPTS).some((name) => name.includes('ending') || name.includes('/')));
    assert.ok(!existsSync(new URL('../dist/lua/lib', import.meta.url)));
    for (const name of ['finish', 'cancel', 'release', 'recover']) {
      const text = dothis.SCRIPTS[name];
      const start = text.indexOf(begin) + begin.length;
      assert.ok(start > begin.length, `${name} has no ending block`);
      assert.equal(text.slice(start, text.indexOf('-- <<< lib/ending.lua\n', start)), ending, name);
    }
  });

  test('the wrappers pass the number of KEYS and ARGV the manifest gives', () => {
    const { cancel, enqueue } = dothis.SCRIPT_MANIFEST;
    const call = cancelCall('q', 'id-1', 'q:task:id-1', 1449274741834909n);
    assert.equal(call.keys.length, cancel.counts.keys + cancel.counts.optionalKeys, 'the optional <queue>:waiting too');
    assert.equal(call.argv.length, cancel.counts.args);
    assert.deepEqual(call.keys.map((key) => key.replace(/id-1$/, '<id>').replace(/^q:/, '<queue>:')),
      cancel.keys.map((key) => key.template));

    const queue = new dothis.Queue('q', { url: 'redis://127.0.0.1:1/0' });
    // prepare() checks a task at a given now, without touching Redis; enqueueCall gives enqueue.lua's KEYS and ARGV
    const enqueueOf = (fn, args, options) => enqueueCall(queue['keys'], queue['prepare'](fn, args, options, stamp(1449274741834909n)));
    const prepared = enqueueOf('echo', { text: 'x' }, { id: 'child', dependsOn: ['p1', 'p2'] });
    assert.equal(prepared.keys.length, enqueue.counts.keys + 2 * enqueue.counts.keysPerRepeat + enqueue.counts.optionalKeys);
    assert.equal(prepared.keys.at(-1), 'q:waiting', 'a task that waits joins the index of waiting tasks');
    const alone = enqueueOf('echo', { text: 'x' }, { id: 'solo' });
    assert.equal(alone.keys.length, enqueue.counts.keys, 'no parents: no index');
    const fixedArgs = enqueue.counts.args;
    assert.equal(prepared.argv[fixedArgs - 1], '2', 'the parent count is the last fixed argument');
    assert.equal((prepared.argv.length - fixedArgs - 2) % 2, 0, 'then the parent ids, then field/value pairs');
    return queue.close();
  });

  test('the ids enqueueMany draws are random UUIDs (version 4), as randomUUID draws them', () => {
    const ids = randomUUIDs(5000);
    assert.equal(new Set(ids).size, 5000);
    for (const id of ids) assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    // every hex digit turns up in every random position
    for (const at of [0, 9, 15, 20, 35]) assert.equal(new Set(ids.map((id) => id[at])).size, 16, `position ${at}`);
    assert.deepEqual(new Set(ids.map((id) => id[19])), new Set(['8', '9', 'a', 'b']));
  });

  test('enqueueMany writes the KEYS and ARGV of enqueueCall, byte for byte', async () => {
    const bulk = (value) => `$${Buffer.byteLength(value)}\r\n${value}\r\n`;
    const queue = new dothis.Queue('{q\u00e9}', { url: 'redis://127.0.0.1:1/0' });
    const at = stamp(1449274741834909n);
    at.trace = [['traceparent', `00-${'a'.repeat(32)}-${'b'.repeat(16)}-01`], ['tracestate', 'k=v']];
    const specs = [
      ['noop', {}, {}],
      ['noop', {}, { id: 'own' }],
      ['echo', { text: 'x \u00e9 \ud83d\ude00', n: [1, 2.5, null, true] }, { id: '\u00e9t\u00e9' }],
      ['echo', {}, { atFront: true, attempts: 3, timeout: 2.5, ttl: 60, resultTtl: -1, failureTtl: 5, description: 'd\u00e9' }],
      ['echo', {}, { delay: 10, onSuccess: 'done', onFailure: 'oops' }],
      ['echo', {}, { at: new Date(1700000000123) }],
      ['echo', { a: 1 }, { id: 'child', dependsOn: ['p1', 'p2', 'p1'] }],
      ['\u00e9cho', {}, { dependsOn: 'p3' }],
    ];
    const lua = dothis.SCRIPTS.enqueue;
    const sha = createHash('sha1').update(lua).digest('hex');
    for (const [fn, args, options] of specs) {
      const task = queue['prepare'](fn, args, options, at);
      const { keys, argv } = enqueueCall(queue['keys'], task);
      const resp = (command, script) => `*${3 + keys.length + argv.length}\r\n` +
        [command, script, String(keys.length), ...keys, ...argv].map(bulk).join('');
      assert.equal(encodeCall(queue['keys'], task), resp('evalsha', sha), JSON.stringify(options));
      assert.equal(encodeCall(queue['keys'], task, true), resp('eval', lua), JSON.stringify(options));
      // the hash checked against task.schema.json is the one HSET writes, in the same order
      const written = Object.fromEntries(hashFields(task));
      assert.deepEqual(Object.entries(hashOf(task)), Object.entries(written), JSON.stringify(options));
    }
    // a batch is its calls one after the other, the first an EVAL when asked
    const batch = [...specs, ['noop', {}, {}], ['noop', { a: 1 }, {}], ['noop', { a: 1 }, { id: 'x'.repeat(36) }], ['other', {}, {}]]
      .map(([fn, args, options]) => queue['prepare'](fn, args, options, at));
    const calls = batch.map((task) => encodeCall(queue['keys'], task));
    assert.ok(encodeCalls(queue['keys'], batch).equals(Buffer.from(calls.join(''))));
    assert.ok(encodeCalls(queue['keys'], batch, true).equals(Buffer.from([encodeCall(queue['keys'], batch[0], true), ...calls.slice(1)].join(''))));
    return queue.close();
  });
});
