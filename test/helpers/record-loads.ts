/**
 * Preloaded into a child process (`node --import tsx --import <this file> ...`) to record every
 * module it loads, so a test can prove what a command does not load. Set RG_RECORD_LOADS to a file
 * path; the child appends to it:
 * - each URL the ESM loader resolves (a resolve hook, on the loader's thread), as it happens;
 * - on exit, every file in the CommonJS cache (`require` inside CJS packages bypasses the hook,
 *   and a CJS package imported from ESM is loaded through that cache too).
 * Read it with `loadedPackages` once the child has exited.
 */
import { appendFileSync, readFileSync } from 'node:fs';
import { createRequire, register } from 'node:module';

const file = process.env.RG_RECORD_LOADS;
if (file) {
  const hook = `
    import { appendFileSync } from 'node:fs';
    export async function resolve(specifier, context, next) {
      const result = await next(specifier, context);
      appendFileSync(${JSON.stringify(file)}, result.url + '\\n');
      return result;
    }`;
  register(`data:text/javascript,${encodeURIComponent(hook)}`);
  const require = createRequire(import.meta.url);
  process.on('exit', () => appendFileSync(file, `${Object.keys(require.cache).join('\n')}\nexit\n`));
}

/** The npm packages in a record (`mysql2`, `@scope/name`); null when the child did not reach exit. */
export function loadedPackages(recordFile: string): Set<string> | null {
  let text: string;
  try {
    text = readFileSync(recordFile, 'utf8');
  } catch {
    return null;
  }
  if (!text.split('\n').includes('exit')) return null;
  return new Set([...text.matchAll(/node_modules\/((?:@[^/]+\/)?[^/\n]+)/g)].map((match) => match[1]!));
}
