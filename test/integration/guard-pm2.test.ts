/**
 * End to end against a real pm2 and real app processes: the guard notices a release by itself,
 * rolls a bad one back with the releases strategy, proves the old version answers, promotes a
 * good one, and survives SIGKILL in the middle of a rollback without rolling back twice.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { parseConfigText } from '../../src/config/load.js';
import type { GuardState } from '../../src/core/types.js';
import { createLogger } from '../../src/log.js';
import { startDaemon, type RunningDaemon } from '../../src/shell/daemon.js';
import { main } from '../../src/cli/main.js';
import { PROJECT_ROOT } from '../fixtures/demo-app/releases.js';
import { ensureDebianPackage } from '../helpers/apt.js';
import { startAlertmanager } from '../helpers/prometheus.js';
import { decodePng } from '../helpers/png.js';
import { buildRelease, createPm2Sandbox, freePort, getJson, pointCurrent, waitFor, type Pm2Sandbox } from '../helpers/pm2-sandbox.js';

const APP = 'web';
const TOKEN = 'test-token-0123456789';

interface Setup {
  sandbox: Pm2Sandbox;
  stateDir: string;
  appPort: number;
  guardPort: number;
  yaml: string;
  logs: string[];
}

async function setup(
  options: { window?: string; instances?: number; environment?: string; v1?: Record<string, unknown>; extra?: (appPort: number) => Record<string, unknown> } = {},
): Promise<Setup> {
  const sandbox = await createPm2Sandbox();
  const stateDir = await mkdtemp(join(tmpdir(), 'rg-state-'));
  const appPort = await freePort();
  const guardPort = await freePort();
  await buildRelease(sandbox.dir, 'v1', options.v1 ?? {});
  await pointCurrent(sandbox.dir, 'v1');
  await sandbox.client.start({
    name: APP,
    script: join(sandbox.dir, 'current', 'server.cjs'),
    execMode: 'cluster',
    instances: options.instances ?? 2,
    env: { PORT: String(appPort) },
  });
  await waitFor(async () => (await getJson(`http://127.0.0.1:${appPort}/health`).catch(() => null))?.status === 200, 15_000);
  process.env.RG_TEST_TOKEN = TOKEN;
  const yaml = stringify({
    service: APP,
    environment: options.environment ?? 'production',
    state_dir: stateDir,
    server: { host: '127.0.0.1', port: guardPort, token_env: 'RG_TEST_TOKEN' },
    log: { level: 'debug', format: 'json' },
    pm2: { home: sandbox.home, app: APP },
    probes: [{ name: 'health', type: 'http', url: `http://127.0.0.1:${appPort}/health`, timeout: '1s', version_path: 'version' }],
    schedule: { interval: '300ms', fast_interval: '100ms', fast_for: '1m' },
    release: { version_probe: 'health', window: options.window ?? '30s', initial_delay: '2s', settle: '1m' },
    rules: { health: { probe: 'health', consecutive: 3 } },
    rollback: { steps: [{ type: 'releases', dir: sandbox.dir, pm2_app: APP, restart_mode: 'reload', timeout: '30s' }] },
    verification: { probe: 'health', passes: 3, timeout: '20s' },
    ...options.extra?.(appPort),
  });
  cleanups.push(() => sandbox.cleanup(), () => rm(stateDir, { recursive: true, force: true }));
  return { sandbox, stateDir, appPort, guardPort, yaml, logs: [] };
}

/** A sandboxed app on v1 and an in-process guard that already knows v1 as stable. */
async function guarded(options: Parameters<typeof setup>[0] = {}): Promise<{ s: Setup; daemon: RunningDaemon }> {
  const s = await setup(options);
  const daemon = await inProcess(s);
  cleanups.push(() => daemon.stop());
  await waitFor(() => daemon.guard.current.stable === 'v1', 10_000);
  return { s, daemon };
}

/** A local webhook target (RG_TEST_HOOK) that keeps every JSON notification it receives. */
async function webhookReceiver(): Promise<{ kind: string; severity: string; message: string }[]> {
  const http = await import('node:http');
  const received: { kind: string; severity: string; message: string }[] = [];
  const hook = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      received.push(JSON.parse(body) as { kind: string; severity: string; message: string });
      res.end('ok');
    });
  });
  const hookPort = await freePort();
  await new Promise<void>((resolve) => hook.listen(hookPort, '127.0.0.1', resolve));
  cleanups.push(() => new Promise((resolve) => hook.close(resolve)));
  process.env.RG_TEST_HOOK = `http://127.0.0.1:${hookPort}/hook`;
  return received;
}

function inProcess(s: Setup): Promise<RunningDaemon> {
  const stream = new PassThrough();
  stream.on('data', (chunk: Buffer) => s.logs.push(...chunk.toString().trim().split('\n')));
  return startDaemon(parseConfigText(s.yaml, 'test'), { log: createLogger({ level: 'debug', format: 'json', stream }), pm2: s.sandbox.client });
}

async function deploy(s: Setup, version: string, manifest: Parameters<typeof buildRelease>[2] = {}) {
  await buildRelease(s.sandbox.dir, version, manifest);
  await pointCurrent(s.sandbox.dir, version);
  await s.sandbox.client.reload(APP);
}

const version = async (s: Setup) => ((await getJson(`http://127.0.0.1:${s.appPort}/health`)).body as { version: string }).version;

let cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
  cleanups = [];
});

describe('guarding a pm2 app', () => {
  it('rolls a bad release (5xx) back automatically, verifies v1, records and exports it', async () => {
    const { s, daemon } = await guarded();

    await deploy(s, 'v2', { fault: '5xx', faultAfterMs: 1500 });
    await waitFor(() => daemon.guard.current.phase === 'rolled_back', 30_000);

    const state = daemon.guard.current;
    expect(state).toMatchObject({ running: 'v1', stable: 'v1', rollback: { from: 'v2', to: 'v1', breach: { trigger: 'rule', rules: ['health'] } } });
    expect(await version(s)).toBe('v1');
    expect(state.history.map((h) => [h.version, h.status])).toEqual([['v1', 'success'], ['v2', 'rolled_back']]);

    // The record is an effect of the transition to rolled_back: it lands just after the state does.
    const records = await waitFor(async () => {
      // Each file is written to a temporary name and renamed: wait for the three final names.
      const names = (await readdir(join(s.stateDir, 'rollbacks'))).filter((n) => /\.(json|md|svg)$/.test(n)).sort();
      return names.length === 3 ? names : null;
    }, 5000);
    const md = await readFile(join(s.stateDir, 'rollbacks', records.find((r) => r.endsWith('.md'))!), 'utf8');
    expect(md).toContain('# Rollback: web v2 → v1');
    expect(md).toMatch(/health: \d+ consecutive failures >= 3 over [\d.]+s/);

    // The record's picture of the window renders with a real SVG renderer and marks the events.
    const svgName = records.find((r) => r.endsWith('.svg'))!;
    expect(md).toContain(`![release window timeline](${svgName})`);
    const svg = await readFile(join(s.stateDir, 'rollbacks', svgName), 'utf8');
    for (const label of ['release v2', 'breach: health', 'rolled back to v1', 'verified']) expect(svg).toContain(label);
    const rsvg = (await ensureDebianPackage('rsvg-convert', 'librsvg2-bin')).path;
    const png = join(s.stateDir, 'timeline.png');
    await new Promise<void>((resolve, reject) =>
      execFile(rsvg, ['-f', 'png', '-o', png, join(s.stateDir, 'rollbacks', svgName)], (error) => (error ? reject(error) : resolve())),
    );
    const image = decodePng(await readFile(png));
    expect(image.width).toBe(900);
    expect(new Set(Array.from({ length: 200 }, (_, i) => image.pixels.readUInt32BE(((i * 7919) % (image.width * image.height)) * 4))).size).toBeGreaterThan(2);

    const metrics = await (await fetch(`${daemon.url}/metrics`)).text();
    expect(metrics).toMatch(/release_guard_rollbacks_total\{trigger="rule",outcome="rolled_back"\} 1/);
    expect(metrics).toMatch(/release_guard_state\{state="rolled_back"\} 1/);
    expect(metrics).toMatch(/release_guard_detection_seconds_count 1/);
    expect(metrics).toMatch(/release_guard_rollback_step_seconds\{step="1-releases",outcome="ok"\} \d/);

    // The control API refuses a request without the token and the state does not change.
    const refused = await fetch(`${daemon.url}/rollback`, { method: 'POST', body: JSON.stringify({ reason: 'x' }), headers: { 'content-type': 'application/json' } });
    expect(refused.status).toBe(401);
    expect(daemon.guard.current.phase).toBe('rolled_back');
    expect(s.logs.join('\n')).not.toContain(TOKEN);

    // Drills refuse a target marked production (the default) unless allowed.
    const drill = await fetch(`${daemon.url}/drill`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' }, body: '{}' });
    expect(drill.status).toBe(409);
    expect(((await drill.json()) as { error: string }).error).toMatch(/refuse a target marked environment: production/);
  });

  it('promotes a good release when its window ends clean', async () => {
    const { s, daemon } = await guarded({ window: '4s' });
    await deploy(s, 'v2');
    await waitFor(() => daemon.guard.current.phase === 'guarding', 10_000);
    await waitFor(() => daemon.guard.current.phase === 'promoted', 15_000);
    expect(daemon.guard.current).toMatchObject({ stable: 'v2', running: 'v2' });
    expect(await version(s)).toBe('v2');
    expect(daemon.guard.current.history.at(-1)).toMatchObject({ version: 'v2', status: 'success' });
  });

  it('preflight: reports at once when the previous release is gone and cannot be rolled back to', async () => {
    const { s, daemon } = await guarded({ window: '1m' });
    await deploy(s, 'v2');
    await waitFor(() => daemon.guard.current.phase === 'guarding', 10_000);
    const ready = (await (await fetch(`${daemon.url}/preflight`)).json()) as { ready: boolean; from: string; to: string };
    expect(ready).toMatchObject({ ready: true, from: 'v2', to: 'v1' });

    await rm(join(s.sandbox.dir, 'releases', 'v1'), { recursive: true });
    const view = await daemon.guard.preflight();
    expect(view.ready).toBe(false);
    expect(view.steps[0]!.problems.join(' ')).toMatch(/v1/);
    const metrics = await (await fetch(`${daemon.url}/metrics`)).text();
    expect(metrics).toMatch(/release_guard_rollback_ready 0/);
  });

  it('drills a rollback on a staging target: back to v1 and forward to v2, timed, recorded and announced as passed', async () => {
    const received = await webhookReceiver();
    const { s, daemon } = await guarded({ window: '3s', environment: 'staging', extra: () => ({ notifiers: [{ type: 'webhook', name: 'ops', url_env: 'RG_TEST_HOOK', format: 'json' }] }) });
    await deploy(s, 'v2');
    await waitFor(() => daemon.guard.current.phase === 'promoted', 20_000);

    const response = await fetch(`${daemon.url}/drill`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' }, body: '{"by":"test"}' });
    expect(response.status).toBe(200);
    const record = (await response.json()) as { ok: boolean; legs: { from: string; to: string; ok: boolean; totalMs: number }[] };
    expect(record.ok).toBe(true);
    expect(record.legs.map((l) => [l.from, l.to, l.ok])).toEqual([['v2', 'v1', true], ['v1', 'v2', true]]);
    expect(await version(s)).toBe('v2');
    // The drill moved versions on purpose: no release window, no rollback, v2 still the stable one.
    expect(daemon.guard.current).toMatchObject({ phase: 'promoted', stable: 'v2', running: 'v2', drill: null, autoRollbacks: [] });
    expect((await readdir(join(s.stateDir, 'drills'))).filter((n) => n.endsWith('.md'))).toHaveLength(1);
    expect(await (await fetch(`${daemon.url}/metrics`)).text()).toMatch(/release_guard_drill_duration_seconds\{leg="roll_forward"\} \d/);
    // A passing drill is news, not an alarm: one info "passed", never a critical "FAILED".
    await waitFor(() => received.filter((e) => e.kind === 'drill').length === 2, 10_000);
    expect(received.filter((e) => e.kind === 'drill').map((e) => [e.severity, /passed$/.test(e.message)])).toEqual([['info', false], ['info', true]]);
  });

  it('a bad verification (the protected endpoint answers without a token) ends in failed; the webhook hears every step', async () => {
    const received = await webhookReceiver();

    // v1 itself has the security regression: the rollback to it must not be called a success.
    const { s, daemon } = await guarded({
      v1: { adminOpen: true },
      extra: (appPort) => ({
        verification: {
          probe: 'health',
          passes: 3,
          timeout: '20s',
          checks: [
            { type: 'http', name: 'core-api', url: `http://127.0.0.1:${appPort}/api/items`, max_latency: '500ms' },
            { type: 'security', name: 'admin-auth', url: `http://127.0.0.1:${appPort}/admin` },
          ],
        },
        notifiers: [{ type: 'webhook', name: 'ops', url_env: 'RG_TEST_HOOK', format: 'json' }],
      }),
    });
    await deploy(s, 'v2', { fault: '5xx', faultAfterMs: 1000 });
    await waitFor(() => daemon.guard.current.phase === 'failed', 30_000);
    expect(daemon.guard.current.failure).toMatch(/verification failed: admin-auth: .*without authorization -> 200, expected 401 or 403/);
    const record = daemon.guard.current.rollback!;
    expect(record.suite?.results?.map((r) => [r.name, r.ok])).toEqual([['core-api', true], ['admin-auth', false]]);
    await waitFor(() => received.some((e) => e.kind === 'rollback_failed'), 10_000);
    expect(received.map((e) => e.kind)).toEqual(expect.arrayContaining(['release_detected', 'rollback_started', 'rollback_failed']));
    expect(received.find((e) => e.kind === 'rollback_failed')!.severity).toBe('critical');
  });

  it('a failing step stops the plan: later steps never run, the machine fails, the record names the step and why', async () => {
    const { s, daemon } = await guarded({
      extra: () => ({
        rollback: {
          steps: [
            { type: 'command', command: [process.execPath, '-e', 'console.error("cache purge refused: 403 from CDN"); process.exit(3)'], timeout: '10s' },
            { type: 'releases', dir: '/nonexistent', pm2_app: APP },
          ],
        },
      }),
    });
    await deploy(s, 'v2', { fault: '5xx', faultAfterMs: 1000 });
    await waitFor(() => daemon.guard.current.phase === 'failed', 30_000);
    const state = daemon.guard.current;
    expect(state.failure).toMatch(/step 1 \(command\) failed: .*exited with code 3.*cache purge refused: 403 from CDN/);
    expect(state.rollback!.steps.map((st) => [st.index, st.ok])).toEqual([[0, false]]);
    const md = await waitFor(async () => {
      const name = (await readdir(join(s.stateDir, 'rollbacks'))).find((n) => n.endsWith('.md'));
      return name ? readFile(join(s.stateDir, 'rollbacks', name), 'utf8') : null;
    }, 5000);
    expect(md).toContain('# Failed rollback: web v2 → v1');
    expect(md).toMatch(/\| 1 \| command: .* \| failed: .*cache purge refused: 403 from CDN/);
    expect(md).not.toMatch(/\| 2 \| releases/);
    // Automation is frozen until a human resumes it; v2 still runs.
    expect(await version(s)).toBe('v2');
  });

  it('a hang early in a window: checks give up after fast_timeout (10 × v1 p99, at least 500 ms), not the 5 s timeout', async () => {
    const { s, daemon } = await guarded({
      extra: (appPort) => ({
        probes: [{ name: 'health', type: 'http', url: `http://127.0.0.1:${appPort}/health`, timeout: '5s', version_path: 'version' }],
      }),
    });
    const learnt = await waitFor(() => s.logs.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.message === 'stable check latency learnt'), 20_000);
    expect(learnt).toMatchObject({ probe: 'health', version: 'v1' });
    const fastTimeoutMs = learnt.fastTimeoutMs as number;
    expect(fastTimeoutMs).toBeGreaterThanOrEqual(500);
    expect(fastTimeoutMs).toBeLessThan(5000);

    await deploy(s, 'v2', { fault: 'hang', faultAfterMs: 1500 });
    await waitFor(() => daemon.guard.current.phase === 'rolled_back', 30_000);
    expect(daemon.guard.current.rollback?.breach).toMatchObject({ trigger: 'rule', rules: ['health'] });
    expect(await version(s)).toBe('v1');
    // Every failed check of the hang gave up at the fast timeout; none waited out the probe's 5 s.
    // (Up to the decision: the reload then resets the hung worker's connections.)
    const lines = s.logs.map((l) => JSON.parse(l) as Record<string, unknown>);
    const decided = lines.findIndex((l) => String(l.message).startsWith('state guarding -> '));
    expect(decided).toBeGreaterThan(0);
    const failures = lines
      .slice(0, decided)
      .filter((l) => l.message === 'probe failed')
      .map((l) => l.error);
    expect(failures.length).toBeGreaterThanOrEqual(3);
    expect(new Set(failures)).toEqual(new Set([`timeout after ${fastTimeoutMs}ms`]));
  });

  it('sees a crash of the new version on the pm2 bus and rolls back at once', async () => {
    const { s, daemon } = await guarded();
    await deploy(s, 'v2', { fault: 'crash', faultAfterMs: 1500 });
    await waitFor(() => daemon.guard.current.phase === 'rolled_back', 30_000);
    expect(daemon.guard.current.rollback?.breach.trigger).toBe('crash');
    expect(await version(s)).toBe('v1');
  });

  it('killed with SIGKILL mid-rollback and restarted, finishes the rollback exactly once', async () => {
    const s = await setup();
    const configFile = join(s.stateDir, 'config.yaml');
    await writeFile(configFile, s.yaml);
    const spawnGuard = (): ChildProcess => {
      const child = spawn(process.execPath, ['--import', 'tsx', join(PROJECT_ROOT, 'src/cli/main.ts'), 'start', '--config', configFile], {
        cwd: PROJECT_ROOT,
        env: { ...process.env, RG_TEST_TOKEN: TOKEN },
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      child.stderr!.on('data', (chunk: Buffer) => s.logs.push(chunk.toString()));
      cleanups.push(async () => {
        if (child.exitCode === null) child.kill('SIGKILL');
      });
      return child;
    };
    const readState = async (): Promise<GuardState | null> => {
      try {
        return JSON.parse(await readFile(join(s.stateDir, 'state.json'), 'utf8')) as GuardState;
      } catch {
        return null;
      }
    };

    const first = spawnGuard();
    await waitFor(async () => (await readState())?.stable === 'v1', 20_000);
    await deploy(s, 'v2', { fault: '5xx', faultAfterMs: 1000 });
    // Kill the moment the rollback decision is on disk: the plan is running or about to.
    await waitFor(async () => (await readState())?.phase === 'rolling_back', 30_000, 5);
    first.kill('SIGKILL');
    await new Promise((resolve) => first.once('exit', resolve));
    expect((await readState())?.phase).toBe('rolling_back');

    const second = spawnGuard();
    await waitFor(async () => (await readState())?.phase === 'rolled_back', 30_000);
    const state = (await readState())!;
    expect(state.running).toBe('v1');
    expect(state.rollback?.attempt).toBe(2); // resumed, not started again
    expect(state.autoRollbacks.filter((r) => r.version === 'v2')).toHaveLength(1);
    expect(state.history.filter((h) => h.version === 'v2')).toEqual([expect.objectContaining({ status: 'rolled_back' })]);
    expect(await version(s)).toBe('v1');
    // The record is written as a set (temp files renamed, the JSON last): wait for the set, then
    // check there is one record, not two.
    const written = await waitFor(async () => {
      const names = await readdir(join(s.stateDir, 'rollbacks'));
      return ['.json', '.md', '.svg'].every((ext) => names.some((n) => n.endsWith(ext))) && !names.some((n) => n.endsWith('.tmp')) ? names : null;
    }, 5000);
    expect(written.filter((n) => n.endsWith('.json'))).toHaveLength(1);

    second.kill('SIGTERM');
    const code = await new Promise((resolve) => second.once('exit', resolve));
    expect(code, s.logs.join('').slice(-3000)).toBe(0);
  });
});

describe('release --wait gates a deploy on the window (a real daemon, the CLI in process)', () => {
  /** Runs `release-guard release <version> --wait` against the daemon; its exit code and output. */
  async function releaseWait(daemon: RunningDaemon, v: string): Promise<{ code: number; out: string; err: string }> {
    let out = '';
    let err = '';
    const code = await main(['release', v, '--wait', '--timeout', '60s', '--url', daemon.url], {
      env: { RELEASE_GUARD_TOKEN: TOKEN },
      out: (text) => void (out += text),
      err: (text) => void (err += text),
      color: false,
    });
    return { code, out, err };
  }

  it('exits 0 when the release is promoted', async () => {
    const { s, daemon } = await guarded({ window: '3s' });
    await deploy(s, 'v2');
    const result = await releaseWait(daemon, 'v2');
    expect(result, result.err).toMatchObject({ code: 0, out: 'v2 promoted\n' });
    expect(result.err).toMatch(/guarding v2/);
  });

  it('exits 1 when the release is rolled back', async () => {
    const { s, daemon } = await guarded();
    await deploy(s, 'v2', { fault: '5xx', faultAfterMs: 1500 });
    const result = await releaseWait(daemon, 'v2');
    expect(result, result.err).toMatchObject({ code: 1 });
    expect(result.out).toMatch(/^v2 was rolled back to v1 \(record \S+\)\n$/);
  });

  it('exits 3 when the rollback fails', async () => {
    const { s, daemon } = await guarded({
      v1: { adminOpen: true },
      extra: (appPort) => ({
        verification: { probe: 'health', passes: 3, timeout: '20s', checks: [{ type: 'security', name: 'admin-auth', url: `http://127.0.0.1:${appPort}/admin` }] },
      }),
    });
    await deploy(s, 'v2', { fault: '5xx', faultAfterMs: 1000 });
    const result = await releaseWait(daemon, 'v2');
    expect(result, result.err).toMatchObject({ code: 3 });
    expect(result.out).toMatch(/the rollback of v2 FAILED: verification failed: admin-auth/);
  });
});

describe('Alertmanager as an input (a real Alertmanager sending its webhook to the daemon)', () => {
  it('an alert that fires inside the window rolls the release back; the record names the alert', async () => {
    const { s, daemon } = await guarded({ extra: () => ({ triggers: { alertmanager: { match: { service: 'web' }, match_re: { severity: 'critical|page' } } } }) });
    const alertmanager = await startAlertmanager({ webhook: `${daemon.url}/alertmanager`, token: TOKEN });
    cleanups.push(() => alertmanager.stop());
    await deploy(s, 'v2'); // a healthy v2: only the alert can roll it back
    await waitFor(() => daemon.guard.current.phase === 'guarding', 10_000);

    const fire = (labels: Record<string, string>) =>
      fetch(`${alertmanager.url}/api/v2/alerts`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify([{ labels, startsAt: new Date().toISOString() }]) });
    // Another service's alert, and a warning of this one: not matched, nothing happens.
    expect((await fire({ alertname: 'HighErrorRate', service: 'api', severity: 'critical' })).status).toBe(200);
    expect((await fire({ alertname: 'SlowDisk', service: 'web', severity: 'warning' })).status).toBe(200);
    await new Promise((resolve) => setTimeout(resolve, 2500));
    expect(daemon.guard.current.phase).toBe('guarding');

    expect((await fire({ alertname: 'HighErrorRate', service: 'web', severity: 'critical' })).status).toBe(200);
    await waitFor(() => daemon.guard.current.phase === 'rolled_back', 30_000);
    expect(await version(s)).toBe('v1');
    const breach = daemon.guard.current.rollback!.breach;
    expect(breach).toMatchObject({ trigger: 'alert', rules: ['alert'], reason: 'alert: HighErrorRate{service="web",severity="critical"} firing (Alertmanager)' });
    const name = await waitFor(async () => (await readdir(join(s.stateDir, 'rollbacks'))).find((n) => n.endsWith('.md')), 10_000);
    const markdown = await readFile(join(s.stateDir, 'rollbacks', name), 'utf8');
    expect(markdown).toContain('HighErrorRate{service="web",severity="critical"}');
  });
});
