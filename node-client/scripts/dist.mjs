// Build steps around tsc: `clean` empties dist/; `finish` marks dist/cjs as CommonJS and copies
// the Lua scripts and JSON Schemas the build used into dist/lua and dist/schema (build outputs).
import { cp, mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..', '..');
const dist = path.resolve(here, '..', 'dist');
const schemaDir = process.env.DOTHIS_SCHEMA_DIR ?? path.join(root, 'schema');
const luaDir = process.env.DOTHIS_LUA_DIR ?? path.join(root, 'lua');

async function copyMatching(from, to, suffix) {
  await mkdir(to, { recursive: true });
  for (const name of await readdir(from)) {
    if (name.endsWith(suffix)) await cp(path.join(from, name), path.join(to, name));
  }
}

const step = process.argv[2];
if (step === 'clean') {
  await rm(dist, { recursive: true, force: true });
} else if (step === 'finish') {
  await writeFile(path.join(dist, 'cjs', 'package.json'), '{ "type": "commonjs" }\n');
  await copyMatching(luaDir, path.join(dist, 'lua'), '.lua');
  await copyMatching(schemaDir, path.join(dist, 'schema'), '.json');
} else {
  console.error('usage: node scripts/dist.mjs clean|finish');
  process.exit(2);
}
