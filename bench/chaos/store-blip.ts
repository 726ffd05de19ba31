/**
 * Chaos scenario for issue 13 item 8, a store blip between two steps: the built guard (its own
 * process) on a real redis-server (state and lease), rolling back with a two-step plan (step 1
 * "restores the database" once, step 2 "swaps the code" and takes 2 s). Redis is stopped (SIGKILL)
 * while step 2 runs and started again, empty, on the same port a few seconds later.
 *
 * Read: whether the operator was notified (a real local webhook receiver), what the notification
 * says ran, whether the plan resumed once the lease was back and from which step, how often step
 * 1's side effect happened (a double rollback), and what the record lists.
 */
import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { RedisStore } from '../../src/store/redis-store.js';
import type { GuardProcess } from '../guard.js';
import { startJsonReceiver } from '../json-receiver.js';
import { sleep, waitFor } from '../proc.js';
import { startRedis, type RedisInfo, type RunningService } from '../services.js';
import { fileVersionApp, guardStatus, startAppGuard } from './chaos-kit.js';
import type { ChaosContext, ChaosRow } from './types.js';

/** How long Redis stays away. */
const DOWN_MS = 4000;

export async function run(ctx: ChaosContext): Promise<ChaosRow[]> {
  const dir = ctx.workDir;
  let redis: RunningService<RedisInfo> = await startRedis();
  const [app, hook] = await Promise.all([fileVersionApp(dir), startJsonReceiver(() => ({ status: 200, body: 'ok' }))]);
  const trace = path.join(dir, 'trace');
  await writeFile(trace, '');
  const keyPrefix = `rg-chaos:${randomBytes(5).toString('hex')}:`;
  let guard: GuardProcess | undefined;
  let observer: RedisStore | undefined;
  try {
    guard = await startAppGuard(
      dir,
      app.url,
      [
        { type: 'command', command: ['/bin/sh', '-c', 'echo one >> "$0"', trace], timeout: '10s' },
        { type: 'command', command: ['/bin/sh', '-c', 'echo "two start" >> "$1"; sleep 2; printf "%s" "$2" > "$0"; echo "two end" >> "$1"', app.versionFile, trace, '{to}'], timeout: '10s' },
      ],
      {
        host_id: 'web-1',
        store: { type: 'redis', host: redis.info.host, port: redis.info.port, key_prefix: keyPrefix, lease_ttl: '3s' },
        notifiers: [{ type: 'webhook', name: 'ops', url: `${hook.base}/hook`, format: 'json', timeout: '2s', retries: 2 }],
      },
    );
    const g = guard;
    await waitFor('v1 stable', async () => (await guardStatus(g))?.stable === 'v1', 30_000, 200);
    await app.set('v2');
    await waitFor('step 2 running', async () => (await readFile(trace, 'utf8')).includes('two start'), 60_000, 5);
    const port = redis.port;
    await redis.stop({ graceMs: 0 });
    const stoppedAt = Date.now();
    ctx.log('store-blip: redis stopped while step 2 runs');
    const kinds = () => hook.received.map((r) => (r.body as { kind?: string } | undefined)?.kind);
    const told = await waitFor('the plan_interrupted notification', () => hook.received.find((r) => (r.body as { kind?: string }).kind === 'plan_interrupted') ?? null, 30_000, 100).catch(() => null);
    const toldMs = told ? Date.now() - stoppedAt : null;
    const phaseWhileDown = (await guardStatus(g))?.phase;
    await sleep(Math.max(0, DOWN_MS - (Date.now() - stoppedAt)));
    redis = await startRedis({ port });
    const backAt = Date.now();
    ctx.log('store-blip: redis back (empty)');
    const ended = (phase: string | undefined) => (phase === 'rolled_back' || phase === 'failed' ? phase : null);
    const finished = await waitFor('the rollback to end', async () => ended((await guardStatus(g))?.phase), 60_000, 100).catch(async () => `still ${(await guardStatus(g))?.phase ?? 'unreachable'}`);
    const resumedMs = Date.now() - backAt;
    observer = await new RedisStore({ host: redis.info.host, port: redis.info.port, db: 0, keyPrefix, hostId: 'web-1' }).open();
    const obs = observer;
    const page = await waitFor('the record', async () => ((p) => (p.items.length > 0 ? p : null))(await obs.recordPage({ limit: 5 })), 20_000, 200).catch(() => ({ items: [] }));
    const record = page.items[0] ? await obs.readRecord(page.items[0].id) : null;
    const lines = (await readFile(trace, 'utf8')).split('\n').filter(Boolean);
    const stepOneRuns = lines.filter((l) => l === 'one').length;
    const steps = record?.json.steps.map((s) => `${s.index + 1}:${s.ok ? 'ok' : 'failed'}@${s.attempt}`) ?? [];
    const message = (told?.body as { message?: string; severity?: string } | undefined) ?? {};
    const names = /step 1 \(command\) done of 2/.test(message.message ?? '');
    return [
      {
        item: '8 store blip: operator notified',
        input: `redis-server SIGKILLed while step 2 of 2 runs, back empty after ${DOWN_MS / 1000} s`,
        measured: told ? `after ${((toldMs ?? 0) / 1000).toFixed(1)} s, ${message.severity}: ${String(message.message).slice(0, 140)}` : `not notified (received: ${kinds().join(', ') || 'nothing'}); phase ${phaseWhileDown}`,
        target: 'critical, names the steps done',
        ok: told !== null && message.severity === 'critical' && names,
      },
      {
        item: '8 store blip: plan resumed, record lists the steps',
        input: 'lease back once Redis is up again',
        measured: `${finished} ${(resumedMs / 1000).toFixed(1)} s after Redis came back; record steps ${steps.join(', ') || 'none'}${record && /plan interrupted/.test(record.markdown) ? ', the gap shown' : ''}`,
        target: 'rolled_back; steps 1:ok@1, 2:ok@2',
        ok: finished === 'rolled_back' && steps.join(',') === '1:ok@1,2:ok@2',
      },
      {
        item: '8 store blip: double rollbacks',
        input: 'step 1 side effect counted in a journal',
        measured: `${Math.max(0, stepOneRuns - 1)} (step 1 ran ${stepOneRuns}x; app on ${(await readFile(app.versionFile, 'utf8')).trim()})`,
        target: '0',
        ok: stepOneRuns === 1,
      },
    ];
  } finally {
    await guard?.stop();
    await observer?.close().catch(() => undefined);
    await Promise.all([app.close(), hook.close(), redis.stop({ graceMs: 0 })]);
  }
}
