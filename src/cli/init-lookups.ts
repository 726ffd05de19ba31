/**
 * What `release-guard init` looks at, one question each: a pm2 app (without ever starting a pm2
 * daemon), a Capistrano deploy layout, a health URL's JSON, and an access log's recent lines.
 */
import { constants } from 'node:fs';
import { access, lstat, open, readFile, readlink, stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import { basename, dirname, join, resolve, sep } from 'node:path';
import { errorMessage } from '../errors.js';
import type { Pm2ProcessInfo } from '../pm2/client.js';
import { lineReader, resolveLineSettings, type AccessLogFormat } from '../probes/access-log-parse.js';

const HTTP_TIMEOUT_MS = 3000;
const MAX_BODY = 1024 * 1024;

/** Keys that usually carry the running version, best first. */
const VERSION_KEYS = [/^version$/i, /^app_?version$/i, /^(release|release_?version)$/i, /^(build|build_?version)$/i, /^(git_?sha|sha|commit|revision|rev)$/i, /^tag$/i];
const STATUS_KEYS = /^(status|state|health)$/i;
const STATUS_OK = /^(ok|up|healthy|pass|passing|green|available)$/i;
/** The tail of a log looked at to tell its format: a few hundred lines. */
const ACCESS_LOG_SNIFF_BYTES = 64 * 1024;

export async function firstExisting(paths: readonly string[]): Promise<string | undefined> {
  for (const path of paths) if (await exists(path)) return path;
  return undefined;
}

/**
 * The format of a log's recent lines, among those the access_log probe reads with its defaults
 * (at most 1 line in 10 may fail to parse: a few odd lines do not hide the format); else why not.
 */
export async function inspectAccessLog(path: string): Promise<{ format?: AccessLogFormat; lines: number; problem?: string }> {
  let text: string;
  try {
    const handle = await open(path, 'r');
    try {
      const { size } = await handle.stat();
      const start = Math.max(0, size - ACCESS_LOG_SNIFF_BYTES);
      const buffer = Buffer.alloc(size - start);
      await handle.read(buffer, 0, buffer.length, start);
      text = buffer.toString('utf8');
      // The first line is cut unless the tail is the whole file.
      if (start > 0) text = text.slice(text.indexOf('\n') + 1);
    } finally {
      await handle.close();
    }
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return { lines: 0, problem: 'does not exist' };
    if (code === 'EACCES' || code === 'EPERM') return { lines: 0, problem: 'cannot be read by this user (permission denied): the guard needs read access to it (e.g. the adm group on Debian)' };
    return { lines: 0, problem: `cannot be read (${code ?? errorMessage(error)})` };
  }
  const lines = text.split('\n').filter((line) => line.trim() !== '').slice(-200);
  if (lines.length === 0) return { lines: 0, problem: 'is empty, so its format could not be checked' };
  for (const format of ['nginx', 'apache', 'json'] as const) {
    const settings = resolveLineSettings({ format, error_status: '^5..$' });
    if (Array.isArray(settings)) continue;
    const read = lineReader(settings);
    const outcomes = lines.map(read);
    // JSON logs interleave the app's own lines ('other'): those are not a mismatch.
    const requests = outcomes.filter((outcome) => typeof outcome === 'object').length;
    const unparsed = outcomes.filter((outcome) => outcome === 'unparsed').length;
    if (requests > 0 && unparsed <= 0.1 * lines.length) return { format, lines: lines.length };
  }
  const example = lines.at(-1)!;
  return { lines: lines.length, problem: `is not in a format the access_log probe reads by default (e.g. ${JSON.stringify(example.length > 100 ? `${example.slice(0, 100)}…` : example)})` };
}

export interface Layout {
  /** The deploy root holding releases/ and the symlink. */
  dir: string;
  /** The symlink's name (usually `current`). */
  current: string;
  /** The release it points at. */
  version: string;
}

/** `dir` as a Capistrano deploy root: `dir/releases/` and `dir/current -> releases/<version>`. */
export async function layoutAt(dir: string): Promise<Layout | null> {
  const releases = await stat(join(dir, 'releases')).catch(() => null);
  if (!releases?.isDirectory()) return null;
  return symlinkIntoReleases(join(dir, 'current'));
}

/** The nearest symlink on a script's path that points into a sibling `releases/` directory. */
export async function layoutAbove(script: string): Promise<Layout | null> {
  const parts = resolve(script).split(sep);
  for (let i = parts.length - 1; i >= 1; i--) {
    const found = await symlinkIntoReleases(parts.slice(0, i + 1).join(sep) || sep);
    if (found) return found;
  }
  return null;
}

async function symlinkIntoReleases(link: string): Promise<Layout | null> {
  const info = await lstat(link).catch(() => null);
  if (!info?.isSymbolicLink()) return null;
  const parent = dirname(link);
  const target = resolve(parent, await readlink(link));
  if (dirname(target) !== join(parent, 'releases')) return null;
  const release = await stat(target).catch(() => null);
  if (!release?.isDirectory()) return null;
  return { dir: parent, current: basename(link), version: basename(target) };
}

/** Asks the pm2 daemon in `home` about `app`, without ever starting a daemon. */
export async function describeWithPm2(app: string, home: string | undefined): Promise<Pm2ProcessInfo[] | null> {
  const dir = home ?? join(homedir(), '.pm2');
  if (!(await daemonRuns(dir))) return null;
  const { Pm2ApiClient } = await import('../pm2/pm2-api-client.js');
  const client = new Pm2ApiClient(home !== undefined ? { home } : {});
  try {
    return await client.describe(app);
  } finally {
    await client.disconnect().catch(() => undefined);
  }
}

/** pm2 starts a daemon on connect when none runs: check its pid file and socket first. */
async function daemonRuns(home: string): Promise<boolean> {
  try {
    const pid = Number.parseInt(await readFile(join(home, 'pm2.pid'), 'utf8'), 10);
    if (!Number.isInteger(pid) || pid <= 0) return false;
    process.kill(pid, 0);
    await access(join(home, 'rpc.sock'), constants.F_OK);
    return true;
  } catch (error) {
    // EPERM: it runs, as another user (whose socket we may still be allowed to use).
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export async function getJson(fetcher: typeof fetch, url: string): Promise<{ status: number; json?: unknown; error?: string }> {
  try {
    const response = await fetcher(url, { signal: AbortSignal.timeout(HTTP_TIMEOUT_MS), headers: { accept: 'application/json' } });
    const text = (await response.text()).slice(0, MAX_BODY);
    try {
      return { status: response.status, json: JSON.parse(text) as unknown };
    } catch {
      return { status: response.status };
    }
  } catch (error) {
    const name = (error as Error).name;
    if (name === 'TimeoutError' || name === 'AbortError') return { status: 0, error: `no answer within ${HTTP_TIMEOUT_MS / 1000}s` };
    const code = errorCode(error);
    const words: Record<string, string> = { ECONNREFUSED: 'connection refused', ENOTFOUND: 'no such host', EHOSTUNREACH: 'host unreachable', ECONNRESET: 'connection reset' };
    const cause = (error as { cause?: unknown }).cause;
    return { status: 0, error: code !== undefined ? (words[code] ?? code) : cause instanceof Error ? cause.message : errorMessage(error) };
  }
}

/** fetch wraps the socket error (`TypeError: fetch failed`, cause `{ code }` or an AggregateError of them). */
function errorCode(error: unknown): string | undefined {
  let current: unknown = error;
  for (let depth = 0; depth < 4 && current !== null && typeof current === 'object'; depth++) {
    const record = current as { code?: unknown; errors?: unknown[]; cause?: unknown };
    if (typeof record.code === 'string') return record.code;
    const first = Array.isArray(record.errors) ? (record.errors[0] as { code?: unknown } | undefined) : undefined;
    if (typeof first?.code === 'string') return first.code;
    current = record.cause;
  }
  return undefined;
}

/** The dot path of the best version-like field (top level first, then nested), if any. */
export function findVersion(json: unknown): { path: string; value: string | number } | null {
  for (const pattern of VERSION_KEYS) {
    const found = findField(json, (key, value) => pattern.test(key) && (typeof value === 'string' || typeof value === 'number') && String(value).trim() !== '');
    if (found) return found as { path: string; value: string | number };
  }
  return null;
}

export function findStatus(json: unknown): { path: string; value: string | boolean } | null {
  const found = findField(json, (key, value) => STATUS_KEYS.test(key) && ((typeof value === 'string' && STATUS_OK.test(value)) || value === true), 1);
  return found as { path: string; value: string | boolean } | null;
}

/** Breadth first, so `version` wins over `build.version`; at most `depth` levels below the top. */
function findField(json: unknown, match: (key: string, value: unknown) => boolean, depth = 3): { path: string; value: unknown } | null {
  let level: { path: string; value: unknown }[] = [{ path: '', value: json }];
  for (let d = 0; d < depth && level.length > 0; d++) {
    const next: { path: string; value: unknown }[] = [];
    for (const node of level) {
      if (node.value === null || typeof node.value !== 'object' || Array.isArray(node.value)) continue;
      for (const [key, value] of Object.entries(node.value as Record<string, unknown>)) {
        if (!/^[A-Za-z0-9_-]+$/.test(key)) continue;
        const path = node.path === '' ? key : `${node.path}.${key}`;
        if (match(key, value)) return { path, value };
        next.push({ path, value });
      }
    }
    level = next;
  }
  return null;
}

export async function exists(file: string): Promise<boolean> {
  return lstat(file).then(
    () => true,
    () => false,
  );
}
