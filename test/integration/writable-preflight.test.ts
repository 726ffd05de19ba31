/**
 * Issue 13 item 9: preflight reported ready for a deploy dir the unit mounts read-only. It now
 * checks, as the guard process sees them, that the dirs each step writes are writable.
 *
 * The read-only dir is real: the guard (the CLI, its own process) runs in a private mount
 * namespace (`unshare --mount`) where the config step's dir is bind-mounted read-only, which is
 * what systemd's ProtectSystem=strict / ReadOnlyPaths= do. The guard runs as root here, and root
 * ignores file modes, so only a check that asks the kernel (access(2): EROFS) can see it. The same
 * config in a guard without the read-only mount is ready.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { PROJECT_ROOT } from '../fixtures/demo-app/releases.js';
import { dirsWrittenBy, unwritableDirs } from '../../src/shell/writable-dirs.js';
import { freePort, waitFor } from '../helpers/pm2-sandbox.js';

const TOKEN = 'writable-preflight-token-0123456789';
/** Whether this machine lets us make a private read-only bind mount (root, or user namespaces). */
const CAN_UNSHARE = (() => {
  try {
    execFileSync('unshare', ['--mount', 'sh', '-c', 'mount --bind / /mnt 2>/dev/null || mount -t tmpfs none /mnt; umount /mnt'], { stdio: 'ignore', timeout: 5000 });
    return true;
  } catch {
    return false;
  }
})();

let dir: string;
let app: Server;
let version = 'v1';
const children: ChildProcess[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'rg-writable-'));
  app = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ version }));
  });
  await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
  await writeFile(join(dir, 'token'), `${TOKEN}\n`, { mode: 0o600 });
});

afterAll(async () => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  app?.closeAllConnections();
  await new Promise((resolve) => app?.close(resolve));
  await rm(dir, { recursive: true, force: true });
});

/** A guard whose one step restores app.env into `deployDir`; `readOnly` mounts that dir read-only for it. */
async function startGuard(name: string, deployDir: string, readOnly: boolean): Promise<{ url: string; logs: () => string }> {
  const port = await freePort();
  const config = join(dir, `${name}.yaml`);
  await writeFile(
    config,
    stringify({
      service: 'web',
      state_dir: join(dir, `state-${name}`),
      server: { host: '127.0.0.1', port, token_file: join(dir, 'token') },
      log: { level: 'info', format: 'json' },
      probes: [{ name: 'health', type: 'http', url: `http://127.0.0.1:${(app.address() as AddressInfo).port}/health`, timeout: '1s', version_path: 'version' }],
      schedule: { interval: '200ms', fast_interval: '200ms', fast_for: '1m' },
      release: { version_probe: 'health', window: '10m', initial_delay: '1s', settle: '5m' },
      rules: { health: { probe: 'health', consecutive: 3 } },
      rollback: { steps: [{ type: 'config', dir: deployDir, files: ['app.env'] }] },
      verification: { probe: 'health', passes: 3, timeout: '20s' },
    }),
  );
  const guard = [process.execPath, '--import', 'tsx', join(PROJECT_ROOT, 'src/cli/main.ts'), 'start', '--config', config];
  const [program, ...args] = readOnly
    ? ['unshare', '--mount', '--propagation', 'private', 'sh', '-c', 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && exec "$@"', deployDir, ...guard]
    : guard;
  const child = spawn(program!, args, { cwd: PROJECT_ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
  children.push(child);
  let logs = '';
  child.stderr!.on('data', (chunk: Buffer) => (logs += chunk.toString()));
  const url = `http://127.0.0.1:${port}`;
  await waitFor(async () => (await fetch(`${url}/healthz`)).status === 200, 30_000).catch((error: unknown) => {
    throw new Error(`${name} guard did not start: ${logs.slice(-1000)}`, { cause: error });
  });
  return { url, logs: () => logs };
}

/** Whether a complete stable backup (its prepared.json says so) is under `stateDir/stable`. */
async function stableBackupsDone(stateDir: string): Promise<boolean> {
  const entries = await readdir(join(stateDir, 'stable'), { recursive: true }).catch(() => [] as string[]);
  for (const entry of entries.filter((e) => e.endsWith('prepared.json'))) {
    if (/"state":\s*"complete"/.test(await readFile(join(stateDir, 'stable', entry), 'utf8').catch(() => ''))) return true;
  }
  return false;
}

async function freshPreflight(url: string): Promise<{ ready: boolean; steps: { problems: string[] }[] }> {
  const response = await fetch(`${url}/preflight`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` } });
  expect(response.status).toBe(200);
  return (await response.json()) as { ready: boolean; steps: { problems: string[] }[] };
}

async function status(url: string): Promise<{ stable: string | null; release: { version: string } | null }> {
  return (await (await fetch(`${url}/status`)).json()) as { stable: string | null; release: { version: string } | null };
}

describe('preflight checks writability as the guard sees it', () => {
  it.skipIf(!CAN_UNSHARE)('a deploy dir mounted read-only for the guard is not ready, with the reason; the same dir writable is ready', async () => {
    const deployDir = join(dir, 'deploy');
    await mkdir(deployDir);
    await writeFile(join(deployDir, 'app.env'), 'MODE=1\n');
    const locked = await startGuard('locked', deployDir, true);
    const open = await startGuard('open', deployDir, false);
    await waitFor(async () => (await status(locked.url)).stable === 'v1' && (await status(open.url)).stable === 'v1', 30_000);
    // The stable version's backup (stable-backups.ts) is taken first: a detected release is
    // restored from it, and preflight rightly warns while none predates the release.
    await waitFor(async () => (await stableBackupsDone(join(dir, 'state-locked'))) && (await stableBackupsDone(join(dir, 'state-open'))), 30_000);
    // A detected release began after the last check that still saw v1: let a few checks (every
    // 200 ms) see v1 after the backup, so the backup provably predates the release.
    await new Promise((resolve) => setTimeout(resolve, 1000));
    version = 'v2';
    await waitFor(async () => (await status(locked.url)).release?.version === 'v2' && (await status(open.url)).release?.version === 'v2', 30_000);

    // The window's preparation (the config snapshot) runs after it opens: wait for it.
    await waitFor(async () => (await freshPreflight(open.url)).ready, 30_000, 500);
    const lockedView = await freshPreflight(locked.url);
    expect(lockedView.ready, JSON.stringify(lockedView)).toBe(false);
    expect(lockedView.steps[0]!.problems).toContainEqual(
      `${deployDir} is not writable by the guard (read-only file system); the step restores config files there. Under systemd add it to ReadWritePaths=`,
    );
    const openView = await freshPreflight(open.url);
    expect(openView, JSON.stringify(openView)).toMatchObject({ ready: true, steps: [{ problems: [] }] });
  }, 90_000);

  it('names a dir whose path runs through a file, and a missing dir that can be created is fine', async () => {
    const file = join(dir, 'a-file');
    await writeFile(file, 'x');
    const problems = await unwritableDirs([
      { path: join(file, 'deploy'), why: 'test' },
      { path: join(dir, 'not-yet', 'deploy'), why: 'test' },
    ]);
    expect(problems).toEqual([`${join(file, 'deploy')} is not writable by the guard (a path component is not a directory); test. Under systemd add it to ReadWritePaths=`]);
  });

  it('knows where each strategy writes: the git strategy with npm also writes the npm cache', () => {
    const git = dirsWrittenBy({ type: 'git', dir: '/srv/web', tag_prefix: '', install: ['npm', 'ci'], build: null, timeout: 600_000 }, '/var/lib/release-guard', { npm_config_cache: '/var/cache/npm' });
    expect(git.map((d) => d.path)).toEqual(['/var/lib/release-guard', '/srv/web', '/var/cache/npm']);
  });
});
