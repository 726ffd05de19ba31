/**
 * `release-guard status` against a small fake daemon (the real API server, a fake GuardControl
 * whose state changes): `--watch` on a real pseudo-terminal (a private tmux server: the screen is
 * redrawn in place, the change shows up, Ctrl-C ends it with exit 0), `--watch --json` on a pipe
 * (one JSON line per refresh, SIGINT exits 0), and plain `--json`.
 */
import { execFile, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApiServer, type ApiServer } from '../../src/api/server.js';
import type { GuardControl, HistoryView, StatusView } from '../../src/api/types.js';
import { ensureDebianPackage } from '../helpers/apt.js';
import { waitFor } from '../helpers/pm2-sandbox.js';

const root = resolve(import.meta.dirname, '../..');

/** What the fake daemon reports; tests flip `current` to change it. */
function viewFor(phase: 'stable' | 'guarding'): StatusView {
  const now = new Date();
  const since = new Date(now.getTime() - 65_000).toISOString();
  return {
    service: 'web',
    phase,
    paused: false,
    since,
    stable: 'v1',
    running: phase === 'stable' ? 'v1' : 'v2',
    release:
      phase === 'guarding'
        ? { version: 'v2', previous: 'v1', startedAt: since, deployedBy: 'deploy-bot', source: 'detected', windowEndsAt: new Date(now.getTime() + 535_000).toISOString() }
        : null,
    rollback: null,
    wouldRollBack: null,
    pendingRollback: null,
    failure: null,
    rules: [
      { rule: 'health', outcome: 'pass', observed: 0, threshold: 3, unit: 'failures', message: 'health: 0 consecutive failures < 3' },
      phase === 'guarding'
        ? { rule: 'error_rate', outcome: 'inconclusive', observed: null, threshold: 0.05, unit: 'ratio', message: 'error_rate: 4 samples < 20 needed' }
        : { rule: 'error_rate', outcome: 'pass', observed: 0, threshold: 0.05, unit: 'ratio', message: 'error_rate: 0% (0/40) <= 5%' },
    ],
    lastRollback: null,
    now: now.toISOString(),
  };
}

function run(program: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((done) => {
    execFile(program, args, { cwd: root, env, timeout: 30_000 }, (error, stdout, stderr) => {
      done({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : -1, stdout, stderr });
    });
  });
}

describe('release-guard status', () => {
  let server: ApiServer;
  let current: 'stable' | 'guarding' = 'stable';
  let requests = 0;
  let tmux: string;
  let dir: string;
  let socket: string;

  beforeAll(async () => {
    // Only status() matters here; the rest of GuardControl answers something harmless.
    const control = {
      status: () => {
        requests++;
        return viewFor(current);
      },
      history: async (): Promise<HistoryView> => ({ service: 'web', deployments: [], candidates: [], previousStable: null, rollbacks: [] }),
      preflight: async () => ({ ready: true, from: null, to: null, problems: [], steps: [], checkedAt: new Date().toISOString() }),
      metrics: async () => ({ contentType: 'text/plain', body: '' }),
      control: async () => ({ ok: false as const, error: 'read-only fake' }),
    };
    // Cast: GuardControl grows as the daemon does (drill, preflight, …); this fake needs none of it.
    server = await startApiServer({ host: '127.0.0.1', port: 0, token: null, control: control as unknown as GuardControl });
    tmux = (await ensureDebianPackage('tmux', 'tmux')).path;
    dir = await mkdtemp(join(tmpdir(), 'rg-tmux-'));
    // A private tmux server: never the user's sessions, and kill-server ends only ours.
    socket = join(dir, 'tmux.sock');
  }, 600_000);

  afterAll(async () => {
    if (socket) await run(tmux, ['-S', socket, 'kill-server']);
    await server?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('--json prints the daemon\'s view as it is', async () => {
    current = 'stable';
    const { code, stdout, stderr } = await run(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'status', '--json', '--url', server.url]);
    expect(code, stderr).toBe(0);
    const view = JSON.parse(stdout) as StatusView;
    expect(view).toMatchObject({ service: 'web', phase: 'stable', running: 'v1', stable: 'v1', release: null });
    expect(view.rules.map((r) => r.rule)).toEqual(['health', 'error_rate']);
  });

  it('--watch redraws in place on a terminal, shows the change, and stops on Ctrl-C with exit 0', async () => {
    current = 'stable';
    const command = `node --import tsx src/cli/main.ts status --watch --url ${server.url} --interval 500ms; echo "watch exited with $?"; sleep 60`;
    const started = await run(tmux, ['-S', socket, 'new-session', '-d', '-s', 'watch', '-x', '110', '-y', '40', '-c', root, 'bash', '-c', command]);
    expect(started.code, started.stderr).toBe(0);
    const screen = async () => (await run(tmux, ['-S', socket, 'capture-pane', '-p', '-t', 'watch'])).stdout;

    const first = await waitFor(async () => {
      const text = await screen();
      return /web: stable for/.test(text) && text;
    }, 20_000);
    expect(first).toMatch(/running\s+v1/);
    expect(first).toMatch(/✔\s+health/);
    expect(first).toContain('Ctrl-C to stop');

    current = 'guarding';
    const changed = await waitFor(async () => {
      const text = await screen();
      return /web: guarding for/.test(text) && text;
    }, 10_000);
    expect(changed).toMatch(/release\s+v2 \(from v1\), detected by deploy-bot/);
    expect(changed).toMatch(/window ends in 8m\d\ds/);
    expect(changed).toMatch(/\?\s+error_rate\s+inconclusive/);
    // Redrawn in place: one frame on the screen, not a scroll of them.
    expect(changed.match(/web: (stable|guarding) for/g)).toHaveLength(1);
    expect(changed).not.toContain('web: stable');
    const before = requests;
    await new Promise((r) => setTimeout(r, 1200));
    expect(requests - before).toBeGreaterThanOrEqual(2); // still refreshing every 500 ms

    await run(tmux, ['-S', socket, 'send-keys', '-t', 'watch', 'C-c']);
    const end = await waitFor(async () => {
      const text = await screen();
      return /watch exited with \d+/.test(text) && text;
    }, 10_000);
    expect(end).toContain('watch exited with 0');
    await run(tmux, ['-S', socket, 'kill-session', '-t', 'watch']);
  });

  it('--watch --json on a pipe prints one JSON view per refresh and exits 0 on SIGINT', async () => {
    current = 'stable';
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'status', '--watch', '--json', '--interval', '300ms', '--url', server.url], {
      cwd: root,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const exited = new Promise<number | null>((resolveExit) => child.once('exit', (code) => resolveExit(code)));
    try {
      await waitFor(() => stdout.split('\n').filter(Boolean).length >= 1, 20_000);
      current = 'guarding';
      await waitFor(() => stdout.includes('"phase":"guarding"'), 10_000);
      child.kill('SIGINT');
      expect(await exited, stderr).toBe(0);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
    const views = stdout.split('\n').filter(Boolean).map((line) => JSON.parse(line) as StatusView);
    expect(views.length).toBeGreaterThanOrEqual(2);
    expect(views[0]!.phase).toBe('stable');
    expect(views.at(-1)!.phase).toBe('guarding');
  });

  it('--interval must be a duration', async () => {
    const { code, stderr } = await run(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'status', '--watch', '--interval', 'soon', '--url', server.url]);
    expect(code).toBe(2);
    expect(stderr).toContain('--interval "soon" is not a duration');
  });
});
