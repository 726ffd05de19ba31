/**
 * Chaos scenario for issue 13 item 11, prepared data under HA: two built guards (their own
 * processes) of one instance on a real redis-server (the lease) and one `store.shared_dir`, with a
 * database step (real throwaway MariaDB, real mysqldump and mysql) and a step that switches the
 * app back. The leader takes the pre-release dump when the announced window opens; the release
 * migrates the schema and corrupts rows; the leader is killed with -9 mid-window; the standby takes
 * the lease and, when the release turns bad, must restore the leader's dump from the shared dir.
 *
 * Read: the standby's preflight before it acts (it must see the leader's prepared data), what the
 * database holds after its rollback (v1's schema and rows, else a stale restore), and how many
 * guards claimed the lease at once, sampled every 100 ms from both /status endpoints.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import mysql from 'mysql2/promise';
import { RedisStore } from '../../src/store/redis-store.js';
import { TOKEN, type GuardProcess } from '../guard.js';
import { startBenchDb } from '../mariadb.js';
import { sleep, waitFor } from '../proc.js';
import { startRedis } from '../services.js';
import { chaosConfig, fileVersionApp, guardStatus, startChaosGuard, switchBack } from './chaos-kit.js';
import type { ChaosContext, ChaosRow } from './types.js';

const TTL_MS = 3000;
const V1_NAMES = ['ada', 'grace', 'linus'];

/** Every complete prepared.json under `dir` with its version. */
async function completeMarkers(dir: string): Promise<{ file: string; version: string }[]> {
  const found: { file: string; version: string }[] = [];
  for (const entry of (await readdir(dir, { recursive: true }).catch(() => [] as string[])).filter((e) => e.endsWith('prepared.json'))) {
    const marker = JSON.parse(await readFile(path.join(dir, entry), 'utf8').catch(() => '{}')) as { state?: string; version?: string };
    if (marker.state === 'complete') found.push({ file: path.join(dir, entry), version: String(marker.version) });
  }
  return found;
}

async function preflightProblems(guard: GuardProcess): Promise<{ ready: boolean; problems: string[] }> {
  const response = await fetch(`${guard.url}/preflight`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` }, signal: AbortSignal.timeout(30_000) });
  const body = (await response.json()) as { ready: boolean; problems?: string[]; steps?: { problems: string[] }[] };
  return { ready: body.ready, problems: [...(body.problems ?? []), ...(body.steps ?? []).flatMap((s) => s.problems)] };
}

export async function run(ctx: ChaosContext): Promise<ChaosRow[]> {
  const dir = ctx.workDir;
  const [db, redis] = await Promise.all([startBenchDb(), startRedis()]);
  const failing: string[] = [];
  const app = await fileVersionApp(path.join(dir, 'app'), failing);
  const root = await mysql.createConnection({ host: db.host, port: db.port, user: 'root' });
  const guards: GuardProcess[] = [];
  let observer: RedisStore | undefined;
  let sampling = true;
  try {
    const database = `ha_${randomBytes(4).toString('hex')}`;
    await root.query(`CREATE DATABASE ${database}`);
    await root.query(`CREATE TABLE ${database}.users (id INT PRIMARY KEY, name VARCHAR(64) NOT NULL)`);
    await root.query(`INSERT INTO ${database}.users VALUES ${V1_NAMES.map((n, i) => `(${i + 1}, '${n}')`).join(', ')}`);
    const shared = path.join(dir, 'shared');
    const keyPrefix = `rg-chaos:${randomBytes(5).toString('hex')}:`;
    const start = (name: string) =>
      startChaosGuard(path.join(dir, name), (port) =>
        chaosConfig({
          stateDir: path.join(dir, name, 'state'),
          port,
          healthUrl: app.url,
          steps: [
            { type: 'database', host: db.host, port: db.port, user: 'root', database, restore: 'automatic', check_tables: ['users'], timeout: '60s' },
            switchBack(app),
          ],
          extra: {
            service: 'shop',
            host_id: 'shop-1',
            store: { type: 'redis', host: redis.info.host, port: redis.info.port, key_prefix: keyPrefix, lease_ttl: `${TTL_MS}ms`, shared_dir: shared },
            release: { version_probe: 'health', window: '60s', initial_delay: '1s', settle: '1m' },
          },
        }),
      ).then((g) => (guards.push(g), g));
    // Every guard checks the shared dir at start: it must exist (a mount).
    await mkdir(shared, { recursive: true });
    const leader = await start('a');
    await waitFor('v1 stable', async () => (await guardStatus(leader))?.stable === 'v1', 60_000, 200);
    await waitFor("the stable backup in the shared dir", async () => (await completeMarkers(path.join(shared, 'stable'))).some((m) => m.version === 'v1'), 60_000, 200);
    const standby = await start('b');
    // Guards claiming the lease at once, from both /status, until the end.
    let maxLeaders = 0;
    const sampler = (async () => {
      while (sampling) {
        const leaders = (await Promise.all(guards.map(guardStatus))).filter((s) => s?.lease?.leader === true).length;
        maxLeaders = Math.max(maxLeaders, leaders);
        await sleep(100);
      }
    })();
    // Before a release there is nothing to roll back to (preflight says so): only the shared dir counts.
    const before = await preflightProblems(standby);
    const beforeShared = before.problems.filter((p) => /shared|prepared/.test(p));

    const announced = await leader.post('/releases', { version: 'v2', deployedBy: 'ci' });
    if (announced.status !== 200) throw new Error(`release v2 refused: ${JSON.stringify(announced.body)}`);
    await app.set('v2');
    await waitFor("the leader's pre-release dump in the shared dir", async () => (await completeMarkers(shared)).some((m) => m.version === 'v2'), 60_000, 200);
    // The release migrates and corrupts rows.
    await root.query(`ALTER TABLE ${database}.users ADD COLUMN email VARCHAR(128)`);
    await root.query(`UPDATE ${database}.users SET name = 'CORRUPTED' WHERE id <= 2`);
    await waitFor('the standby to follow the window', async () => (await guardStatus(standby))?.release?.version === 'v2', 20_000, 200);
    const during = await preflightProblems(standby);

    leader.child.kill('SIGKILL');
    const killedAt = Date.now();
    ctx.log('shared-dir: leader killed with -9 mid-window');
    await waitFor('the standby to take the lease', async () => (await guardStatus(standby))?.lease?.leader === true, TTL_MS + 20_000, 50);
    const takeoverMs = Date.now() - killedAt;
    failing.push('v2');
    const phase = await waitFor('the rollback to end', async () => ((p) => (p === 'rolled_back' || p === 'failed' ? p : null))((await guardStatus(standby))?.phase), 90_000, 200).catch(async () => `still ${(await guardStatus(standby))?.phase}`);
    sampling = false;
    await sampler;
    const [columns] = await root.query<mysql.RowDataPacket[]>('SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION', [database, 'users']);
    const [rows] = await root.query<mysql.RowDataPacket[]>(`SELECT name FROM ${database}.users ORDER BY id`);
    const restored = columns.map((c) => c.COLUMN_NAME).join(',') === 'id,name' && rows.map((r) => r.name).join(',') === V1_NAMES.join(',');
    observer = await new RedisStore({ host: redis.info.host, port: redis.info.port, db: 0, keyPrefix, hostId: 'shop-1' }).open();
    const newest = (await observer.recordPage({ limit: 1 })).items[0];
    const output = newest ? ((await observer.readRecord(newest.id))?.json.steps[0]?.output ?? []) : [];
    const fromShared = output.some((l) => l.includes(`from ${shared}`));
    return [
      {
        item: "11 shared_dir: standby's preflight sees the leader's prepared data",
        input: 'standby preflight before the window and mid-window (leader alive)',
        measured: `${beforeShared.length + during.problems.length} problem(s)${[...beforeShared, ...during.problems].length ? `: ${[...beforeShared, ...during.problems].join('; ').slice(0, 140)}` : ''}; ready mid-window: ${during.ready}`,
        target: '0 problems (shared dir before; any mid-window), ready',
        ok: beforeShared.length === 0 && during.problems.length === 0 && during.ready,
      },
      {
        item: "11 shared_dir: standby restores the leader's dump (stale restores)",
        input: 'leader dumps at window open; release migrates + corrupts rows; leader kill -9; release turns bad',
        measured: `${restored ? 0 : 1} (standby ${phase}; users ${columns.map((c) => c.COLUMN_NAME).join(',')} / ${rows.map((r) => r.name).join(',')}; ${fromShared ? 'restored from the shared dir' : `output: ${output.join(' | ').slice(0, 100)}`})`,
        target: '0 (v1 schema and rows back)',
        ok: restored && phase === 'rolled_back' && fromShared,
      },
      {
        item: '11 shared_dir: guards acting at once',
        input: `two guards, lease_ttl ${TTL_MS / 1000} s, /status of both sampled every 100 ms`,
        measured: `${maxLeaders} at most; standby took over ${(takeoverMs / 1000).toFixed(1)} s after the kill`,
        target: 'never 2',
        ok: maxLeaders === 1,
      },
    ];
  } finally {
    sampling = false;
    for (const g of guards) await g.stop();
    await observer?.close().catch(() => undefined);
    await root.end().catch(() => undefined);
    await Promise.all([app.close(), redis.stop({ graceMs: 0 }), db.stop()]);
  }
}
