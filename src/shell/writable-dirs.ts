/**
 * Preflight: can this guard write where a rollback step will write, as this process sees it?
 *
 * Under systemd the unit decides (ProtectSystem=strict leaves only ReadWritePaths= writable, a
 * ProtectHome=read-only /home, a read-only bind), so the file mode of a directory says little,
 * and a guard running as root passes every mode check. access(2) with W_OK answers for this
 * process: it fails with EROFS on a read-only mount even for root, and with EACCES when the mode
 * or owner forbids it. A step that would fail half way through an outage is reported now instead.
 */
import { access, stat } from 'node:fs/promises';
import { constants } from 'node:fs';
import { homedir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import type { StrategyConfig } from '../config/schema.js';

/** A directory a step writes in, and why (shown in the problem). */
export interface WrittenDir {
  path: string;
  why: string;
}

/** Where each kind of step writes, besides its data under the state dir. */
export function dirsWrittenBy(step: StrategyConfig, stateDir: string, env: NodeJS.ProcessEnv = process.env): WrittenDir[] {
  const dirs: WrittenDir[] = [{ path: stateDir, why: 'the step keeps its data (markers, backups) under state_dir' }];
  switch (step.type) {
    case 'releases':
      dirs.push({ path: step.dir, why: `the step swaps the "${step.current}" symlink there` });
      break;
    case 'git': {
      dirs.push({ path: step.dir, why: 'the step checks out and builds there' });
      const usesNpm = [step.install, step.build].some((argv) => argv && /^(npm|npx)$/.test(basename(argv[0] ?? '')));
      // What the step's npm would use: npm_config_cache, else ~/.npm (npm's default).
      if (usesNpm) dirs.push({ path: env.npm_config_cache ?? env.NPM_CONFIG_CACHE ?? join(homedir(), '.npm'), why: 'npm ci keeps its cache there' });
      break;
    }
    case 'config':
      for (const dir of new Set(step.files.map((file) => dirname(resolve(step.dir, file))))) {
        dirs.push({ path: dir, why: 'the step restores config files there' });
      }
      break;
    case 'blue_green':
      // Written through a temp file beside it and a rename: the directory must be writable.
      if (step.mode === 'nginx' && step.upstream_file) dirs.push({ path: dirname(step.upstream_file), why: 'the step rewrites the nginx upstream include there' });
      break;
    default:
      break;
  }
  return dirs;
}

/** One problem per directory this process cannot write (or create), naming why it matters. */
export async function unwritableDirs(dirs: readonly WrittenDir[]): Promise<string[]> {
  const problems: string[] = [];
  for (const { path, why } of dirs) {
    const problem = await writeProblem(path);
    if (problem) problems.push(`${path} is not writable by the guard (${problem}); ${why}. Under systemd add it to ReadWritePaths=`);
  }
  return problems;
}

/** Why `path` cannot be written, or null. A missing dir counts as writable when it can be created. */
async function writeProblem(path: string): Promise<string | null> {
  let target = resolve(path);
  // Walk up to the nearest existing ancestor: that is where the step would create the rest.
  for (;;) {
    try {
      if (!(await stat(target)).isDirectory()) return target === resolve(path) ? 'not a directory' : `${target} is not a directory`;
      break;
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT') return describe(error);
      const parent = dirname(target);
      if (parent === target) return 'no existing parent directory';
      target = parent;
    }
  }
  try {
    await access(target, constants.W_OK | constants.X_OK);
    return null;
  } catch (error) {
    return target === resolve(path) ? describe(error) : `it does not exist and ${target}, where it would be created, is not writable: ${describe(error)}`;
  }
}

function describe(error: unknown): string {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'EROFS') return 'read-only file system';
  if (code === 'EACCES' || code === 'EPERM') return 'permission denied';
  if (code === 'ENOTDIR') return 'a path component is not a directory';
  return (error as Error).message;
}
