/**
 * One run of one scenario against release-guard: a fresh world (pm2 cluster mode, v1 good, v2
 * carrying the scenario), 50 req/s of traffic throughout, the guard started on v1 until it knows
 * v1 as stable with a latency baseline, v2 deployed as a deploy script does it, the fault
 * switched on a fixed time into the release window, then: was it rolled back, how fast, and what
 * did users see.
 */
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { buildRelease } from '../test/fixtures/demo-app/releases.js';
import { BASE_LATENCY_MS, type Scenario, type TrafficSource } from './scenarios.js';
import { Nginx } from './nginx.js';
import { DB_PASSWORD_ENV, GuardProcess, guardConfig, type GuardStateFile } from './guard.js';
import type { BenchDb } from './mariadb.js';
import { watchDb, type DbWatch } from './mariadb.js';
import { sleep, waitFor, withTimeout } from './proc.js';
import { emptyResult, measure, type RunResult } from './results.js';
import { impactOf, startTraffic, type Traffic } from './traffic.js';
import { SETUP_TIMEOUT_MS, World } from './world.js';

export const RATE = 50;
/** After a recovery, traffic goes on this long, so a relapse would show. */
const TAIL_MS = 3000;
/** A fault not rolled back this long after injection is a miss. */
const DETECT_BUDGET_MS = 45_000;
/** Hard limit of one run, set-up included, for a fault injected early in the window. */
export const RUN_TIMEOUT_MS = 240_000;

/** Hard limit of one run of `scenario`: later faults and longer observations get that much more. */
export function runTimeoutMs(scenario: Scenario): number {
  return RUN_TIMEOUT_MS + scenario.injectAfterMs + (scenario.observeMs ?? 0);
}

export interface RunContext {
  db?: BenchDb;
  /** Instances of the pm2 cluster app. */
  instances: number;
  /** The nginx binary: when set, every run puts nginx in front of the app and the load goes through it. */
  nginx?: string | null;
  log: (message: string) => void;
}

/** nginx in front of the world's app when the bench has one; the URL the load uses either way. */
export async function frontOf(world: World, ctx: RunContext): Promise<{ nginx: Nginx | null; apiUrl: string }> {
  if (!ctx.nginx) return { nginx: null, apiUrl: world.apiUrl };
  const nginx = await Nginx.start(ctx.nginx, path.join(world.root, 'nginx'), world.appPort);
  return { nginx, apiUrl: `${nginx.url}/api/items` };
}

export function releasesFor(scenario: Scenario, world: { faultFile: string } | null) {
  return {
    v1: { baseLatencyMs: BASE_LATENCY_MS },
    v2: { baseLatencyMs: BASE_LATENCY_MS, ...scenario.v2, ...(world ? { faultFile: world.faultFile } : {}) },
  };
}

export async function runGuardScenario(scenario: Scenario, run: number, ctx: RunContext, source: TrafficSource = 'scrape'): Promise<RunResult> {
  const result = { ...emptyResult(scenario.id, 'release-guard', run), source };
  let world: World | null = null;
  let nginx: Nginx | null = null;
  let guard: GuardProcess | null = null;
  let traffic: Traffic | null = null;
  let dbWatch: DbWatch | null = null;
  const timeoutMs = runTimeoutMs(scenario);
  try {
    await withTimeout(`${scenario.id} (${source}) run ${run}`, timeoutMs, (async () => {
      // The fault file's path is only known once the world exists: v2 is rebuilt with it.
      world = await World.create({ execMode: 'cluster', instances: ctx.instances, releases: releasesFor(scenario, null) });
      const w: World = world;
      await buildRelease(w.deployDir, 'v2', releasesFor(scenario, w).v2);
      const front = await frontOf(w, ctx);
      nginx = front.nginx;
      if (source === 'access_log' && !front.nginx) throw new Error('the access_log source needs nginx (not installed)');
      traffic = startTraffic(front.apiUrl, RATE, timeoutMs);

      const stateDir = path.join(w.root, 'state');
      await mkdir(stateDir, { recursive: true });
      const port = await GuardProcess.freePort();
      const config = guardConfig(w, { stateDir, port, source, ...(front.nginx ? { accessLog: front.nginx.accessLog } : {}), ...(ctx.db ? { db: ctx.db } : {}) });
      guard = await GuardProcess.start(w.root, config, ctx.db ? { [DB_PASSWORD_ENV]: ctx.db.probePassword } : {});
      const g: GuardProcess = guard;
      await waitFor('the guard to know v1 as stable', async () => (await g.state())?.stable === 'v1', SETUP_TIMEOUT_MS, 100);
      await waitFor("the guard to learn v1's traffic latency baseline", () => g.hasBaseline('v1'), SETUP_TIMEOUT_MS, 200);
      // A real release comes long after the stable version's check latency is known; a run must too.
      await waitFor("the guard to learn v1's check latency", () => g.hasCheckLatency('v1'), SETUP_TIMEOUT_MS, 200);

      const deployAt = await w.deploy('v2');
      const window = await waitFor(
        'the guard to open a release window for v2',
        async () => {
          const s = await g.state();
          return s?.release?.version === 'v2' && s.phase !== 'stable' ? s : null;
        },
        SETUP_TIMEOUT_MS,
        25,
      );
      const windowAt = window.release!.startedAt;
      result.notes.push(`window opened ${windowAt - deployAt} ms after the reload began`);
      const injectAt = scenario.trigger === 'deploy' ? deployAt : windowAt + scenario.injectAfterMs;
      // Waiting for the fault (5 minutes, for the late one): a rollback before it is a false one.
      const acted = (s: GuardStateFile | null) => Boolean(s && ['rolling_back', 'verifying', 'rolled_back', 'failed'].includes(s.phase));
      while (Date.now() < injectAt) {
        if (acted(await g.state())) break;
        await sleep(Math.min(250, Math.max(0, injectAt - Date.now())));
      }
      const before = await g.state();
      if (acted(before)) {
        result.rolledBackBeforeFault = true;
        result.rolledBack = true;
        result.reason = before!.rollback?.breach.reason;
        result.trigger = before!.rollback?.breach.rules?.join('+') ?? before!.rollback?.breach.trigger;
        result.notes.push(`rolled back ${Date.now() - windowAt} ms into the window, before the fault: ${result.reason ?? '?'}`);
        await traffic.stop();
        result.completed = true;
        return;
      }

      let faultAt: number;
      if (scenario.needsDb && ctx.db) dbWatch = watchDb(ctx.db, 100, DETECT_BUDGET_MS + 30_000);
      if (scenario.trigger === 'file') {
        faultAt = await w.injectFault();
        if (scenario.faultForMs !== undefined) {
          const endAt = faultAt + scenario.faultForMs;
          setTimeout(() => void w.clearFault().catch(() => undefined), Math.max(0, endAt - Date.now()));
        }
      } else if (scenario.trigger === 'restart') {
        faultAt = Date.now();
        await w.pm2(['restart', 'web']);
      } else faultAt = deployAt;

      let finalState: GuardStateFile | null = null;
      if (scenario.kind === 'fault') {
        finalState = await waitFor(
          'the rollback to finish',
          async () => {
            const s = await g.state();
            return s && (s.phase === 'rolled_back' || s.phase === 'failed') ? s : null;
          },
          DETECT_BUDGET_MS,
          25,
        ).catch(() => null);
        if (!finalState) result.notes.push(`no rollback within ${DETECT_BUDGET_MS / 1000} s of the fault`);
        await sleep(TAIL_MS);
      } else {
        const until = faultAt + (scenario.observeMs ?? 15_000);
        while (Date.now() < until) {
          const s = await g.state();
          if (s && ['rolling_back', 'verifying', 'rolled_back', 'failed'].includes(s.phase)) break;
          await sleep(100);
        }
        await sleep(scenario.observeMs ? 0 : TAIL_MS);
      }

      const records = await traffic.stop();
      const dbRecords = dbWatch ? await (dbWatch as DbWatch).stop() : null;
      const [record] = await g.records();
      const state = finalState ?? (await g.state());
      result.rolledBack = Boolean(record) || Boolean(state && ['rolling_back', 'verifying', 'rolled_back', 'failed'].includes(state.phase));
      const decidedAt = record?.breach.decidedAt ?? state?.rollback?.breach.decidedAt ?? null;
      if (record) {
        result.trigger = record.breach.trigger === 'crash' ? 'crash' : record.breach.rules.join('+');
        result.reason = record.breach.reason;
        result.switchMs = record.executedAt !== null ? record.executedAt - record.breach.decidedAt : null;
        if (record.outcome !== 'rolled_back') result.notes.push(`rollback outcome: ${record.outcome}`);
      } else if (state?.rollback) {
        const breach = state.rollback.breach;
        result.trigger = breach.trigger === 'crash' ? 'crash' : (breach.rules?.join('+') ?? breach.trigger);
        result.reason = state.rollback.breach.reason;
      }
      result.detectionMs = decidedAt !== null ? decidedAt - faultAt : null;
      let dbRecoveredAt: number | null = null;
      if (dbRecords) {
        dbRecoveredAt = impactOf(dbRecords, faultAt, 'v1').recoveredAt;
      }
      if (scenario.kind === 'fault') {
        const { recoveredAt, ...impact } = measure(scenario, records, faultAt, decidedAt, dbRecoveredAt);
        Object.assign(result, impact);
        if (record && record.outcome === 'rolled_back' && recoveredAt !== null) result.verifiedLagMs = record.finishedAt - recoveredAt;
      } else {
        const after = records.filter((r) => r.doneAt >= faultAt);
        result.failedRequests = after.filter((r) => r.outcome !== 'ok').length;
        result.requestsAfterFault = after.length;
        for (const r of after) if (r.outcome !== 'ok') result.failedByOutcome[r.outcome] = (result.failedByOutcome[r.outcome] ?? 0) + 1;
      }
      result.completed = true;
    })());
  } catch (error) {
    result.error = error instanceof Error ? error.message : String(error);
    if (guard) result.error += `\n--- guard log ---\n${await (guard as GuardProcess).logTail(15)}`;
  } finally {
    await (traffic as Traffic | null)?.stop().catch(() => undefined);
    await (dbWatch as DbWatch | null)?.stop().catch(() => undefined);
    await (guard as GuardProcess | null)?.stop().catch(() => undefined);
    await (nginx as Nginx | null)?.stop().catch(() => undefined);
    await (world as World | null)?.cleanup().catch((e: unknown) => ctx.log(`cleanup failed: ${String(e)}`));
  }
  return result;
}
