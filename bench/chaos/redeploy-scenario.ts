/**
 * The redeploy scenario of issue 13 item 2, shared by its integration test and the chaos run:
 * a real guard daemon (file store) with a kubernetes step (a fake `kubectl` that records its
 * arguments and keeps deployment revisions, the only fake) and a database step (real mysqldump
 * and mysql against a real MariaDB, migrate_down counting its runs) guards v1 → v2, which is
 * rolled back; the app then writes on v1; v2 is deployed again and rolled back again.
 *
 * The second rollback must act on the second window: restore the dump taken when it opened (the
 * writes made between the windows survive), run `rollout undo` and migrate_down again. Data kept
 * per version string instead fails all three: the first window's dump is restored (a stale
 * restore), and its undo record and migrate_down marker make the second rollback skip both.
 */
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import mysql from 'mysql2/promise';
import { stringify } from 'yaml';
import { parseConfigText } from '../../src/config/load.js';
import { createLogger } from '../../src/log.js';
import { startDaemon, type RunningDaemon } from '../../src/shell/daemon.js';

/** An account that may create and drop a database (a throwaway server's root). */
export interface ScenarioDb {
  host: string;
  port: number;
  user: string;
  password?: string;
}

export interface RedeployResult {
  /** Rows written on v1 between the two windows, and how many of them the second rollback kept. */
  writtenBetween: number;
  keptAfterSecondRollback: number;
  /** Whether each rollback undid its release's damage (the row it deleted is back). */
  damageUndone: [boolean, boolean];
  /** `kubectl rollout undo` runs, and migrate_down runs, over both rollbacks (2 each expected). */
  undoRuns: number;
  migrateDownRuns: number;
  /** The guard's state dir (kept for the caller to inspect until it removes workDir). */
  stateDir: string;
  /** Which window ids the two rollbacks used (from the rollback records). */
  windows: string[];
}

/**
 * A `kubectl` that appends its argv to `kubectl.log` and keeps revisions in `kubectl.json`, both
 * named in `kubectl.paths` beside it: steps run with a minimal environment, so no variable of
 * the test reaches it.
 */
export const FAKE_KUBECTL = String.raw`#!/usr/bin/env node
const fs = require('node:fs');
const [log, stateFile] = JSON.parse(fs.readFileSync(__filename + '.paths', 'utf8'));
const argv = process.argv.slice(2);
fs.appendFileSync(log, JSON.stringify(argv) + '\n');
const state = JSON.parse(fs.readFileSync(stateFile, 'utf8'));
const words = argv.filter((a, i) => a !== '-n' && argv[i - 1] !== '-n');
if (words[0] === 'get') process.stdout.write(String(state.current));
else if (words[0] === 'rollout' && words[1] === 'history') {
  console.log('deployment.apps/shop\nREVISION  CHANGE-CAUSE');
  for (const n of state.revisions) console.log(String(n).padEnd(10) + '<none>');
} else if (words[0] === 'rollout' && words[1] === 'undo') {
  const next = Math.max(...state.revisions) + 1;
  state.revisions.push(next);
  state.current = next;
  fs.writeFileSync(stateFile, JSON.stringify(state));
  console.log('deployment.apps/shop rolled back');
} else if (words[0] === 'rollout' && words[1] === 'status') console.log('deployment "shop" successfully rolled out');
else { console.error('fake kubectl: unsupported ' + JSON.stringify(argv)); process.exit(2); }
`;

const MIGRATE_DOWN = "require('node:fs').appendFileSync(process.argv[1], 'down\\n')";

async function waitFor<T>(what: string, check: () => T | null | undefined | false, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`redeploy scenario: timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** A tiny app whose /health reports the version the scenario sets, like a deploy would change it. */
export async function versionApp(): Promise<{ url: string; set(version: string): void; close(): Promise<void> }> {
  let version = 'v1';
  const server: Server = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ status: 'ok', version }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/health`,
    set: (v) => void (version = v),
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

export async function runRedeployScenario(options: { db: ScenarioDb; workDir: string; log?: (line: string) => void }): Promise<RedeployResult> {
  const { db, workDir } = options;
  const note = options.log ?? (() => undefined);
  const database = `rg_redeploy_${randomBytes(4).toString('hex')}`;
  const stateDir = path.join(workDir, 'state');
  const bin = path.join(workDir, 'bin');
  await mkdir(bin, { recursive: true });
  const kubectl = path.join(bin, 'kubectl');
  const kubectlLog = path.join(workDir, 'kubectl.log');
  const kubectlState = path.join(workDir, 'kubectl.json');
  const migrateLog = path.join(workDir, 'migrate-down.log');
  await writeFile(kubectl, FAKE_KUBECTL);
  await chmod(kubectl, 0o755);
  await writeFile(kubectlLog, '');
  await writeFile(migrateLog, '');
  await writeFile(kubectlState, JSON.stringify({ current: 1, revisions: [1] }));
  await writeFile(`${kubectl}.paths`, JSON.stringify([kubectlLog, kubectlState]));
  const deployRevision = async () => {
    const state = JSON.parse(await readFile(kubectlState, 'utf8')) as { current: number; revisions: number[] };
    const next = Math.max(...state.revisions) + 1;
    await writeFile(kubectlState, JSON.stringify({ current: next, revisions: [...state.revisions, next] }));
  };

  const admin = await mysql.createConnection({ host: db.host, port: db.port, user: db.user, ...(db.password ? { password: db.password } : {}) });
  const app = await versionApp();
  let daemon: RunningDaemon | null = null;
  try {
    await admin.query(`CREATE DATABASE ${database}`);
    await admin.query(`CREATE TABLE ${database}.orders (id INT PRIMARY KEY, note VARCHAR(64) NOT NULL)`);
    await admin.query(`INSERT INTO ${database}.orders VALUES (1, 'first'), (2, 'second'), (3, 'third')`);
    const has = async (id: number) => ((await admin.query(`SELECT id FROM ${database}.orders WHERE id = ?`, [id]))[0] as unknown[]).length === 1;

    if (db.password !== undefined) process.env.RG_REDEPLOY_DB_PASSWORD = db.password;
    const yaml = stringify({
      service: 'shop',
      environment: 'staging',
      state_dir: stateDir,
      server: { port: 0 },
      log: { level: 'info', format: 'json' },
      probes: [{ name: 'health', type: 'http', url: app.url, version_path: 'version' }],
      schedule: { interval: '100ms', fast_interval: '100ms' },
      release: { version_probe: 'health', window: '10m', initial_delay: '1s', settle: '10m' },
      rules: { health: { probe: 'health' } },
      rollback: {
        steps: [
          { type: 'kubernetes', deployment: 'shop', kubectl, timeout: '30s' },
          {
            type: 'database',
            host: db.host,
            port: db.port,
            user: db.user,
            ...(db.password !== undefined ? { password_env: 'RG_REDEPLOY_DB_PASSWORD' } : {}),
            database,
            restore: 'automatic',
            migrate_down: [process.execPath, '-e', MIGRATE_DOWN, migrateLog],
            check_tables: ['orders'],
            timeout: '60s',
          },
        ],
      },
      verification: { probe: 'health', passes: 2, timeout: '30s' },
    });
    const lines: string[] = [];
    const stream = new PassThrough();
    stream.on('data', (chunk: Buffer) => lines.push(...chunk.toString().split('\n').filter(Boolean)));
    const backups = () => lines.filter((l) => /"component":"prepare"/.test(l) && /pre-release backup(: | of )/.test(l)).length;
    daemon = await startDaemon(parseConfigText(yaml, 'redeploy scenario'), { log: createLogger({ level: 'info', format: 'json', stream }) });
    const guard = daemon.guard;
    await waitFor('v1 to be known good', () => guard.current.stable === 'v1', 15_000);

    const window = async (n: 1 | 2, damage: number): Promise<{ undone: boolean; id: string }> => {
      const opened = await guard.control({ action: 'release', version: 'v2', deployedBy: 'scenario' });
      if (!opened.ok) throw new Error(`redeploy scenario: release v2 refused: ${opened.error}`);
      const id = guard.current.release!.id ?? '(no window id)';
      await waitFor(`the pre-release backup of window ${n}`, () => backups() >= n, 60_000);
      await deployRevision();
      app.set('v2');
      await admin.query(`DELETE FROM ${database}.orders WHERE id = ?`, [damage]);
      note(`window ${n}: v2 deployed, row ${damage} deleted by the bad release; rolling back`);
      const before = guard.current.rollback?.startedAt ?? 0;
      const rolled = await guard.control({ action: 'rollback', reason: `scenario window ${n}`, by: 'scenario' });
      if (!rolled.ok) throw new Error(`redeploy scenario: rollback refused: ${rolled.error}`);
      app.set('v1');
      await waitFor(`rollback ${n} to end`, () => {
        const s = guard.current;
        return (s.phase === 'rolled_back' || s.phase === 'failed') && (s.rollback?.startedAt ?? 0) > before;
      }, 90_000);
      if (guard.current.phase === 'failed') throw new Error(`redeploy scenario: rollback ${n} failed: ${guard.current.failure}`);
      return { undone: await has(damage), id };
    };

    const first = await window(1, 1);
    const between = [100, 101, 102];
    for (const id of between) await admin.query(`INSERT INTO ${database}.orders VALUES (?, 'written on v1 between the windows')`, [id]);
    const second = await window(2, 2);
    let kept = 0;
    for (const id of between) if (await has(id)) kept++;
    const undoRuns = (await readFile(kubectlLog, 'utf8')).split('\n').filter((l) => l.includes('"undo"')).length;
    const migrateDownRuns = (await readFile(migrateLog, 'utf8')).split('\n').filter((l) => l === 'down').length;
    note(`second rollback kept ${kept}/${between.length} rows written between the windows; undo ran ${undoRuns}x, migrate_down ${migrateDownRuns}x`);
    return { writtenBetween: between.length, keptAfterSecondRollback: kept, damageUndone: [first.undone, second.undone], undoRuns, migrateDownRuns, stateDir, windows: [first.id, second.id] };
  } finally {
    await daemon?.stop().catch(() => undefined);
    await app.close();
    await admin.query(`DROP DATABASE IF EXISTS ${database}`).catch(() => undefined);
    await admin.end();
  }
}
