/**
 * The same fault scenarios against monit, as a monit user would set it up for a pm2 app: the
 * Debian package, run in the foreground (-I) with its own control file (mode 600) in a temp dir,
 * `set daemon 1` (its shortest cycle), the same 3-failure rule, and the same rollback as the
 * guard's releases strategy (current -> releases/v1, pm2 reload) as a shell script using the pm2
 * CLI. The script writes a timestamp first (detection) and another when done.
 *
 * Checks (each fires the script; the first one wins, later ones find the lock and do nothing):
 * - check host: GET /health, 1 s timeout, failing for 3 cycles (5xx, hang, crash);
 * - check process on pm2's pid file of instance 0: does not exist (crash), cpu > 70 % for 3
 *   cycles, memory > 512 MB for 3 cycles;
 * - check program: the probe's query through the mariadb client within 1 s, failing for 3 cycles.
 */
import { chmod, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { buildRelease } from '../test/fixtures/demo-app/releases.js';
import { MEMORY_LIMIT_BYTES } from './guard.js';
import { frontOf, releasesFor, RATE, runTimeoutMs, type RunContext } from './guard-runner.js';
import type { Nginx } from './nginx.js';
import { watchDb, type DbWatch } from './mariadb.js';
import { findBinary, runOk, sleep, spawnTracked, stopChild, waitFor, withTimeout } from './proc.js';
import { emptyResult, measure, type RunResult } from './results.js';
import type { Scenario } from './scenarios.js';
import { impactOf, startTraffic, type Traffic } from './traffic.js';
import { APP, PM2_BIN, World } from './world.js';
import type { ChildProcess } from 'node:child_process';

const DETECT_BUDGET_MS = 45_000;
const TAIL_MS = 3000;

/** The monit binary, installed from Debian when missing (as root). */
export async function ensureMonit(): Promise<string> {
  let monit = findBinary('monit');
  if (!monit && process.getuid?.() === 0) {
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    const install = ['install', '-y', '--no-install-recommends', 'monit'];
    await runOk('apt-get', install, { env, timeoutMs: 15 * 60_000 }).catch(async () => {
      await runOk('apt-get', ['update'], { env, timeoutMs: 15 * 60_000 });
      await runOk('apt-get', install, { env, timeoutMs: 15 * 60_000 });
    });
    monit = findBinary('monit');
  }
  if (!monit) throw new Error('monit is not installed (apt-get install monit)');
  return monit;
}

export async function monitVersion(monit: string): Promise<string> {
  const out = await runOk(monit, ['-V']).catch(() => '');
  return /Monit version ([\d.]+)/.exec(out)?.[1] ?? 'unknown';
}

/** The rollback monit runs: the same symlink swap + pm2 reload as the guard's releases strategy. */
function rollbackScript(world: World, marks: string): string {
  const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  return [
    '#!/bin/sh',
    '# monit rollback: current -> releases/v1 (atomic rename), then pm2 reload; once only.',
    `mkdir ${q(path.join(marks, 'lock'))} 2>/dev/null || exit 0`,
    `date +%s%3N > ${q(path.join(marks, 'started'))}`,
    `echo "$1" > ${q(path.join(marks, 'trigger'))}`,
    `export PM2_HOME=${q(world.pm2Home)}`,
    `export PATH=${q(path.dirname(process.execPath))}:/usr/bin:/bin`,
    `cd ${q(world.deployDir)} || exit 1`,
    'ln -sfn releases/v1 .current.monit && mv -T .current.monit current',
    `${q(process.execPath)} ${q(PM2_BIN)} reload ${APP} > ${q(path.join(marks, 'reload.log'))} 2>&1`,
    `date +%s%3N > ${q(path.join(marks, 'done'))}`,
    '',
  ].join('\n');
}

function controlFile(world: World, dir: string, script: string, dbCheck: string | null): string {
  const exec = (why: string) => `exec "${script} ${why}"`;
  return [
    'set daemon 1',
    `set logfile ${path.join(dir, 'monit.log')}`,
    `set idfile ${path.join(dir, 'monit.id')}`,
    `set statefile ${path.join(dir, 'monit.state')}`,
    `set pidfile ${path.join(dir, 'monit.pid')}`,
    '',
    'check host app with address 127.0.0.1',
    `  if failed port ${world.appPort} protocol http request "/health" with timeout 1 seconds for 3 cycles then ${exec('http')}`,
    '',
    `check process app_worker with pidfile "${world.pidFile(0)}"`,
    `  if does not exist then ${exec('process')}`,
    `  if cpu > 70% for 3 cycles then ${exec('cpu')}`,
    `  if memory > ${Math.round(MEMORY_LIMIT_BYTES / 1024 / 1024)} MB for 3 cycles then ${exec('memory')}`,
    '',
    ...(dbCheck ? [`check program db_query with path "${dbCheck}" with timeout 5 seconds`, `  if status != 0 for 3 cycles then ${exec('db')}`, ''] : []),
  ].join('\n');
}

export async function runMonitScenario(scenario: Scenario, run: number, monitBin: string, ctx: RunContext): Promise<RunResult> {
  const result = emptyResult(scenario.id, 'monit', run);
  let world: World | null = null;
  let nginx: Nginx | null = null;
  let monit: ChildProcess | null = null;
  let traffic: Traffic | null = null;
  let dbWatch: DbWatch | null = null;
  try {
    await withTimeout(`monit ${scenario.id} run ${run}`, runTimeoutMs(scenario), (async () => {
      world = await World.create({ execMode: 'cluster', instances: ctx.instances, releases: releasesFor(scenario, null) });
      const w: World = world;
      await buildRelease(w.deployDir, 'v2', releasesFor(scenario, w).v2);
      // The same path as the guard's runs: through nginx when the bench has it.
      const front = await frontOf(w, ctx);
      nginx = front.nginx;
      traffic = startTraffic(front.apiUrl, RATE, runTimeoutMs(scenario));
      await w.deploy('v2');

      const dir = w.root;
      const marks = path.join(dir, 'marks');
      await runOk('mkdir', ['-p', marks]);
      const script = path.join(dir, 'rollback.sh');
      await writeFile(script, rollbackScript(w, marks), { mode: 0o700 });
      let dbCheck: string | null = null;
      if (ctx.db) {
        dbCheck = path.join(dir, 'db-check.sh');
        await writeFile(
          dbCheck,
          `#!/bin/sh\nexec /usr/bin/timeout 1 ${ctx.db.client} --defaults-extra-file=${ctx.db.probeDefaultsFile} -N -e 'SELECT COUNT(*) FROM items' app > /dev/null 2>&1\n`,
          { mode: 0o700 },
        );
      }
      const rc = path.join(dir, 'monitrc');
      await writeFile(rc, controlFile(w, dir, script, dbCheck), { mode: 0o600 });
      await chmod(rc, 0o600);
      monit = spawnTracked(monitBin, ['-I', '-c', rc], { cwd: dir, stdio: 'ignore' });
      const log = path.join(dir, 'monit.log');
      await waitFor('monit to start', async () => (await readFile(log, 'utf8').catch(() => '')).includes('started'), 15_000, 100);
      // Let it run a few cycles on the healthy v2 first, as it would in production.
      await sleep(3000);
      if (await readFile(path.join(marks, 'started'), 'utf8').catch(() => null)) throw new Error(`monit fired before the fault: ${await readFile(log, 'utf8')}`);

      if (scenario.needsDb && ctx.db) dbWatch = watchDb(ctx.db, 100, DETECT_BUDGET_MS + 30_000);
      const faultAt = await w.injectFault();
      const started = await waitFor('monit to run the rollback script', async () => Number((await readFile(path.join(marks, 'started'), 'utf8').catch(() => '')).trim()) || null, DETECT_BUDGET_MS, 25).catch(() => null);
      let done: number | null = null;
      if (started) {
        done = await waitFor('the rollback script to finish', async () => Number((await readFile(path.join(marks, 'done'), 'utf8').catch(() => '')).trim()) || null, 40_000, 25).catch(() => null);
        result.trigger = (await readFile(path.join(marks, 'trigger'), 'utf8').catch(() => '?')).trim();
      } else result.notes.push(`monit did not act within ${DETECT_BUDGET_MS / 1000} s of the fault`);
      await sleep(TAIL_MS);
      const records = await traffic.stop();
      const dbRecords = dbWatch ? await (dbWatch as DbWatch).stop() : null;
      result.rolledBack = started !== null;
      result.detectionMs = started === null ? null : started - faultAt;
      result.switchMs = started !== null && done !== null ? done - started : null;
      const dbRecoveredAt = dbRecords ? impactOf(dbRecords, faultAt, 'v1').recoveredAt : null;
      // The measured impact; recoveredAt is only the guard runner's (its record's lag).
      const { recoveredAt: _recoveredAt, ...impact } = measure(scenario, records, faultAt, started, dbRecoveredAt);
      Object.assign(result, impact);
      result.completed = true;
    })());
  } catch (error) {
    result.error = error instanceof Error ? error.message : String(error);
  } finally {
    await (traffic as Traffic | null)?.stop().catch(() => undefined);
    await (dbWatch as DbWatch | null)?.stop().catch(() => undefined);
    await stopChild(monit, 5000).catch(() => undefined);
    await (nginx as Nginx | null)?.stop().catch(() => undefined);
    await (world as World | null)?.cleanup().catch((e: unknown) => ctx.log(`cleanup failed: ${String(e)}`));
  }
  return result;
}
