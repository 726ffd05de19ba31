/**
 * Chaos scenarios for issue 13 items 6 and 7, against the built guard (its own process):
 *
 * - secrets: a guard holding an API token, a MariaDB password (mysql probe, real throwaway
 *   MariaDB), a Redis password (redis probe, real redis-server with requirepass) and a webhook URL
 *   with a secret path (a real local receiver) rolls back with a plan whose first step dumps its
 *   environment and prints every secret (read from a file the guard never gave it), and whose
 *   second prints them to stderr and fails. Every secret is searched for in the step's
 *   environment, the records (JSON, Markdown), /status, /history, the notifications received and
 *   the guard's log. The steps' output must reach those places redacted (counted), or the search
 *   proves nothing.
 * - records: the records dir is replaced by a file (writes fail) before a real rollback of a pm2
 *   app whose log holds 4 MB of long lines and a line of three backticks; the file is removed a
 *   moment later. The record must be written by a retry, as a JSON + Markdown pair with no temp
 *   file, with the log tail capped and the Markdown's code blocks intact.
 */
import { appendFile, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { TOKEN, type GuardProcess } from '../guard.js';
import { startJsonReceiver } from '../json-receiver.js';
import { startBenchDb } from '../mariadb.js';
import { sleep, waitFor } from '../proc.js';
import { startRedis } from '../services.js';
import { APP, World } from '../world.js';
import { fileVersionApp, leaksOf, markdownProblems, recordFiles, startAppGuard, switchBack } from './chaos-kit.js';
import type { ChaosContext, ChaosRow } from './types.js';

const DB_ENV = 'RG_CHAOS_DB_PASSWORD';
const REDIS_ENV = 'RG_CHAOS_REDIS_PASSWORD';
const HOOK_ENV = 'RG_CHAOS_HOOK_URL';
const HOOK_SEGMENT = 'HOOKSECRET7d1e9c3b5a7f9e1d';

async function secretsRows(dir: string): Promise<ChaosRow[]> {
  const redisPassword = `redis-pw-${Math.random().toString(36).slice(2)}${Date.now().toString(36)}`;
  const [db, redis, hook, app] = await Promise.all([startBenchDb(), startRedis({ password: redisPassword }), startJsonReceiver(() => ({ status: 200, body: 'ok' })), fileVersionApp(dir)]);
  let guard: GuardProcess | undefined;
  try {
    const hookUrl = `${hook.base}/hooks/${HOOK_SEGMENT}`;
    const secrets = { 'API token': TOKEN, 'DB password': db.probePassword, 'Redis password': redisPassword, 'webhook URL': hookUrl, 'webhook secret segment': HOOK_SEGMENT };
    // The steps read the secrets from here: what a build script that cats a .env would print.
    const leakFile = path.join(dir, 'secrets.txt');
    await writeFile(leakFile, Object.values(secrets).join(' '), { mode: 0o600 });
    const envDump = path.join(dir, 'step-env.txt');
    const stateDir = path.join(dir, 'state');
    guard = await startAppGuard(
      dir,
      app.url,
      [
        { type: 'command', command: ['/bin/sh', '-c', 'env > "$0"; echo "secrets: $(cat "$1")"', envDump, leakFile], timeout: '10s' },
        { type: 'command', command: ['/bin/sh', '-c', 'echo "cannot log in with $(cat "$0")" >&2; exit 3', leakFile], timeout: '10s' },
        switchBack(app),
      ],
      {
        probes: [
          { name: 'health', type: 'http', url: app.url, timeout: '1s', version_path: 'version' },
          { name: 'db', type: 'mysql', host: db.host, port: db.port, user: db.probeUser, password_env: DB_ENV, database: db.database, timeout: '2s' },
          { name: 'cache', type: 'redis', host: redis.info.host, port: redis.info.port, password_env: REDIS_ENV, timeout: '1s' },
        ],
        notifiers: [{ type: 'webhook', name: 'ops', url_env: HOOK_ENV, format: 'json', timeout: '2s', retries: 2 }],
      },
      { [DB_ENV]: db.probePassword, [REDIS_ENV]: redisPassword, [HOOK_ENV]: hookUrl },
    );
    const g = guard;
    await waitFor('v1 stable', async () => (await g.state())?.stable === 'v1', 30_000, 100);
    await app.set('v2');
    await waitFor('the failed rollback', async () => (await g.state())?.phase === 'failed', 60_000, 100);
    await waitFor('its record and notification', async () => (await recordFiles(stateDir)).md.length > 0 && hook.received.some((r) => JSON.stringify(r.body).includes('rollback_failed')), 20_000, 100);
    await sleep(500);
    const records = await recordFiles(stateDir);
    const places: [string, string][] = [['the step environment', await readFile(envDump, 'utf8').catch(() => '')]];
    for (const file of [...records.json, ...records.md]) places.push([`record ${path.basename(file)}`, await readFile(file, 'utf8')]);
    for (const route of ['/status', '/history', '/preflight']) places.push([`GET ${route}`, await (await fetch(`${g.url}${route}`)).text()]);
    // What was sent (the URL it was sent to is the webhook's own, not a leak).
    hook.received.forEach((r, i) => places.push([`notification ${i + 1}`, JSON.stringify(r.body)]));
    places.push(['the guard log', await readFile(g.logFile, 'utf8')]);
    // The env dump also must not name the guard's secret variables.
    const named = [DB_ENV, REDIS_ENV, HOOK_ENV, 'RG_BENCH_TOKEN'].filter((name) => places[0]![1].includes(`${name}=`));
    const leaks = [...leaksOf(secrets, places), ...named.map((n) => `${n} in the step environment`)];
    const redacted = places.filter(([where, text]) => where !== 'the step environment' && text.includes('[redacted]')).map(([where]) => where.replace(/ .*\.(json|md)$/, ' $1'));
    const stepRan = /^PATH=/m.test(places[0]![1]);
    return [
      {
        item: '6 secrets: leaks',
        input: `API token, DB + Redis passwords, webhook URL; step 1 dumps env and prints them, step 2 prints them and fails; searched in ${places.length} places`,
        measured: `${leaks.length}${leaks.length ? ` (${leaks.slice(0, 4).join('; ')})` : ''}; redacted output seen in ${[...new Set(redacted)].join(', ') || 'nowhere'}; ${hook.received.length} notification(s)`,
        target: '0 (output redacted in records, /status, notifications)',
        ok: leaks.length === 0 && stepRan && redacted.some((w) => w.startsWith('record')) && redacted.includes('GET /status') && redacted.some((w) => w.startsWith('notification')),
      },
    ];
  } finally {
    await guard?.stop();
    await Promise.all([app.close(), hook.close(), redis.stop({ graceMs: 0 }), db.stop()]);
  }
}

/** Three backticks alone on a line: closes a code block opened with three. */
const BACKTICKS = '```';
const FAKE_HEADING = '## not a heading of the record';

async function recordsRows(dir: string): Promise<ChaosRow[]> {
  const world = await World.create({ execMode: 'fork', instances: 1, releases: { v1: {}, v2: { fault: '5xx', faultAfterMs: 5000 } } });
  let guard: GuardProcess | undefined;
  try {
    const stateDir = path.join(dir, 'state');
    guard = await startAppGuard(dir, world.healthUrl, [{ type: 'releases', dir: world.deployDir, pm2_app: APP, restart_mode: 'reload', timeout: '30s' }], {
      pm2: { home: world.pm2Home, app: APP },
      records: { write_attempts: 8, log_lines: 40, log_bytes: 64 * 1024 },
    });
    const g = guard;
    await waitFor('v1 stable', async () => (await g.state())?.stable === 'v1', 60_000, 100);
    // The app's log: 4 MB of 8 KB lines (a release logging a stack per request), then the backticks.
    const jlist = JSON.parse(await world.pm2(['jlist'])) as { name: string; pm2_env: { pm_out_log_path: string } }[];
    const outLog = jlist.find((p) => p.name === APP)!.pm2_env.pm_out_log_path;
    const longLine = `${'x'.repeat(8191)}\n`;
    for (let i = 0; i < 8; i++) await appendFile(outLog, longLine.repeat(64));
    await appendFile(outLog, `${BACKTICKS}\n${FAKE_HEADING}\n`);
    // Records cannot be written: a file where the records dir goes.
    const recordsDir = path.join(stateDir, 'rollbacks');
    await rm(recordsDir, { recursive: true, force: true });
    await writeFile(recordsDir, 'in the way');
    await world.deploy('v2');
    await waitFor('the rollback', async () => (await g.state())?.phase === 'rolled_back', 60_000, 100);
    await waitFor('a failed record write', async () => (await readFile(g.logFile, 'utf8')).includes('"rollback record could not be written"'), 20_000, 100);
    await rm(recordsDir);
    const written = await waitFor('the record', async () => (await readFile(g.logFile, 'utf8')).split('\n').find((l) => l.includes('"rollback record written"')), 60_000, 200);
    await sleep(300);
    const files = await recordFiles(stateDir);
    const pairs = Math.min(files.json.length, files.md.length);
    const lost = Math.max(0, 1 - pairs);
    const markdown = files.md[0] ? await readFile(files.md[0], 'utf8') : '';
    const logSection = markdown.slice(markdown.indexOf('## Application logs'));
    const problems = markdown ? markdownProblems(markdown, [BACKTICKS, FAKE_HEADING]) : ['no Markdown'];
    const attempt = (JSON.parse(written) as { attempt?: number }).attempt ?? 1;
    const sizes = await Promise.all([...files.json, ...files.md].map(async (f) => (await readFile(f)).length));
    return [
      {
        item: '7 records: lost or unpaired after a failed write',
        input: 'records dir replaced by a file during a real pm2 rollback, removed after the first failed write',
        measured: `${lost} lost (written at attempt ${attempt}; ${files.json.length} JSON, ${files.md.length} Markdown, ${files.tmp.length} temp left)`,
        target: '0 lost, 1 pair, 0 temp',
        ok: lost === 0 && files.json.length === 1 && files.md.length === 1 && files.tmp.length === 0 && attempt >= 2,
      },
      {
        item: '7 records: log tail capped',
        input: '4 MB of 8 KB lines in the app log (records.log_bytes 64 KB)',
        measured: `log section ${(Buffer.byteLength(logSection) / 1024).toFixed(1)} KB, record files ≤ ${(Math.max(...sizes, 0) / 1024).toFixed(1)} KB`,
        target: 'log section ≤ 65 KB',
        ok: logSection.length > 0 && Buffer.byteLength(logSection) <= 65 * 1024,
      },
      {
        item: '7 records: Markdown broken by a log line',
        input: 'a log line of three backticks, then "## not a heading of the record"',
        measured: `${problems.length}${problems.length ? ` (${problems.join('; ')})` : ''}`,
        target: '0',
        ok: problems.length === 0,
      },
    ];
  } finally {
    await guard?.stop();
    await world.cleanup();
  }
}

export async function run(ctx: ChaosContext): Promise<ChaosRow[]> {
  ctx.log('secrets-and-records: secrets');
  const rows = await secretsRows(path.join(ctx.workDir, 'secrets'));
  ctx.log('secrets-and-records: records');
  rows.push(...(await recordsRows(path.join(ctx.workDir, 'records'))));
  return rows;
}
