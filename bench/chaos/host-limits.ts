/**
 * Chaos scenario for issue 13 item 9, the host the guard runs on, against the built guard:
 *
 * - a deploy dir the guard cannot write: the guard runs in a private mount namespace
 *   (`unshare --mount`) where its config step's dir is bind-mounted read-only, as systemd's
 *   ProtectSystem=strict / ReadOnlyPaths= do. It runs as root, which ignores file modes, so only a
 *   check that asks the kernel sees it. A forced preflight must say not ready, naming the dir; the
 *   same config in a guard without the mount (the control) is ready.
 * - a stuck loop: the guard with a module preloaded (`node --import`) that, once a file appears,
 *   blocks the event loop 1.5 s of every 1.6 s (a hostile parse would). /healthz, what a watchdog
 *   polls, must turn 503 with the reason within about one liveness window.
 */
import { execFileSync } from 'node:child_process';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { TOKEN, type GuardProcess } from '../guard.js';
import { sleep, waitFor } from '../proc.js';
import { chaosConfig, fileVersionApp, startChaosGuard, type FileVersionApp } from './chaos-kit.js';
import type { ChaosContext, ChaosRow } from './types.js';

/** /healthz must turn 503 within this of the loop getting stuck. */
const UNHEALTHY_WITHIN_MS = 15_000;

function canUnshare(): boolean {
  try {
    execFileSync('unshare', ['--mount', 'sh', '-c', 'mount -t tmpfs none /mnt && umount /mnt'], { stdio: 'ignore', timeout: 5000 });
    return true;
  } catch {
    return false;
  }
}

async function freshPreflight(guard: GuardProcess): Promise<{ ready: boolean; steps: { problems: string[] }[]; problems?: string[] }> {
  const response = await fetch(`${guard.url}/preflight`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` }, signal: AbortSignal.timeout(20_000) });
  return (await response.json()) as { ready: boolean; steps: { problems: string[] }[] };
}

/** Whether a complete stable backup (its prepared.json says so) is under `stateDir/stable`. */
async function stableBackupDone(stateDir: string): Promise<boolean> {
  for (const entry of (await readdir(path.join(stateDir, 'stable'), { recursive: true }).catch(() => [] as string[])).filter((e) => e.endsWith('prepared.json'))) {
    if (/"state":\s*"complete"/.test(await readFile(path.join(stateDir, 'stable', entry), 'utf8').catch(() => ''))) return true;
  }
  return false;
}

async function readOnlyRow(dir: string, app: FileVersionApp): Promise<ChaosRow> {
  const input = 'config step dir bind-mounted read-only for the guard (root, unshare --mount); control: same config, writable';
  if (!canUnshare()) return { item: '9 read-only deploy dir: preflight', input, measured: 'could not run: no private mount namespace here (needs root or user namespaces)', target: 'not ready, naming the dir', ok: false };
  const deployDir = path.join(dir, 'deploy');
  await mkdir(deployDir, { recursive: true });
  await writeFile(path.join(deployDir, 'app.env'), 'MODE=1\n');
  const guards: GuardProcess[] = [];
  try {
    const start = (name: string, prefix: string[]) =>
      startChaosGuard(
        path.join(dir, name),
        (port) => chaosConfig({ stateDir: path.join(dir, name, 'state'), port, healthUrl: app.url, steps: [{ type: 'config', dir: deployDir, files: ['app.env'] }], extra: { release: { version_probe: 'health', window: '10m', initial_delay: '1s', settle: '5m' } } }),
        {},
        { prefix },
      ).then((g) => (guards.push(g), g));
    const locked = await start('locked', ['unshare', '--mount', '--propagation', 'private', 'sh', '-c', 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && exec "$@"', deployDir]);
    const open = await start('open', []);
    await waitFor('v1 stable on both', async () => (await locked.state())?.stable === 'v1' && (await open.state())?.stable === 'v1', 30_000, 100);
    // The stable version's backup first: a preflight without one rightly warns.
    await waitFor('the stable backups', async () => (await stableBackupDone(locked.stateDir)) && (await stableBackupDone(open.stateDir)), 30_000, 200);
    await sleep(1000);
    await app.set('v3');
    await waitFor('the v3 window on both', async () => (await locked.state())?.release?.version === 'v3' && (await open.state())?.release?.version === 'v3', 30_000, 100);
    const openView = await waitFor('the control to be ready', async () => ((v) => (v.ready ? v : null))(await freshPreflight(open)), 30_000, 500).catch(() => null);
    const lockedView = await freshPreflight(locked);
    const problems = [...(lockedView.problems ?? []), ...lockedView.steps.flatMap((s) => s.problems)];
    const named = problems.find((p) => p.includes(deployDir) && /not writable/.test(p));
    return {
      item: '9 read-only deploy dir: preflight',
      input,
      measured: `read-only: ${lockedView.ready ? 'READY' : 'not ready'}${named ? ` (${named.replace(deployDir, '<deploy>').slice(0, 120)})` : ` (${problems.join('; ').slice(0, 120) || 'no problem named'})`}; control: ${openView?.ready ? 'ready' : 'not ready'}`,
      target: 'not ready, naming the dir; control ready',
      ok: !lockedView.ready && named !== undefined && openView?.ready === true,
    };
  } finally {
    for (const g of guards) await g.stop();
  }
}

/**
 * A module to preload (`node --import`) into a guard: once `trigger` exists, it blocks the event
 * loop 1.5 s of every 1.6 s, as a hostile parse would. Shared with test/integration/healthz-liveness.
 */
export async function writeLoopBlocker(dir: string): Promise<{ module: string; trigger: string }> {
  const trigger = path.join(dir, 'block-now');
  const module = path.join(dir, 'blocker.mjs');
  await writeFile(
    module,
    `import { existsSync } from 'node:fs';
const poll = setInterval(() => {
  if (!existsSync(${JSON.stringify(trigger)})) return;
  clearInterval(poll);
  setInterval(() => { const end = Date.now() + 1500; while (Date.now() < end); }, 100);
}, 100);
poll.unref();
`,
  );
  return { module, trigger };
}

async function stuckLoopRow(dir: string, app: FileVersionApp): Promise<ChaosRow> {
  await mkdir(dir, { recursive: true });
  const { module: blocker, trigger } = await writeLoopBlocker(dir);
  const healthz = async (url: string) => {
    const response = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(10_000) });
    return { status: response.status, body: (await response.json()) as { error?: string } };
  };
  const guard = await startChaosGuard(
    dir,
    (port) => chaosConfig({ stateDir: path.join(dir, 'state'), port, healthUrl: app.url, steps: [{ type: 'command', command: ['/bin/true'] }], extra: { server: { host: '127.0.0.1', port, liveness: '5s' } } }),
    {},
    { nodeFlags: ['--import', blocker] },
  );
  try {
    // Healthy for a whole window while nothing blocks it.
    await sleep(6000);
    const before = await healthz(guard.url);
    await writeFile(trigger, '');
    const started = Date.now();
    const sick = await waitFor('/healthz 503', async () => ((a) => (a.status === 503 ? a : null))(await healthz(guard.url)), 30_000, 200).catch(() => null);
    const tookMs = Date.now() - started;
    return {
      item: '9 stuck loop: /healthz',
      input: 'event loop blocked 1.5 s of every 1.6 s (server.liveness 5 s)',
      measured: `before: ${before.status}; stuck: ${sick ? `503 after ${(tookMs / 1000).toFixed(1)} s (${String(sick.body.error).slice(0, 110)})` : 'still 200 after 30 s'}`,
      target: `200, then 503 with the reason ≤ ${UNHEALTHY_WITHIN_MS / 1000} s`,
      ok: before.status === 200 && sick !== null && tookMs <= UNHEALTHY_WITHIN_MS && /event loop was blocked/.test(sick.body.error ?? ''),
    };
  } finally {
    await guard.stop();
  }
}

export async function run(ctx: ChaosContext): Promise<ChaosRow[]> {
  // Nothing fails here: a window opens (v3), nothing rolls back.
  const app = await fileVersionApp(path.join(ctx.workDir, 'app'), []);
  try {
    ctx.log('host-limits: read-only deploy dir');
    const rows = [await readOnlyRow(path.join(ctx.workDir, 'ro'), app)];
    await app.set('v1');
    ctx.log('host-limits: stuck loop');
    rows.push(await stuckLoopRow(path.join(ctx.workDir, 'stuck'), app));
    return rows;
  } finally {
    await app.close();
  }
}
