/**
 * Config strategy (the runbook's 配置回滚): snapshot the listed config files when a release window
 * opens, put them back on rollback, then restart the app so it reads them.
 *
 * Layout in the step's data directory (`<state_dir>/windows/<window id>/<n>-config/`):
 *   files/<path>         the snapshot, each file at its path relative to `dir`
 *   manifest.json        what was snapshot: per file sha256, size, mode — or that it did not exist
 *   failed/<path>        the bad release's versions, saved before they are replaced (the runbook's
 *   failed/manifest.json `cp .env.local .env.local.failed`), for the post-mortem
 *
 * Every write is atomic (a temp file in the same directory, fsynced, renamed over the target),
 * so a crash leaves either the old or the new file, never half of one. manifest.json is written
 * last: a snapshot without it is incomplete and is taken again.
 *
 * Idempotent:
 *  - `prepare` never replaces a complete snapshot: run again in the same window (a guard
 *    restart) it would otherwise snapshot files the release may already have changed.
 *  - `execute` saves the failed copies once (a resumed run must not save half-restored files as
 *    "failed"), skips files whose content and mode already match the snapshot, and restarts again.
 *
 * The snapshot is as good as its timing: announce a release (POST /releases) before the deploy
 * touches the files, or a snapshot taken at detection may already hold the new files.
 * Paths that leave `dir` (`..`, absolute paths elsewhere, a symlinked directory pointing out),
 * symlinks and directories are refused: the strategy only copies regular files inside `dir`.
 */
import { createHash, randomBytes } from 'node:crypto';
import { lstat, mkdir, open, readFile, readlink, realpath, rename, rm, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import type { Clock } from '../clock.js';
import type { ConfigFilesStrategyConfig } from '../config/schema.js';
import { errorMessage, RollbackError } from '../errors.js';
import type { Pm2Client } from '../pm2/client.js';
import { syncDir } from '../store/atomic-write.js';
import { reloadOrRestart, stepScope, within } from './step.js';
import type { ReleaseContext, RollbackContext, RollbackStrategy, StrategyDeps, StrategyFactory } from './types.js';

/** One listed file as the snapshot (or the failed copy) saw it. */
export interface SnapshotEntry {
  /** Relative to `dir`, normalised (`a/b.env`). */
  path: string;
  existed: boolean;
  sha256?: string;
  size?: number;
  /** Permission bits, e.g. 0o600. */
  mode?: number;
  /** failed/ only: the path was a symlink to this (not copied; snapshots refuse symlinks). */
  symlink?: string;
}

export interface SnapshotManifest {
  schemaVersion: 1;
  /** The release whose rollback this snapshot serves (the rollback's `from`). */
  version: string;
  dir: string;
  takenAt: string;
  files: SnapshotEntry[];
}

const MANIFEST = 'manifest.json';

/** The listed file, resolved: `rel` is safe to join under the data directory. */
interface Target {
  rel: string;
  abs: string;
}

/** Where a listed path points, or why it may not be used. */
export function resolveListed(dir: string, file: string): Target | string {
  const abs = path.resolve(dir, file);
  const rel = path.relative(dir, abs);
  if (rel === '' || rel === '..' || rel.startsWith(`..${path.sep}`) || path.isAbsolute(rel)) {
    return `${file} is outside ${dir}; only files inside dir can be snapshot and restored`;
  }
  return { rel: rel.split(path.sep).join('/'), abs };
}

/** Writes `data` to `file` atomically with permission bits `mode`. */
async function writeAtomic(file: string, data: Buffer | string, mode: number): Promise<void> {
  const temp = path.join(path.dirname(file), `.${path.basename(file)}.rg-${process.pid}-${randomBytes(6).toString('hex')}`);
  const handle = await open(temp, 'wx', mode);
  try {
    await handle.writeFile(data);
    // open's mode is filtered by the umask; the file must end up with exactly the recorded bits.
    await handle.chmod(mode);
    await handle.sync();
  } catch (error) {
    await handle.close();
    await unlink(temp).catch((cleanupError: unknown) => {
      throw new AggregateError([error, cleanupError], `could not write ${file}, and ${temp} is left behind`);
    });
    throw error;
  }
  await handle.close();
  try {
    await rename(temp, file);
  } catch (error) {
    await unlink(temp).catch((cleanupError: unknown) => {
      throw new AggregateError([error, cleanupError], `could not replace ${file}, and ${temp} is left behind`);
    });
    throw error;
  }
  await syncDir(path.dirname(file));
}

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

function isMissing(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

/** A listed path as it is on disk: a regular file, a symlink (never followed), or nothing. */
type Found = { kind: 'file'; data: Buffer; mode: number } | { kind: 'symlink'; to: string } | null;

/** Reads a listed path; anything but a regular file, a symlink or nothing throws. */
async function readListed(target: Target): Promise<Found> {
  let info;
  try {
    info = await lstat(target.abs);
  } catch (error) {
    if (isMissing(error)) return null;
    throw error;
  }
  if (info.isSymbolicLink()) return { kind: 'symlink', to: await readlink(target.abs) };
  if (!info.isFile()) throw new Error(`${target.abs} is not a regular file`);
  return { kind: 'file', data: await readFile(target.abs), mode: info.mode & 0o7777 };
}

function entryOf(rel: string, found: Found): SnapshotEntry {
  if (!found) return { path: rel, existed: false };
  if (found.kind === 'symlink') return { path: rel, existed: true, symlink: found.to };
  return { path: rel, existed: true, sha256: sha256(found.data), size: found.data.length, mode: found.mode };
}

async function readManifest(file: string): Promise<SnapshotManifest | null> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    if (isMissing(error)) return null;
    throw error;
  }
  const parsed = JSON.parse(text) as Partial<SnapshotManifest>;
  if (parsed.schemaVersion !== 1 || !Array.isArray(parsed.files) || typeof parsed.version !== 'string') {
    throw new Error(`${file} is not a config snapshot manifest (schemaVersion 1)`);
  }
  return parsed as SnapshotManifest;
}

/**
 * One configured config step. `dir` is resolved once, when the strategy is created; every path is
 * checked against it again at each use.
 */
class ConfigFilesStrategy implements RollbackStrategy {
  readonly type = 'config';
  private readonly dir: string;
  private readonly app: string | undefined;
  private readonly pm2: Pm2Client;
  private readonly clock: Clock;

  constructor(
    private readonly config: ConfigFilesStrategyConfig,
    { pm2, clock }: StrategyDeps,
  ) {
    this.dir = path.resolve(config.dir);
    this.app = config.pm2_app;
    this.pm2 = pm2;
    this.clock = clock;
  }

  describe(): string {
    const restart = this.app ? `, pm2 ${this.config.restart_mode} ${this.app}` : '';
    return `config: restore ${this.config.files.join(', ')} in ${this.dir} from the pre-release snapshot${restart}`;
  }

  async prepare(ctx: ReleaseContext): Promise<void> {
    const manifestFile = path.join(ctx.dataDir, MANIFEST);
    let existing: SnapshotManifest | null;
    try {
      existing = await readManifest(manifestFile);
    } catch (error) {
      // Never guess over a snapshot we cannot read: it may be the only good copy.
      throw new RollbackError(`${manifestFile} cannot be read: ${errorMessage(error)}; move it away to take a new snapshot`, 'prepare', { cause: error });
    }
    if (existing && existing.version === ctx.version) {
      ctx.progress(`config snapshot for ${ctx.version} already taken at ${existing.takenAt}; kept`);
      return;
    }
    const entries = await this.copyListed(ctx);
    const manifest: SnapshotManifest = {
      schemaVersion: 1,
      version: ctx.version,
      dir: this.dir,
      takenAt: new Date(this.clock.now()).toISOString(),
      files: entries,
    };
    await writeAtomic(manifestFile, `${JSON.stringify(manifest, null, 2)}\n`, 0o600);
    const absent = entries.filter((e) => !e.existed).map((e) => e.path);
    ctx.progress(
      `config snapshot for ${ctx.version}: ${entries.length - absent.length} file(s) saved in ${ctx.dataDir}` +
        (absent.length > 0 ? `; absent (removed on rollback if they appear): ${absent.join(', ')}` : ''),
    );
  }

  async checkReadiness(ctx: RollbackContext): Promise<string[]> {
    if (ctx.signal.aborted) throw new RollbackError('check was cancelled', 'check', { cause: ctx.signal.reason });
    const found: string[] = [];
    try {
      const manifest = await this.chosenSnapshot(ctx, 'check');
      const missing = await this.unlisted(manifest, 'check');
      if (missing.length > 0) found.push(`the config snapshot for ${ctx.from} does not hold ${missing.join(', ')} (listed after it was taken); they would be left as they are`);
    } catch (error) {
      found.push(errorMessage(error));
    }
    const { app } = this;
    if (app) {
      try {
        if ((await this.pm2.describe(app)).length === 0) found.push(`pm2 does not know app "${app}"`);
      } catch (error) {
        found.push(`could not ask pm2 about app "${app}": ${errorMessage(error)}`);
      }
    }
    return found;
  }

  async execute(ctx: RollbackContext): Promise<void> {
    const scope = stepScope(ctx, this.config.timeout, this.clock);
    const manifest = await within(scope, 'snapshot', 'reading the config snapshot', () => this.chosenSnapshot(ctx, 'snapshot'));
    const missing = await within(scope, 'snapshot', 'comparing the snapshot with files', () => this.unlisted(manifest, 'snapshot'));
    if (missing.length > 0) ctx.progress(`not in the snapshot (listed after it was taken), left as they are: ${missing.join(', ')}`);
    await within(scope, 'save-failed', 'saving the failed config files', () => this.saveFailed(ctx, manifest));
    for (const entry of manifest.files) {
      await within(scope, 'restore', `restoring ${entry.path}`, () => this.restore(ctx, entry));
    }
    if (!this.app) return;
    await reloadOrRestart(this.pm2, this.app, this.config.restart_mode, scope);
  }

  /** Copies the listed files into `<dataDir>/files/`; returns what the manifest is to say of each. */
  private async copyListed(ctx: ReleaseContext): Promise<SnapshotEntry[]> {
    const list = await this.targets('prepare');
    const entries: SnapshotEntry[] = [];
    for (const target of list) {
      if (ctx.signal.aborted) throw new RollbackError('config snapshot was cancelled', 'prepare', { cause: ctx.signal.reason });
      let found;
      try {
        found = await readListed(target);
      } catch (error) {
        throw new RollbackError(`cannot snapshot ${target.rel}: ${errorMessage(error)}`, 'prepare', { cause: error });
      }
      if (found?.kind === 'symlink') {
        throw new RollbackError(`cannot snapshot ${target.rel}: it is a symlink (to ${found.to}); list the file it points to instead`, 'prepare');
      }
      entries.push(entryOf(target.rel, found));
      if (!found) continue;
      const copy = path.join(ctx.dataDir, 'files', target.rel);
      await mkdir(path.dirname(copy), { recursive: true });
      await writeAtomic(copy, found.data, 0o600);
    }
    return entries;
  }

  /**
   * Where `file` (as listed, or as a manifest holds it) is, or why it may not be touched: it must
   * stay inside `dir`, also after symlinked directories are followed (checked at every use, as a
   * release could have replaced a directory with a symlink since the snapshot).
   */
  private async locate(file: string): Promise<Target | string> {
    const { dir } = this;
    const target = resolveListed(dir, file);
    if (typeof target === 'string') return target;
    let realDir: string;
    let realParent: string;
    try {
      realDir = await realpath(dir);
      realParent = await realpath(await deepestExisting(path.dirname(target.abs)));
    } catch (error) {
      return `${file} cannot be resolved in ${dir}: ${errorMessage(error)}`;
    }
    if (realParent !== realDir && !realParent.startsWith(`${realDir}${path.sep}`)) {
      return `${file} resolves to ${realParent}, outside ${realDir}, through a symlink`;
    }
    return target;
  }

  /** The listed files, resolved and de-duplicated; throws a RollbackError naming every bad path. */
  private async targets(step: string): Promise<Target[]> {
    const found: Target[] = [];
    const problems: string[] = [];
    for (const file of this.config.files) {
      const target = await this.locate(file);
      if (typeof target === 'string') problems.push(target);
      else if (!found.some((t) => t.rel === target.rel)) found.push(target);
    }
    if (problems.length > 0) throw new RollbackError(`refusing config files: ${problems.join('; ')}`, step);
    return found;
  }

  /** Listed files the snapshot does not hold (`files` grew after it was taken). */
  private async unlisted(manifest: SnapshotManifest, step: string): Promise<string[]> {
    const held = new Set(manifest.files.map((e) => e.path));
    return (await this.targets(step)).filter((t) => !held.has(t.rel)).map((t) => t.rel);
  }

  /** The manifest for `version`, with every snapshot file checked against it; throws if unusable. */
  private async snapshot(dataDir: string, version: string, step: string): Promise<SnapshotManifest> {
    const file = path.join(dataDir, MANIFEST);
    let manifest: SnapshotManifest | null;
    try {
      manifest = await readManifest(file);
    } catch (error) {
      throw new RollbackError(`config snapshot ${file} cannot be read: ${errorMessage(error)}`, step, { cause: error });
    }
    if (!manifest) {
      throw new RollbackError(
        `no config snapshot for release ${version} in ${dataDir}: it is taken when the release window opens ` +
          `(announce releases before deploying them)`,
        step,
      );
    }
    if (manifest.version !== version) {
      throw new RollbackError(`config snapshot in ${dataDir} is for release ${manifest.version}, not ${version}`, step);
    }
    const problems: string[] = [];
    for (const entry of manifest.files) {
      // The manifest is ours, but it decides where files are written: hold it to the same rules.
      const target = resolveListed(this.dir, String(entry.path));
      if (typeof target === 'string' || target.rel !== entry.path) {
        problems.push(`manifest entry ${JSON.stringify(entry.path)} is not a plain path inside ${this.dir}`);
        continue;
      }
      if (!entry.existed) continue;
      const copy = path.join(dataDir, 'files', entry.path);
      try {
        const data = await readFile(copy);
        if (sha256(data) !== entry.sha256) problems.push(`${copy} does not match its sha256 in the manifest`);
      } catch (error) {
        problems.push(`${copy} cannot be read: ${errorMessage(error)}`);
      }
    }
    if (problems.length > 0) throw new RollbackError(`config snapshot for ${version} is damaged: ${problems.join('; ')}`, step);
    return manifest;
  }

  /**
   * The snapshot the shell chose (src/shell/preparations.ts): this window's, of release `from`; or,
   * for a release whose window opened after the deploy, the stable version's, of the target `to`.
   */
  private chosenSnapshot(ctx: RollbackContext, step: string): Promise<SnapshotManifest> {
    const stable = ctx.prepared?.source === 'stable';
    return this.snapshot(ctx.prepared?.dir ?? ctx.dataDir, stable ? ctx.to : ctx.from, step);
  }

  /** Saves the files as they are now (the bad release's) under failed/, once. */
  private async saveFailed(ctx: RollbackContext, manifest: SnapshotManifest): Promise<void> {
    const failedDir = path.join(ctx.dataDir, 'failed');
    if ((await readManifest(path.join(failedDir, MANIFEST))) !== null) {
      ctx.progress(`failed copies already saved in ${failedDir}`);
      return;
    }
    const entries: SnapshotEntry[] = [];
    for (const { path: rel } of manifest.files) {
      const target = await this.locate(rel);
      if (typeof target === 'string') throw new Error(target);
      const current = await readListed(target);
      entries.push(entryOf(rel, current));
      if (current?.kind !== 'file') continue;
      const copy = path.join(failedDir, rel);
      await mkdir(path.dirname(copy), { recursive: true });
      // Copies in the state directory are private; the manifest keeps the file's own mode.
      await writeAtomic(copy, current.data, 0o600);
    }
    await mkdir(failedDir, { recursive: true });
    const failed: SnapshotManifest = { schemaVersion: 1, version: ctx.from, dir: this.dir, takenAt: new Date(this.clock.now()).toISOString(), files: entries };
    await writeAtomic(path.join(failedDir, MANIFEST), `${JSON.stringify(failed, null, 2)}\n`, 0o600);
    ctx.progress(`saved the failed versions of ${entries.filter((e) => e.existed).length} file(s) in ${failedDir}`);
  }

  /** Puts one file back as the snapshot has it (or removes it if it did not exist). */
  private async restore(ctx: RollbackContext, entry: SnapshotEntry): Promise<void> {
    const located = await this.locate(entry.path);
    if (typeof located === 'string') throw new Error(located);
    const target = located.abs;
    const current = await readListed(located);
    if (!entry.existed) {
      if (!current) return ctx.progress(`${entry.path}: absent before the release, still absent`);
      await rm(target, { force: true });
      await syncDir(path.dirname(target));
      return ctx.progress(`${entry.path}: removed (added by the release)`);
    }
    const mode = entry.mode ?? 0o644;
    if (current?.kind === 'file' && sha256(current.data) === entry.sha256 && current.mode === mode) {
      return ctx.progress(`${entry.path}: already as snapshot`);
    }
    const data = await readFile(path.join(ctx.prepared?.dir ?? ctx.dataDir, 'files', entry.path));
    if (sha256(data) !== entry.sha256) throw new Error(`snapshot of ${entry.path} changed while restoring it`);
    await mkdir(path.dirname(target), { recursive: true });
    await writeAtomic(target, data, mode);
    ctx.progress(`${entry.path}: restored (${data.length} bytes, mode ${mode.toString(8).padStart(4, '0')})`);
  }
}

export const configFilesStrategy: StrategyFactory<ConfigFilesStrategyConfig> = (config, deps) => new ConfigFilesStrategy(config, deps);

/** `dir` or its closest existing ancestor (a listed file's directory may not exist yet). */
async function deepestExisting(dir: string): Promise<string> {
  for (let current = dir; ; current = path.dirname(current)) {
    try {
      await stat(current);
      return current;
    } catch (error) {
      if (!isMissing(error) || path.dirname(current) === current) throw error;
    }
  }
}
