// The build: generate src/generated, compile ESM and CommonJS with tsc into a staging directory,
// add dist/cjs/package.json and copies of lua/*.lua and schema/*.json, then swap the staging
// directory in as dist/ with two renames, so a process using dist/ never sees it half-built.
import { spawnSync } from 'node:child_process';
import { cp, mkdir, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const here = path.dirname(fileURLToPath(import.meta.url));
const pkg = path.resolve(here, '..');
const root = path.resolve(pkg, '..');
const schemaDir = process.env.DOTHIS_SCHEMA_DIR ?? path.join(root, 'schema');
const luaDir = process.env.DOTHIS_LUA_DIR ?? path.join(root, 'lua');
const dist = path.join(pkg, 'dist');
const staging = path.join(pkg, `.dist-${process.pid}`);
const retired = path.join(pkg, `.dist-old-${process.pid}`);

function run(command, args) {
  const result = spawnSync(command, args, { cwd: pkg, stdio: 'inherit' });
  if (result.status !== 0) {
    throw new Error(`${command} ${args.join(' ')} failed (${result.status ?? result.signal})`);
  }
}

async function copyMatching(from, to, suffix) {
  await mkdir(to, { recursive: true });
  for (const name of await readdir(from)) {
    if (name.endsWith(suffix)) await cp(path.join(from, name), path.join(to, name));
  }
}

const tsc = path.join(pkg, 'node_modules', 'typescript', 'bin', 'tsc');
try {
  run(process.execPath, [path.join(here, 'generate.mjs')]);
  run(process.execPath, [tsc, '-p', 'tsconfig.json', '--outDir', path.join(staging, 'esm')]);
  run(process.execPath, [tsc, '-p', 'tsconfig.cjs.json', '--outDir', path.join(staging, 'cjs')]);
  await writeFile(path.join(staging, 'cjs', 'package.json'), '{ "type": "commonjs" }\n');
  await copyMatching(luaDir, path.join(staging, 'lua'), '.lua');
  await copyMatching(schemaDir, path.join(staging, 'schema'), '.json');
  await rename(dist, retired).catch((error) => { if (error.code !== 'ENOENT') throw error; });
  await rename(staging, dist);
  console.log('build: dist/esm, dist/cjs, dist/lua, dist/schema');
} catch (error) {
  console.error(`build: ${error.message}`);
  process.exitCode = 1;
} finally {
  await rm(staging, { recursive: true, force: true });
  await rm(retired, { recursive: true, force: true });
}
