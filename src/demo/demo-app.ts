/**
 * Builds releases of the demo application (demo/app/server.cjs) in a Capistrano layout. Used by
 * `npm run demo`, the integration tests and the benchmark, so they all run the same app.
 */
import { copyFile, mkdir, rename, symlink, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root, from src/demo or dist/demo alike. */
export const PROJECT_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const DEMO_APP = join(PROJECT_ROOT, 'demo', 'app', 'server.cjs');

export interface ReleaseManifest {
  /** none | 5xx | hang | crash | slow | error_ratio */
  fault?: string;
  faultAfterMs?: number;
  errorRatio?: number;
  slowMs?: number;
  [key: string]: unknown;
}

/** Writes `<dir>/releases/<version>/{server.cjs,release.json}`; returns the release directory. */
export async function buildRelease(dir: string, version: string, manifest: ReleaseManifest = {}): Promise<string> {
  const release = join(dir, 'releases', version);
  await mkdir(release, { recursive: true });
  await copyFile(DEMO_APP, join(release, 'server.cjs'));
  await writeFile(join(release, 'release.json'), JSON.stringify({ version, ...manifest }, null, 2));
  return release;
}

/** Points `<dir>/<name>` at `releases/<version>` (a relative link) atomically, as a deploy tool would. */
export async function pointCurrent(dir: string, version: string, name = 'current'): Promise<void> {
  const temp = join(dir, `.${name}.tmp-${process.pid}-${Date.now()}`);
  await symlink(join('releases', version), temp);
  await rename(temp, join(dir, name));
}

/** A free TCP port on 127.0.0.1 (asked from the kernel, then released). */
export function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolvePort(address.port) : reject(new Error('no port'))));
    });
  });
}
