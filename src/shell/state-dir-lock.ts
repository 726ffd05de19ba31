/**
 * One guard per state dir: an exclusive lock taken before anything else starts.
 *
 * The lock is a listening unix socket in Linux's abstract namespace, named after the state dir.
 * Why this rather than a PID file or a lock file refreshed by a timer (proper-lockfile):
 * - The kernel owns it. It disappears with the process however the process ends (kill -9, OOM
 *   kill, power loss), so a restarted guard never waits out a staleness period and never finds a
 *   stale lock to take over: there is no takeover race between two new guards either.
 * - No PID reuse. A PID file left by a killed guard names, after a reboot, whatever process got
 *   that PID (boot order makes it likely) and a liveness check then refuses every start.
 * - No refresh. A lock refreshed by a timer is taken over when the holder's event loop stalls
 *   longer than the staleness period (a hostile scrape), leaving two guards acting.
 * The name hashes the dir's device and inode (the same dir under another path, a symlink or a bind
 * mount is the same lock) with a random key kept in the dir (mode 0600), so another local user
 * cannot compute the name and squat it to keep the guard from starting. The holder answers a
 * connection with who it is, so the refused guard can say which process holds the dir.
 * Limit: abstract sockets belong to a network namespace; two guards in different containers sharing
 * one state dir through a volume do not see each other (neither would a PID file).
 */
import { createHash, randomBytes } from 'node:crypto';
import { link, mkdir, readFile, realpath, rm, stat, writeFile } from 'node:fs/promises';
import { connect, createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { GuardError, errorMessage } from '../errors.js';
import { clockTimeout, type Clock } from './clock.js';

const KEY_FILE = '.guard-lock-key';
/** How long a refused guard waits for the holder to say who it is. */
const WHO_TIMEOUT_MS = 1000;

/** What the holder tells a guard it refuses. */
export interface LockHolder {
  pid: number;
  since: string;
  /** The holder's API address, once it listens. */
  url?: string;
}

export interface StateDirLock {
  /** Adds the API address to what the holder tells refused guards. */
  describe(fields: Partial<LockHolder>): void;
  release(): Promise<void>;
}

/**
 * Takes the lock on `dir` (created if missing), or throws a one-line GuardError naming the holder.
 */
export async function lockStateDir(dir: string, options: { clock: Clock }): Promise<StateDirLock> {
  try {
    await mkdir(dir, { recursive: true, mode: 0o750 });
  } catch (error) {
    throw new GuardError(`cannot create state_dir ${dir}: ${errorMessage(error)}; create it, or set state_dir to a directory the guard can write`, 'state_dir');
  }
  const name = await lockName(dir);
  const holder: LockHolder = { pid: process.pid, since: new Date(options.clock.now()).toISOString() };
  // Each connection is told who holds the dir, then closed.
  const server: Server = createServer((socket) => {
    socket.on('error', () => undefined);
    socket.end(`${JSON.stringify(holder)}\n`);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) => {
      if (error.code !== 'EADDRINUSE') {
        reject(new GuardError(`cannot lock state_dir ${dir}: ${error.message}`, 'state_dir_lock'));
        return;
      }
      void askHolder(name, options.clock).then((who) =>
        reject(new GuardError(`state_dir ${dir} is in use by another release-guard (${who}); stop that one first, or give this one its own state_dir`, 'state_dir_locked')),
      );
    });
    server.listen(name, () => resolve());
  });
  // The lock must not keep a process alive on its own (start-up failures exit through it).
  server.unref();
  server.on('error', () => undefined);
  return {
    describe(fields) {
      Object.assign(holder, fields);
    },
    release: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** `\0release-guard/<hash>`: the dir's identity (device, inode) keyed by the dir's own secret. */
async function lockName(dir: string): Promise<string> {
  let info;
  try {
    info = await stat(await realpath(dir));
  } catch (error) {
    throw new GuardError(`cannot read state_dir ${dir}: ${errorMessage(error)}`, 'state_dir');
  }
  if (!info.isDirectory()) throw new GuardError(`state_dir ${dir} is not a directory`, 'state_dir');
  const key = await lockKey(dir);
  const digest = createHash('sha256').update(`${key}\n${info.dev}:${info.ino}`).digest('hex').slice(0, 40);
  return `\0release-guard/${digest}`;
}

/** The dir's random key, created once; written whole (temp file + link) so no guard reads half of it. */
async function lockKey(dir: string): Promise<string> {
  const path = join(dir, KEY_FILE);
  for (let attempt = 0; attempt < 3; attempt++) {
    const existing = await readFile(path, 'utf8').catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') return null;
      throw new GuardError(`cannot read ${path}: ${errorMessage(error)}`, 'state_dir');
    });
    if (existing !== null && /^[0-9a-f]{64}$/.test(existing.trim())) return existing.trim();
    if (existing !== null) throw new GuardError(`${path} is not a lock key (64 hex digits); delete it and start again`, 'state_dir');
    const temp = `${path}.${randomBytes(6).toString('hex')}.tmp`;
    try {
      await writeFile(temp, `${randomBytes(32).toString('hex')}\n`, { mode: 0o600, flag: 'wx' });
      // link() fails when the key exists: a guard starting at the same moment made it first.
      await link(temp, path).catch((error: NodeJS.ErrnoException) => {
        if (error.code !== 'EEXIST') throw error;
      });
    } catch (error) {
      throw new GuardError(`cannot write ${path}: ${errorMessage(error)}; state_dir must be writable by the guard`, 'state_dir');
    } finally {
      await rm(temp, { force: true });
    }
  }
  throw new GuardError(`cannot create ${path}`, 'state_dir');
}

/** What the holder says about itself, in words; it gets WHO_TIMEOUT_MS on `clock` to say it. */
function askHolder(name: string, clock: Clock): Promise<string> {
  return new Promise((resolve) => {
    let text = '';
    const socket = connect(name);
    const deadline = clockTimeout(clock, WHO_TIMEOUT_MS);
    const done = (what: string) => {
      deadline.clear();
      socket.destroy();
      resolve(what);
    };
    deadline.signal.addEventListener('abort', () => done('it did not say who it is'), { once: true });
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      text += chunk;
      if (text.length > 4096) done('it did not say who it is');
    });
    socket.on('error', () => done('it did not say who it is'));
    socket.on('end', () => {
      try {
        const who = JSON.parse(text) as Partial<LockHolder>;
        const parts = [`pid ${Number(who.pid)}`];
        if (typeof who.since === 'string') parts.push(`since ${who.since}`);
        if (typeof who.url === 'string') parts.push(`API ${who.url}`);
        // One line whatever the holder sent.
        done(parts.join(', ').replace(/\p{Cc}/gu, '').slice(0, 300));
      } catch {
        done('it did not say who it is');
      }
    });
  });
}
