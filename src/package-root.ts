/**
 * Where release-guard is installed (the directory of its package.json) and its version. Found by
 * walking up from this file rather than at a fixed distance: src/ and dist/ sit just below the
 * package, but the demo and the bench run from build/src/ (tsconfig.tools.json), one level
 * deeper, where a fixed path misses it. The files that ship beside dist/ (the alert rules, the
 * config schema) are found from here too.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The package whose version this is: a package.json of another name on the way up is not ours. */
const PACKAGE_NAME = 'release-guard';

/**
 * The directory of the nearest package.json named release-guard above `from` (a file URL or path;
 * this module by default) and its fields; null when there is none.
 */
function findPackage(from: string | URL): FoundPackage | null {
  if (from === import.meta.url) return ownPackage === undefined ? (ownPackage = searchUp(from)) : ownPackage;
  return searchUp(from);
}

interface FoundPackage {
  root: string;
  version: unknown;
}

/** This installation's package, looked up once: the version and the shipped files ask for it. */
let ownPackage: FoundPackage | null | undefined;

function searchUp(from: string | URL): FoundPackage | null {
  let dir = dirname(filePath(from));
  for (;;) {
    const pkg = readPackage(join(dir, 'package.json'));
    if (pkg?.name === PACKAGE_NAME) return { root: dir, version: pkg.version };
    const parent = dirname(dir);
    if (parent === dir) return null;
    dir = parent;
  }
}

/** The version in the nearest package.json named release-guard; "unknown" when there is none, or it has no version. */
export function packageVersion(from: string | URL = import.meta.url): string {
  const version = findPackage(from)?.version;
  return typeof version === 'string' ? version : 'unknown';
}

/**
 * The package's root directory: where prometheus/, config.schema.json and the other shipped files
 * are. Without a package.json named release-guard above (files copied out of a package), the
 * directory above this module's, as in src/ and dist/.
 */
export function packageRoot(from: string | URL = import.meta.url): string {
  return findPackage(from)?.root ?? dirname(dirname(filePath(from)));
}

const filePath = (from: string | URL) => (from instanceof URL || from.startsWith('file:') ? fileURLToPath(from) : from);

/** The file's fields, or null when it is missing or not JSON (a directory without one is passed). */
function readPackage(file: string): { name?: unknown; version?: unknown } | null {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as { name?: unknown; version?: unknown };
  } catch {
    return null;
  }
}
