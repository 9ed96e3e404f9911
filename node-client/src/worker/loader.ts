/** Finding and importing the module that exports a worker's functions (the CLI's MODULE, the `module` option). */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

import { InvalidArgumentsError } from '../errors.js';

/**
 * import(url) from code compiled to either module system: TypeScript's CommonJS build would turn an
 * import() written here into require(), which cannot load an ES module on Node 20.
 */
// eslint-disable-next-line @typescript-eslint/no-implied-eval
export const importModule = new Function('url', 'return import(url)') as (url: string) => Promise<unknown>;

/**
 * The file URL of a module given as a URL (file:, data:), a path (relative to the current
 * directory), or a package name resolved from the current directory.
 */
export function moduleUrl(specifier: string): string {
  if (typeof specifier !== 'string' || specifier === '') {
    throw new InvalidArgumentsError('module', 'must be a path, a file: URL or a package name');
  }
  if (/^(file|data):/.test(specifier)) return specifier;
  const file = path.resolve(specifier);
  if (existsSync(file)) return pathToFileURL(file).href;
  if (!specifier.startsWith('.') && !path.isAbsolute(specifier)) {
    try {
      return pathToFileURL(createRequire(path.join(process.cwd(), 'noop.js')).resolve(specifier)).href;
    } catch {
      // reported below
    }
  }
  throw new InvalidArgumentsError('module', `${JSON.stringify(specifier)} is neither a file (from ${process.cwd()}) nor a package found from there`);
}
