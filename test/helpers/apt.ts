/**
 * Installing a missing program from Debian's packages for integration tests: CI runs on a fresh
 * machine, so a test that needs nginx (say) installs it itself when it runs as root, and
 * otherwise fails saying what to install.
 *
 * Services the package would start are not our concern: Debian containers ship a policy-rc.d that
 * forbids starting them during installs, and the tests run their own instances on free ports.
 */
import { execFile } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import path from 'node:path';

/** Non-root PATHs often lack the sbin directories where Debian puts daemons such as nginx. */
const EXTRA_DIRS = ['/usr/sbin', '/usr/local/sbin', '/sbin', '/usr/bin', '/usr/local/bin', '/bin'];

/** The absolute path of `binary` on PATH or in the usual sbin/bin directories, if any. */
export function findProgram(binary: string): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(path.delimiter).filter(Boolean), ...EXTRA_DIRS];
  for (const dir of dirs) {
    const candidate = path.join(dir, binary);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not in this directory
    }
  }
  return undefined;
}

export interface EnsuredProgram {
  /** Absolute path of the program. */
  path: string;
  /** Milliseconds spent installing, or 0 when it was already there. */
  installMs: number;
}

const pending = new Map<string, Promise<EnsuredProgram>>();

/**
 * Finds `binary`; when it is missing and we are root on a Debian-like system, installs `pkg` with
 * `apt-get install -y --no-install-recommends` (running `apt-get update` first only if the
 * install fails: a fresh machine may have no package lists). Memoized per process and binary; a
 * failure is not cached, so a later call may try again.
 */
export function ensureDebianPackage(binary: string, pkg: string): Promise<EnsuredProgram> {
  const known = pending.get(binary);
  if (known) return known;
  const attempt = (async (): Promise<EnsuredProgram> => {
    const found = findProgram(binary);
    if (found) return { path: found, installMs: 0 };
    const command = `apt-get install -y --no-install-recommends ${pkg}`;
    if (process.platform !== 'linux' || process.getuid?.() !== 0 || !findProgram('apt-get')) {
      throw new Error(`${binary} is not installed and cannot be installed here (needs root and apt-get); install it with: sudo ${command}`);
    }
    const started = performance.now();
    // The dpkg lock may be held by another test worker installing something else: wait for it.
    const install = ['-o', 'DPkg::Lock::Timeout=600', 'install', '-y', '--no-install-recommends', pkg];
    try {
      await aptGet(install);
    } catch {
      try {
        await aptGet(['-o', 'DPkg::Lock::Timeout=600', 'update']);
        await aptGet(install);
      } catch (error) {
        throw new Error(`"${command}" failed: ${(error as Error).message}`, { cause: error });
      }
    }
    const installed = findProgram(binary);
    if (!installed) throw new Error(`"${command}" succeeded but no ${binary} program was found`);
    return { path: installed, installMs: performance.now() - started };
  })();
  pending.set(binary, attempt);
  attempt.catch(() => pending.delete(binary));
  return attempt;
}

function aptGet(args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(
      'apt-get',
      args,
      { env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }, timeout: 15 * 60_000, maxBuffer: 64 * 1024 * 1024 },
      (error, _stdout, stderr) => {
        if (error) reject(new Error(`apt-get ${args.join(' ')}: ${error.message}\n${String(stderr).trimEnd().split('\n').slice(-20).join('\n')}`, { cause: error }));
        else resolve();
      },
    );
  });
}
