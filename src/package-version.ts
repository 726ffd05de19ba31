/**
 * release-guard's own version, from its package.json. Found by walking up from this file rather
 * than at a fixed distance: src/ and dist/ sit just below the package, but the demo and the bench
 * run from build/src/ (tsconfig.tools.json), one level deeper, where a fixed path misses it.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The package whose version this is: a package.json of another name on the way up is not ours. */
const PACKAGE_NAME = 'release-guard';

/**
 * The version in the nearest package.json named release-guard above `from` (a file URL or path;
 * this module by default); "unknown" when there is none, or it has no version.
 */
export function packageVersion(from: string | URL = import.meta.url): string {
  let dir = dirname(from instanceof URL || from.startsWith('file:') ? fileURLToPath(from) : from);
  for (;;) {
    const pkg = readPackage(join(dir, 'package.json'));
    if (pkg?.name === PACKAGE_NAME) return typeof pkg.version === 'string' ? pkg.version : 'unknown';
    const parent = dirname(dir);
    if (parent === dir) return 'unknown';
    dir = parent;
  }
}

/** The file's fields, or null when it is missing or not JSON (a directory without one is passed). */
function readPackage(file: string): { name?: unknown; version?: unknown } | null {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as { name?: unknown; version?: unknown };
  } catch {
    return null;
  }
}
