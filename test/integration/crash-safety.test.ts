/**
 * Fault injection: the guard is killed with SIGKILL at each step of a multi-step rollback in turn
 * (and once during verification), restarted, and must finish the same rollback: exactly one
 * rollback, one complete record, the right final state, and no step run more often than the
 * crash forces (the interrupted step runs again; steps before it never do).
 *
 * The plan: three `command` steps, each appending "<step> start" / "<step> end" to a journal around
 * a short sleep, then a `releases` step that really moves a pm2 app back to v1. The guard runs as
 * its CLI (`node --import tsx src/cli/main.ts start`), as it does in production.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import type { GuardState, RollbackRecord } from '../../src/core/types.js';
import { PROJECT_ROOT } from '../fixtures/demo-app/releases.js';
import { buildRelease, createPm2Sandbox, freePort, getJson, pointCurrent, waitFor, type Pm2Sandbox } from '../helpers/pm2-sandbox.js';

const APP = 'web';
const COMMAND_STEPS = ['alpha', 'bravo', 'charlie'];
/** How long each command step sleeps between its start and end lines. */
const STEP_SLEEP_S = 0.35;

let sandbox: Pm2Sandbox;
let appPort: number;
const children = new Set<ChildProcess>();

beforeAll(async () => {
  sandbox = await createPm2Sandbox();
  appPort = await freePort();
  await buildRelease(sandbox.dir, 'v1');
  // v2 answers 5xx half a second after it starts (and still reports its version).
  await buildRelease(sandbox.dir, 'v2', { fault: '5xx', faultAfterMs: 500 });
  await pointCurrent(sandbox.dir, 'v1');
  await sandbox.client.start({ name: APP, script: join(sandbox.dir, 'current', 'server.cjs'), execMode: 'cluster', instances: 1, env: { PORT: String(appPort) } });
  await waitFor(async () => (await appVersion()) === 'v1', 15_000);
});

afterAll(async () => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  await sandbox?.cleanup();
});

async function appVersion(): Promise<string | null> {
  const { body } = await getJson(`http://127.0.0.1:${appPort}/health`).catch(() => ({ body: null }));
  return (body as { version?: string } | null)?.version ?? null;
}

interface Run {
  stateDir: string;
  journal: string;
  configFile: string;
  /** stderr of every guard process of this run, in order. */
  logs: string[];
}

async function prepare(name: string): Promise<Run> {
  const stateDir = await mkdtemp(join(tmpdir(), `rg-crash-${name}-`));
  const journal = join(stateDir, 'journal.log');
  await writeFile(journal, '');
  const script = `echo "$0 start {from}->{to}" >> "$1"; sleep ${STEP_SLEEP_S}; echo "$0 end {from}->{to}" >> "$1"`;
  const config = {
    service: APP,
    state_dir: stateDir,
    server: { host: '127.0.0.1', port: 0 },
    log: { level: 'debug', format: 'json' },
    pm2: { home: sandbox.home, app: APP },
    probes: [{ name: 'health', type: 'http', url: `http://127.0.0.1:${appPort}/health`, timeout: '1s', version_path: 'version' }],
    schedule: { interval: '200ms', fast_interval: '100ms', fast_for: '1m' },
    release: { version_probe: 'health', window: '1m', initial_delay: '2s', settle: '5m' },
    rules: { health: { probe: 'health', consecutive: 3 } },
    rollback: {
      steps: [
        ...COMMAND_STEPS.map((step) => ({ type: 'command', command: ['/bin/sh', '-c', script, step, journal], timeout: '10s' })),
        { type: 'releases', dir: sandbox.dir, pm2_app: APP, restart_mode: 'reload', timeout: '30s' },
      ],
    },
    verification: { probe: 'health', passes: 5, timeout: '30s' },
  };
  const configFile = join(stateDir, 'config.yaml');
  await writeFile(configFile, stringify(config));
  return { stateDir, journal, configFile, logs: [] };
}

function startGuard(run: Run): ChildProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', join(PROJECT_ROOT, 'src/cli/main.ts'), 'start', '--config', run.configFile], {
    cwd: PROJECT_ROOT,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const index = run.logs.push('') - 1;
  child.stderr!.on('data', (chunk: Buffer) => (run.logs[index] += chunk.toString()));
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

async function readState(run: Run): Promise<GuardState | null> {
  try {
    return JSON.parse(await readFile(join(run.stateDir, 'state.json'), 'utf8')) as GuardState;
  } catch {
    return null;
  }
}

async function kill(child: ChildProcess, signal: NodeJS.Signals): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  child.kill(signal);
  return exited;
}

/** Journal lines per step: how often it started and ended. */
async function journalCounts(run: Run): Promise<Record<string, { start: number; end: number }>> {
  const lines = (await readFile(run.journal, 'utf8')).split('\n').filter(Boolean);
  const counts: Record<string, { start: number; end: number }> = Object.fromEntries(COMMAND_STEPS.map((s) => [s, { start: 0, end: 0 }]));
  for (const line of lines) {
    const [step, what, versions] = line.split(' ');
    expect(versions, line).toBe('v2->v1');
    counts[step!]![what as 'start' | 'end']++;
  }
  return counts;
}

/**
 * One fault-injection run: guard up, v1 stable, v2 deployed and failing, the guard killed when
 * `killWhen` holds, restarted, and the rollback finished. Returns the final state and record.
 */
async function crashAndRecover(name: string, killWhen: (state: GuardState) => boolean, afterwards?: (run: Run, record: RollbackRecord) => Promise<void>) {
  const run = await prepare(name);
  try {
    const first = startGuard(run);
    await waitFor(async () => (await readState(run))?.stable === 'v1', 20_000, 50);
    await pointCurrent(sandbox.dir, 'v2');
    await sandbox.client.reload(APP);
    // Poll fast: the kill must land while the chosen step (or verification) is running.
    const atKill = await waitFor(async () => {
      const state = await readState(run);
      return state && killWhen(state) ? state : null;
    }, 30_000, 5);
    expect(await kill(first, 'SIGKILL')).toBeNull();
    // What the dead guard left on disk is exactly what it was killed in.
    const onDisk = (await readState(run))!;
    expect(onDisk.phase).toBe(atKill.phase);

    const second = startGuard(run);
    const final = await waitFor(async () => {
      const state = await readState(run);
      return state?.phase === 'rolled_back' ? state : null;
    }, 40_000, 50);
    // The record is an effect of entering rolled_back: it is logged once its files are in place.
    await waitFor(() => run.logs.join('').includes('"rollback record written"'), 10_000, 50);
    const records = (await readdir(join(run.stateDir, 'rollbacks'))).sort();
    // Let a late duplicate show itself, if there were one; then stop the guard the polite way.
    await new Promise((r) => setTimeout(r, 300));
    expect(await kill(second, 'SIGTERM')).toBe(0);

    const names = (await readdir(join(run.stateDir, 'rollbacks'))).sort();
    expect(names).toEqual(records);
    expect(names.filter((n) => n.endsWith('.tmp'))).toEqual([]);
    expect(names.filter((n) => n.endsWith('.json'))).toHaveLength(1);
    expect(names.filter((n) => n.endsWith('.md'))).toHaveLength(1);
    const record = JSON.parse(await readFile(join(run.stateDir, 'rollbacks', names.find((n) => n.endsWith('.json'))!), 'utf8')) as RollbackRecord;
    const markdown = await readFile(join(run.stateDir, 'rollbacks', names.find((n) => n.endsWith('.md'))!), 'utf8');
    const written = run.logs.join('').split('\n').filter((line) => line.includes('"rollback record written"'));
    expect(written, 'the record is written once, by the guard that finished the rollback').toHaveLength(1);
    expect(run.logs[0]).not.toContain('"rollback record written"');

    // Exactly one rollback, to v1, and the app really answers v1.
    expect(final).toMatchObject({ phase: 'rolled_back', stable: 'v1', running: 'v1', rollback: { from: 'v2', to: 'v1' } });
    expect(final.autoRollbacks.filter((r) => r.version === 'v2')).toHaveLength(1);
    expect(final.history.filter((h) => h.version === 'v2')).toEqual([expect.objectContaining({ status: 'rolled_back' })]);
    expect(final.history.filter((h) => h.status === 'rolled_back')).toHaveLength(1);
    expect(await appVersion()).toBe('v1');

    // A complete record: every step, each ok.
    expect(record).toMatchObject({ from: 'v2', to: 'v1', outcome: 'rolled_back' });
    expect(record.steps.map((s) => [s.index, s.type, s.ok])).toEqual([[0, 'command', true], [1, 'command', true], [2, 'command', true], [3, 'releases', true]]);
    for (const step of record.steps) expect(step.finishedAt).toBeGreaterThanOrEqual(step.startedAt);
    expect(markdown).toContain('# Rollback: web v2 → v1');
    const journal = await journalCounts(run);
    await afterwards?.(run, record);
    return { run, record, final, atKill, journal };
  } finally {
    for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    // Back to v1 for the next run, whatever happened.
    await pointCurrent(sandbox.dir, 'v1');
    if ((await appVersion()) !== 'v1') await sandbox.client.reload(APP);
    await rm(run.stateDir, { recursive: true, force: true });
  }
}

const stepRunning = (k: number) => (state: GuardState) =>
  state.phase === 'rolling_back' && state.rollback!.steps.some((s) => s.index === k && s.finishedAt === undefined);

describe('crash safety: SIGKILL at each step of a rollback', () => {
  it.each([0, 1, 2, 3])('killed while step %i runs, restarted: the rollback finishes once', async (k) => {
    const { record, final, atKill, journal } = await crashAndRecover(`step${k}`, stepRunning(k));
    // The kill landed in step k, after steps before it finished.
    expect(atKill.rollback!.steps.filter((s) => s.ok === true).map((s) => s.index)).toEqual([...Array(k).keys()]);

    // Resumed (attempt 2), not started again: steps before k kept from attempt 1, k and later re-run in attempt 2.
    expect(record.attempts).toBe(2);
    expect(final.rollback!.attempt).toBe(2);
    expect(record.steps.map((s) => s.attempt)).toEqual([0, 1, 2, 3].map((i) => (i < k ? 1 : 2)));

    COMMAND_STEPS.forEach((step, i) => {
      const { start, end } = journal[step]!;
      if (i < k) expect([start, end], `${step} ran before the crash: exactly once`).toEqual([1, 1]);
      else if (i === k) {
        // Interrupted: run again. The kill may land before the killed guard spawned it (start is
        // persisted first) or while it ran (its orphaned child still finishes): once or twice.
        expect(start, `${step} was interrupted: run again, at most twice`).toBeGreaterThanOrEqual(1);
        expect(start).toBeLessThanOrEqual(2);
        expect(end, `${step}: every run of it completed`).toBe(start);
      } else expect([start, end], `${step} after the crash: exactly once`).toEqual([1, 1]);
    });
  }, 60_000);

  it('killed during verification, restarted: verification starts over, no step runs again', async () => {
    const { record, final, journal } = await crashAndRecover('verify', (state) => state.phase === 'verifying');
    expect(record.attempts).toBe(1);
    expect(final.rollback!.attempt).toBe(1);
    expect(record.steps.map((s) => s.attempt)).toEqual([1, 1, 1, 1]);
    for (const step of COMMAND_STEPS) expect([journal[step]!.start, journal[step]!.end], step).toEqual([1, 1]);
    // Passes seen by the dead guard are not trusted: the new one proved v1 itself.
    expect(record.verification.healthPasses).toBe(5);
  }, 60_000);

  it('killed after rolled_back is persisted but before its record is written: the record is written on restart, once', async () => {
    await crashAndRecover('record', (state) => state.phase === 'verifying', async (run, record) => {
      // The window between persisting rolled_back and writing the record is milliseconds wide:
      // recreate it exactly by removing the record the guard wrote.
      const dir = join(run.stateDir, 'rollbacks');
      for (const name of await readdir(dir)) await rm(join(dir, name));
      const third = startGuard(run);
      await waitFor(() => run.logs[2]!.includes('"rollback record written"'), 20_000, 50);
      expect(run.logs[2]).toContain('the last rollback ended without its record');
      expect(await kill(third, 'SIGTERM')).toBe(0);
      const names = await readdir(dir);
      const rewritten = JSON.parse(await readFile(join(dir, `${record.id}.json`), 'utf8')) as RollbackRecord;
      expect(names).toContain(`${record.id}.md`);
      // The same record: same id, times, steps and verification, rebuilt from the persisted state.
      const { logs: _l1, service: _s1, ...before } = record as RollbackRecord & Record<string, unknown>;
      const { logs: _l2, service: _s2, ...after } = rewritten as RollbackRecord & Record<string, unknown>;
      expect(after).toEqual(before);
      // With the record in place, a further restart writes nothing.
      const fourth = startGuard(run);
      await waitFor(() => run.logs[3]!.includes('release-guard running'), 20_000, 50);
      await new Promise((r) => setTimeout(r, 300));
      expect(await kill(fourth, 'SIGTERM')).toBe(0);
      expect(run.logs[3]).not.toContain('"rollback record written"');
    });
  }, 90_000);
});
