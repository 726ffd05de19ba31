/**
 * Item 8 of issue 13: Redis (the state store and the lease) goes away between two steps of a
 * real rollback plan. The plan stops half-done; the operator gets a critical notification (a
 * real local webhook receiver) naming the steps that ran; when Redis is back (restarted empty,
 * like a server without persistence) the guard takes the lease again and the plan resumes from
 * the step not finished; the record lists both steps and the gap between them.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { parseConfigText } from '../../src/config/load.js';
import { createLogger } from '../../src/log.js';
import { startDaemon } from '../../src/shell/daemon.js';
import { waitFor } from '../helpers/pm2-sandbox.js';
import { deleteKeys, observe, uniquePrefix } from '../helpers/redis-guards.js';
import { startRedis, type RedisInfo, type RunningService } from '../helpers/services.js';

let cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
  cleanups = [];
});

async function listen(server: http.Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });
  return (server.address() as AddressInfo).port;
}

describe('a store blip between two steps of a rollback', () => {
  it('notifies the operator, resumes from the next step when Redis is back, and the record shows both steps and the gap', { timeout: 120_000 }, async () => {
    let redis: RunningService<RedisInfo> = await startRedis();
    cleanups.push(() => redis.stop({ graceMs: 0 }));
    const dir = await mkdtemp(join(tmpdir(), 'rg-blip-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const versionFile = join(dir, 'app-version');
    const trace = join(dir, 'trace');
    await writeFile(versionFile, 'v1');
    await writeFile(trace, '');
    const appPort = await listen(
      http.createServer(async (_req, res) => {
        const version = (await readFile(versionFile, 'utf8')).trim();
        res.writeHead(version === 'v2' ? 500 : 200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ version }));
      }),
    );
    const deliveries: { kind: string; severity: string; message: string }[] = [];
    const hookPort = await listen(
      http.createServer((req, res) => {
        let body = '';
        req.on('data', (chunk: Buffer) => (body += chunk.toString()));
        req.on('end', () => {
          deliveries.push(JSON.parse(body) as { kind: string; severity: string; message: string });
          res.end('ok');
        });
      }),
    );
    const keyPrefix = uniquePrefix();
    cleanups.push(() => deleteKeys(redis.info, keyPrefix));
    const yaml = stringify({
      service: 'web',
      state_dir: join(dir, 'state'),
      host_id: 'web-1',
      store: { type: 'redis', host: redis.info.host, port: redis.info.port, key_prefix: keyPrefix, lease_ttl: '3s' },
      server: { host: '127.0.0.1', port: 0 },
      log: { level: 'debug', format: 'json' },
      probes: [{ name: 'health', type: 'http', url: `http://127.0.0.1:${appPort}/health`, timeout: '1s', version_path: 'version' }],
      schedule: { interval: '200ms', fast_interval: '100ms', fast_for: '1m' },
      release: { version_probe: 'health', window: '1m', initial_delay: '1s', settle: '5m' },
      rules: { health: { probe: 'health', consecutive: 3 } },
      rollback: {
        steps: [
          // "The database restored": done once, recorded.
          { type: 'command', command: ['/bin/sh', '-c', 'echo one >> "$0"', trace], timeout: '10s' },
          // "The code swapped": takes a moment; Redis goes away while it runs.
          { type: 'command', command: ['/bin/sh', '-c', 'echo "two start" >> "$1"; sleep 2; printf "%s" "$2" > "$0"; echo "two end" >> "$1"', versionFile, trace, '{to}'], timeout: '10s' },
        ],
      },
      verification: { probe: 'health', passes: 3, timeout: '20s' },
      notifiers: [{ type: 'webhook', name: 'ops', url: `http://127.0.0.1:${hookPort}/hook`, format: 'json', timeout: '2s', retries: 2 }],
    });
    const logs: string[] = [];
    const stream = new PassThrough();
    stream.on('data', (chunk: Buffer) => logs.push(...chunk.toString().split('\n').filter(Boolean)));
    const daemon = await startDaemon(parseConfigText(yaml, 'blip.yaml'), { log: createLogger({ level: 'debug', format: 'json', stream }) });
    cleanups.push(() => daemon.stop());
    const d = daemon.guard;
    await waitFor(() => d.current.stable === 'v1', 15_000);

    await writeFile(versionFile, 'v2');
    // Step 1 is done and recorded, step 2 has started: Redis goes away now.
    await waitFor(async () => (await readFile(trace, 'utf8')).includes('two start'), 30_000, 5);
    expect(d.current.rollback?.steps.find((s) => s.index === 0)?.ok).toBe(true);
    const port = redis.port;
    await redis.stop({ graceMs: 0 });

    // The operator is told, critically, what ran and what is left.
    await waitFor(() => deliveries.some((e) => e.kind === 'plan_interrupted'), 20_000);
    const told = deliveries.find((e) => e.kind === 'plan_interrupted')!;
    expect(told.severity).toBe('critical');
    expect(told.message).toMatch(/rollback v2 -> v1 stopped half-done: step 1 \(command\) done of 2; .*It resumes from step 2/);
    expect(d.current.phase).toBe('rolling_back');

    // Redis back (empty): the lease is taken again and the plan goes on from step 2.
    redis = await startRedis({ port });
    await waitFor(() => d.current.phase === 'rolled_back', 40_000);
    expect((await readFile(versionFile, 'utf8')).trim()).toBe('v1');
    const lines = (await readFile(trace, 'utf8')).split('\n').filter(Boolean);
    expect(lines.filter((l) => l === 'one'), 'step 1 is not run again').toHaveLength(1);

    const observer = await observe(redis.info, keyPrefix, 'web-1');
    cleanups.push(() => observer.close());
    await waitFor(() => logs.some((l) => l.includes('"rollback record written"')), 15_000);
    const page = await observer.recordPage({ limit: 5 });
    expect(page.items).toHaveLength(1);
    const record = (await observer.readRecord(page.items[0]!.id))!;
    expect(record.json.steps.map((s) => [s.index, s.ok, s.attempt])).toEqual([[0, true, 1], [1, true, 2]]);
    expect(record.markdown).toMatch(/\| — \| plan interrupted for \S+ after step 1, resumed \(attempt 2\) \|/);
  });
});
