/**
 * The bookkeeping around prepared data, on real files in a temp dir with a manual clock: the
 * stable backups' schedule and retention, which backup a rollback uses when the window's own is
 * late, failed or missing, the preflight warning when no backup predates the release, and the
 * shared directory's start-up check. The steps' `prepare` here writes a file (the database
 * strategy's real prepare is exercised against MariaDB in test/integration/backup-race.test.ts).
 */
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { strategySchema } from '../config/schema.js';
import { initialState } from '../core/transition.js';
import type { Release } from '../core/types.js';
import { newRelease, windowId } from '../core/windows.js';
import { createLogger } from '../log.js';
import { Pm2ApiClient } from '../pm2/pm2-api-client.js';
import { createStrategy } from '../strategies/index.js';
import type { ReleaseContext, RollbackStrategy } from '../strategies/types.js';
import { FakeClock } from '../../test/helpers/guard-fakes.js';
import { readMarker } from './prepare-marker.js';
import { Preparations, releaseBeganAt } from './preparations.js';
import { ProcessRunner } from './process-runner.js';
import { runPlan, stepDataDir, type PlanStep } from './rollback-runner.js';
import { claimSharedDir, standbyProblems } from './shared-dir.js';
import { KEEP_STABLE_BACKUPS, StableBackups } from './stable-backups.js';

/** Time moves only in clock.advance(): a step's timeout passes when the test says so. */
let clock: FakeClock;
const log = createLogger({ level: 'error', format: 'json' });
let dir: string;

beforeEach(async () => {
  clock = new FakeClock(Date.parse('2026-12-07T03:00:00Z'));
  dir = await mkdtemp(join(tmpdir(), 'rg-prep-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/**
 * A database step (its config) whose prepare writes `dump.txt` with the version, or fails when
 * told; `hang` makes it hang until its signal aborts, then fail as a killed mysqldump does.
 */
function step(options: { every?: string; fail?: () => boolean; gate?: () => Promise<void>; hang?: { timeout: string; started(): void } } = {}): PlanStep {
  const config = strategySchema.parse({
    type: 'database',
    user: 'rg',
    password_env: 'X',
    database: 'shop',
    stable_backup_every: options.every ?? '1h',
    ...(options.hang ? { timeout: options.hang.timeout } : {}),
  });
  const strategy: RollbackStrategy = {
    type: 'database',
    describe: () => 'database',
    checkReadiness: async () => [],
    execute: async () => undefined,
    async prepare(ctx: ReleaseContext) {
      await options.gate?.();
      if (options.hang) {
        options.hang.started();
        await new Promise((resolve) => ctx.signal.addEventListener('abort', resolve, { once: true }));
        throw new Error('mysqldump: killed by SIGTERM');
      }
      if (options.fail?.()) throw new Error('mysqldump: Got error: 2013: Lost connection');
      await writeFile(join(ctx.dataDir, 'dump.txt'), ctx.version);
    },
  };
  return { config, strategy };
}

function world(plan: PlanStep[]) {
  const stopping = new AbortController();
  const common = { plan, clock, log, service: 'shop', signal: stopping.signal };
  const stable = new StableBackups({ ...common, stateDir: dir });
  const preparations = new Preparations({ ...common, stable, dataDir: (r, i, t) => stepDataDir(dir, r.id, i, t) });
  return { stable, preparations, stopping };
}

const stableState = (version: string) => ({ ...initialState(clock.now()), stable: version, running: version });
const release = (source: 'manual' | 'detected', startedAt = clock.now()): Release => ({ id: windowId(startedAt, 'v2'), version: 'v2', previous: 'v1', startedAt, deployedBy: 'ci', source });

describe('stable backups', () => {
  it('one when a version becomes stable, again every stable_backup_every, the last 2 kept; none while a window is open', async () => {
    const { stable } = world([step({ every: '1h' })]);
    stable.refresh(stableState('v1'));
    await stable.settled();
    expect((await stable.list(0, 'database')).map((b) => b.version)).toEqual(['v1']);
    // Not due yet: nothing new, even when looked at again later.
    await clock.advance(31 * 60_000);
    stable.refresh(stableState('v1'));
    await stable.settled();
    expect(await stable.list(0, 'database')).toHaveLength(1);
    // Due after an hour; then a new stable version is backed up at once.
    await clock.advance(30 * 60_000);
    stable.refresh(stableState('v1'));
    await stable.settled();
    await clock.advance(1000);
    stable.refresh(stableState('v3'));
    await stable.settled();
    const list = await stable.list(0, 'database');
    expect(list.map((b) => b.version)).toEqual(['v3', 'v1']);
    expect(list).toHaveLength(KEEP_STABLE_BACKUPS);
    expect(await readdir(join(dir, 'stable', '1-database'))).toHaveLength(2);
    expect(await readFile(join(list[0]!.dir, 'dump.txt'), 'utf8')).toBe('v3');
    // A release under guard: never a "stable" backup of what may already be migrated.
    await clock.advance(2 * 3600_000);
    stable.refresh({ ...stableState('v3'), phase: 'guarding', release: newRelease({ version: 'v3', previous: 'v2', startedAt: clock.now(), deployedBy: 'ci', source: 'manual' }) });
    stable.refresh({ ...stableState('v3'), running: 'v4' });
    await stable.settled();
    expect((await stable.list(0, 'database'))[0]!.startedAt).toBe(list[0]!.startedAt);
  });

  it('a failed stable backup leaves no directory behind and keeps the previous one', async () => {
    let failing = false;
    const { stable } = world([step({ every: '1h', fail: () => failing })]);
    await stable.takeDue('v1');
    failing = true;
    await clock.advance(2 * 3600_000);
    await stable.takeDue('v1');
    expect((await stable.list(0, 'database')).map((b) => b.version)).toEqual(['v1']);
    expect(await readdir(join(dir, 'stable', '1-database'))).toHaveLength(1);
  });
});

describe('which backup a rollback restores', () => {
  it('an announced release: its own complete backup', async () => {
    const { preparations } = world([step()]);
    const r = release('manual');
    await preparations.prepareAll(r, r.startedAt);
    const resolved = await preparations.resolve(r, 0, 'database', { waitMs: 0 });
    expect(resolved.problems).toEqual([]);
    expect(resolved.prepared).toMatchObject({ source: 'window', dir: stepDataDir(dir, r.id, 0, 'database') });
  });

  it('a detected release: the newest stable backup taken before it began; none → preflight says no backup predates it', async () => {
    const { preparations, stable } = world([step()]);
    const early = release('detected');
    await preparations.prepareAll(early, early.startedAt);
    const none = await preparations.resolve(early, 0, 'database', { waitMs: 0 });
    expect(none.problems).toEqual([expect.stringMatching(/^no backup predates the running release v2 \(began .*\): this window's backup was taken after the release began \(the release was detected, not announced\), and no stable backup was taken before it$/)]);
    expect(none.prepared?.note).toMatch(/restoring this window's backup although .*: it may undo nothing$/);

    await stable.takeDue('v1');
    const backedUpAt = clock.now();
    await clock.advance(60_000);
    const later = { ...release('detected'), version: 'v3' };
    const now = clock.now();
    await preparations.prepareAll(later, releaseBeganAt(later, [
      { probe: 'h', startedAt: now - 900, at: now - 890, ok: true, values: {}, version: 'v1' },
      { probe: 'h', startedAt: now - 500, at: now - 490, ok: true, values: {}, version: 'v1' },
      { probe: 'h', startedAt: now, at: now + 10, ok: true, values: {}, version: 'v3' },
    ]));
    const resolved = await preparations.resolve(later, 0, 'database', { waitMs: 0 });
    expect(resolved.problems).toEqual([]);
    expect(resolved.prepared).toMatchObject({ source: 'stable', releaseBeganAt: now - 500 });
    expect(resolved.prepared!.note).toBe(`restoring the stable backup of v1 taken ${new Date(backedUpAt).toISOString()}: this window's backup was taken after the release began (the release was detected, not announced)`);
  });

  it("a window's backup that failed, or still runs past the wait: the stable one, and the record says why", async () => {
    let failing = false;
    const { preparations, stable } = world([step({ fail: () => failing })]);
    await stable.takeDue('v1');
    await clock.advance(60_000);
    failing = true;
    const r = release('manual');
    await preparations.prepareAll(r, r.startedAt);
    const failed = await preparations.resolve(r, 0, 'database', { waitMs: 1000 });
    expect(failed.prepared).toMatchObject({ source: 'stable' });
    expect(failed.prepared!.note).toMatch(/: this window's backup failed: mysqldump: Got error: 2013: Lost connection$/);

    // Still running after the wait (the gate never opens).
    let stuck = false;
    const { preparations: slow, stable: stable2 } = world([step({ gate: () => (stuck ? new Promise<void>(() => undefined) : Promise.resolve()) })]);
    await stable2.takeDue('v1');
    stuck = true;
    const progress: string[] = [];
    const r2 = { ...release('manual'), startedAt: clock.now() + 1 };
    void slow.prepareAll(r2, r2.startedAt);
    const waiting = slow.resolve(r2, 0, 'database', { waitMs: 50, progress: (m) => progress.push(m) });
    await clock.advance(50);
    const waited = await waiting;
    expect(waited.prepared).toMatchObject({ source: 'stable' });
    expect(waited.prepared!.note).toMatch(/: this window's backup was still running after 0 s$/);
    expect(progress).toEqual([expect.stringMatching(/^waiting for the pre-release backup \(0 s, 0\.0 MB so far\)$/)]);
  });
});

describe("a step's timeout, on the injected clock", () => {
  /** A world whose one step hangs in prepare; resolves once the prepare has started. */
  function hangingWorld() {
    let started!: () => void;
    const running = new Promise<void>((resolve) => (started = resolve));
    return { ...world([step({ hang: { timeout: '2m', started } })]), running };
  }

  it("a window's prepare that hangs is stopped when its timeout has passed, and its marker says it timed out", async () => {
    const { preparations, running } = hangingWorld();
    const r = release('manual');
    let finished = false;
    const preparing = preparations.prepareAll(r, r.startedAt).then(() => (finished = true));
    await running;
    await clock.advance(120_000 - 1);
    expect(finished).toBe(false);
    await clock.advance(1);
    await preparing;
    const marker = await readMarker(stepDataDir(dir, r.id, 0, 'database'));
    expect(marker).toMatchObject({ state: 'failed', error: 'timed out after 120000ms: mysqldump: killed by SIGTERM' });
    expect(marker!.finishedAt! - marker!.startedAt).toBe(120_000);
    const resolved = await preparations.resolve(r, 0, 'database', { waitMs: 0 });
    expect(resolved.problems).toEqual([expect.stringMatching(/: this window's backup failed: timed out after 120000ms: mysqldump: killed by SIGTERM, and no stable backup was taken before it$/)]);
  });

  it('a stable backup that hangs is stopped when its timeout has passed and leaves nothing behind', async () => {
    const { stable, running } = hangingWorld();
    const taking = stable.takeDue('v1');
    await running;
    await clock.advance(120_000);
    await taking;
    expect(await stable.list(0, 'database')).toEqual([]);
    expect(await readdir(join(dir, 'stable', '1-database'))).toEqual([]);
  });

  it('a guard that stops is no timeout: the marker keeps what the strategy said', async () => {
    const { preparations, running, stopping } = hangingWorld();
    const r = release('manual');
    const preparing = preparations.prepareAll(r, r.startedAt);
    await running;
    stopping.abort();
    await preparing;
    expect(await readMarker(stepDataDir(dir, r.id, 0, 'database'))).toMatchObject({ state: 'failed', error: 'mysqldump: killed by SIGTERM' });
  });
});

describe('store.shared_dir', () => {
  it('start-up: a missing directory is refused in one line; a present one gets the marker a standby finds', async () => {
    const now = clock.now();
    await expect(claimSharedDir(join(dir, 'not-mounted'), 'host/1/ab', now)).rejects.toThrow(
      new RegExp(`^store.shared_dir ${join(dir, 'not-mounted')}: ENOENT.*\\(it must exist: mount the directory every guard of this instance shares\\)$`),
    );
    await claimSharedDir(dir, 'host-a/41/aa', now);
    expect(await standbyProblems(dir, 'host-a/41/aa', [])).toEqual([]);
    expect(await standbyProblems(dir, 'host-b/7/bb', [{ step: 1, dir: join(dir, 'releases', 'v2', '1-database') }])).toEqual([
      expect.stringMatching(/^store.shared_dir .* has no marker of the acting guard host-b\/7\/bb: the guards do not share this directory/),
      `step 1: the acting guard's prepared data for this window is not readable here (${join(dir, 'releases', 'v2', '1-database')})`,
    ]);
  });
});

describe('config files of a detected release (the real config strategy, real files)', () => {
  it("restores the stable version's snapshot, not the window's taken after the deploy changed the files", async () => {
    const app = join(dir, 'app');
    await mkdir(app, { recursive: true });
    await writeFile(join(app, '.env'), 'API_URL=https://v1.example\n');
    const config = strategySchema.parse({ type: 'config', dir: app, files: ['.env'], stable_backup_every: '1h' });
    const pm2 = new Pm2ApiClient({ home: join(dir, 'pm2-unused') });
    const plan: PlanStep[] = [{ config, strategy: await createStrategy(config, { pm2, run: new ProcessRunner(), clock }) }];
    const { stable, preparations } = world(plan);
    stable.refresh(stableState('v1'));
    await stable.settled();
    await clock.advance(60_000);
    // v2 deployed unannounced: its files are in place before the guard sees it.
    await writeFile(join(app, '.env'), 'API_URL=https://v2.broken\n');
    const r = release('detected');
    await preparations.prepareAll(r, r.startedAt - 1000);
    const output: string[] = [];
    const result = await runPlan(plan, { service: 'shop', from: 'v2', to: 'v1' }, {
      clock,
      log,
      signal: new AbortController().signal,
      stateDir: dir,
      windowId: r.id,
      fromStep: 0,
      hooks: { stepStarted: async () => undefined, stepFinished: async (_i, _ok, lines) => void output.push(...lines) },
      prepared: async (index, type, options) => (await preparations.resolve(r, index, type, options)).prepared,
    });
    expect(result).toEqual({ ok: true });
    expect(output[0]).toMatch(/^restoring the stable backup of v1 taken .*: this window's backup was taken after the release began/);
    expect(await readFile(join(app, '.env'), 'utf8')).toBe('API_URL=https://v1.example\n');
  });
});
