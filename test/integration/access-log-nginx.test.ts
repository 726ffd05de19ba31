/**
 * The access_log probe against a real nginx (installed from Debian when missing and we are root),
 * writing its access log in the `timed` format and proxying to a small upstream in this process
 * that answers 200, 500 or slowly on request, plus a location whose upstream is down (nginx's own
 * 502). nginx runs in the foreground as this process's child with everything in a temp dir, as in
 * the blue-green test. The probe's counts, error ratio and latency buckets must match what was
 * sent; across rotation by rename (+ `nginx -s reopen`) and by copytruncate no request may be lost
 * or counted twice. Nothing here asserts how long anything took.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { chmod, copyFile, mkdtemp, readFile, rename, rm, stat, truncate } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { probeSchema, type AccessLogProbeConfig } from '../../src/config/schema.js';
import type { Sample } from '../../src/core/types.js';
import { freePort } from '../fixtures/demo-app/releases.js';
import { TIMED_LOG_FORMAT, writeNginxConf } from '../../bench/nginx.js';
import { LATENCY_BOUNDS_MS } from '../../src/probes/access-log-parse.js';
import { accessLogProbe } from '../../src/probes/access-log.js';
import { histogramQuantile } from '../../src/probes/histogram-quantile.js';
import type { Probe } from '../../src/probes/types.js';
import { ProcessRunner } from '../../src/shell/process-runner.js';
import { ensureDebianPackage } from '../helpers/apt.js';
import { waitFor } from '../helpers/pm2-sandbox.js';

const SLOW_MS = 400;

describe('access_log probe (real nginx)', () => {
  let nginxBin: string;
  let dir: string;
  let log: string;
  let nginxArgs: string[];
  let nginx: ChildProcess | undefined;
  let upstream: http.Server;
  let upstreamAddr: string;
  let deadAddr: string;
  let port: number;
  const run = new ProcessRunner();
  const probes: Probe[] = [];
  let clock = 0;

  function probe(extra: Record<string, unknown> = {}): Probe {
    const config = probeSchema.parse({ type: 'access_log', name: 'edge', path: log, ...extra }) as AccessLogProbeConfig;
    const made = accessLogProbe(config, { now: () => Date.now() });
    probes.push(made);
    return made;
  }
  const sample = (p: Probe): Promise<Sample> => p.sample(++clock, new AbortController().signal);

  /** Sends `n` requests to `route`, at most 16 at a time; resolves with the statuses seen. */
  async function send(route: string, n: number): Promise<number[]> {
    const statuses: number[] = [];
    let next = 0;
    const worker = async () => {
      while (next < n) {
        next++;
        const response = await fetch(`http://127.0.0.1:${port}${route}`, { signal: AbortSignal.timeout(30_000) });
        await response.arrayBuffer();
        statuses.push(response.status);
      }
    };
    await Promise.all(Array.from({ length: Math.min(16, n) }, worker));
    return statuses;
  }

  /** Samples until `expected` requests were counted in all, then once more: the sums of both. */
  async function countUntil(p: Probe, expected: number): Promise<{ requests: number; errors: number; samples: Sample[] }> {
    const total = { requests: 0, errors: 0, samples: [] as Sample[] };
    const add = (s: Sample) => {
      total.samples.push(s);
      total.requests += s.traffic?.requests ?? 0;
      total.errors += s.traffic?.errors ?? 0;
    };
    await waitFor(async () => {
      add(await sample(p));
      return total.requests >= expected;
    }, 30_000, 100);
    // nginx has written every line by now: one more read finds nothing new.
    add(await sample(p));
    return total;
  }

  beforeAll(async () => {
    const ensured = await ensureDebianPackage('nginx', 'nginx');
    nginxBin = ensured.path;
    if (ensured.installMs > 0) process.stderr.write(`nginx installed with apt-get in ${Math.round(ensured.installMs)}ms\n`);

    upstream = http.createServer((req, res) => {
      const answer = (status: number) => res.writeHead(status, { 'content-type': 'text/plain' }).end(`${status}\n`);
      if (req.url === '/fail') answer(500);
      else if (req.url === '/slow') setTimeout(() => answer(200), SLOW_MS);
      else answer(200);
    });
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    upstreamAddr = `127.0.0.1:${(upstream.address() as AddressInfo).port}`;
    // Nothing listens there: nginx answers 502 itself.
    deadAddr = `127.0.0.1:${await freePort()}`;

    dir = await mkdtemp(path.join(os.tmpdir(), 'rg-nginx-log-'));
    // As root, nginx's workers run as nobody: they must reach the temp paths below.
    await chmod(dir, 0o755);
    log = path.join(dir, 'access.log');
    port = await freePort();
    nginxArgs = await writeNginxConf(dir, {
      workers: 2,
      connections: 256,
      http: [
        `log_format timed ${TIMED_LOG_FORMAT};`,
        `access_log ${log} timed;`,
        `upstream app { server ${upstreamAddr}; }`,
        `upstream dead { server ${deadAddr}; }`,
        'server {',
        `    listen 127.0.0.1:${port};`,
        '    location /dead { proxy_pass http://dead; }',
        '    location / { proxy_pass http://app; }',
        '}',
      ],
    });
    nginx = spawn(nginxBin, nginxArgs, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    nginx.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    process.once('exit', () => nginx?.kill('SIGTERM'));
    await waitFor(async () => {
      if (nginx?.exitCode !== null) throw new Error(`nginx exited: ${stderr}`);
      return (await fetch(`http://127.0.0.1:${port}/ok`)).status === 200;
    }, 15_000);
  }, 15 * 60_000);

  afterAll(async () => {
    await Promise.all(probes.map((p) => p.close?.()));
    if (nginx && nginx.exitCode === null && nginx.signalCode === null) {
      const exited = new Promise((resolve) => nginx!.once('exit', resolve));
      nginx.kill('SIGTERM');
      await exited;
    }
    await new Promise((resolve) => upstream?.close(resolve));
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('counts requests, errors and latencies as sent; a where filter sees one upstream apart', async () => {
    const all = probe();
    const deadOnly = probe({ name: 'dead', where: { field: 'upstream_addr', matches: `^${deadAddr.replace(/\./g, '\\.')}$` } });
    // History before the probes start is never read.
    await send('/ok', 30);
    await waitFor(async () => (await sample(all)).ok && (await sample(deadOnly)).ok, 10_000);
    await sample(all);
    await sample(deadOnly);

    const statuses = (await Promise.all([send('/ok', 150), send('/fail', 12), send('/dead', 8), send('/slow', 20)])).flat();
    expect(statuses.filter((s) => s >= 500)).toHaveLength(20);

    const counted = await countUntil(all, 190);
    expect(counted.requests).toBe(190);
    expect(counted.errors).toBe(20);
    // The samples' buckets add up (fixed bounds): the batch's histogram whichever sample saw which line.
    const merged = new Map<number, number>();
    for (const s of counted.samples) for (const b of s.traffic?.latency ?? []) merged.set(b.le, (merged.get(b.le) ?? 0) + b.count);
    expect(merged.get(Number.POSITIVE_INFINITY)).toBe(190);
    // The same histogram, taken independently from the batch's lines in the log: how long each
    // request took depends on the machine's load, so that is what the probe must agree with.
    const logged = (await readFile(log, 'utf8')).trimEnd().split('\n').slice(-190);
    const requestMs = logged.map((line) => Number(/ ([0-9.]+) [0-9.:]+$/.exec(line)![1]) * 1000);
    for (const le of LATENCY_BOUNDS_MS) expect(merged.get(le), `count at le ${le}`).toBe(requestMs.filter((ms) => ms <= le).length);
    // What was sent: 20 answers took at least SLOW_MS, so at most 170 were faster than 390 ms, and
    // with 10.5 % of the requests that slow the p95 lies among them.
    expect(merged.get(390)).toBeLessThanOrEqual(170);
    const p95 = histogramQuantile(0.95, [...merged].map(([le, count]) => ({ le, count })));
    expect(p95).toBeGreaterThanOrEqual(390);
    for (const s of counted.samples.filter((s) => (s.traffic?.requests ?? 0) > 0)) {
      expect(s.values.error_ratio).toBeCloseTo(s.traffic!.errors / s.traffic!.requests, 10);
      if (s.traffic!.requests === 190) expect(s.values.p95_ms).toBe(p95);
    }
    for (const s of counted.samples) expect(s.values.lines_unparsed ?? 0).toBe(0);

    const dead = await countUntil(deadOnly, 8);
    expect(dead).toMatchObject({ requests: 8, errors: 8 });
  });

  it('rotation by rename + nginx -s reopen, then copytruncate: no request lost or counted twice', async () => {
    const p = probe({ name: 'rotating' });
    await waitFor(async () => (await sample(p)).ok, 10_000);

    // Rename: nginx keeps writing to the renamed file until it reopens its log.
    await send('/ok', 40);
    await rename(log, `${log}.1`);
    await send('/fail', 10);
    const beforeReopen = await sample(p);
    expect(beforeReopen.ok).toBe(true);
    await run.run(nginxBin, [...nginxArgs, '-s', 'reopen'], { timeoutMs: 10_000 });
    await waitFor(() => stat(log).then(() => true), 10_000, 50);
    await send('/ok', 30);
    await send('/fail', 5);
    const renamed = await countUntil(p, 85 - (beforeReopen.traffic?.requests ?? 0));
    expect(renamed.requests + (beforeReopen.traffic?.requests ?? 0)).toBe(85);
    expect(renamed.errors + (beforeReopen.traffic?.errors ?? 0)).toBe(15);
    expect(renamed.samples.some((s) => s.error?.startsWith(`renamed: ${log} is a new file`))).toBe(true);

    // copytruncate: copy, then cut the file nginx appends to (O_APPEND: it writes at the new end).
    await send('/ok', 25);
    const beforeCopy = await countUntil(p, 25);
    expect(beforeCopy).toMatchObject({ requests: 25, errors: 0 });
    await copyFile(log, `${log}.2`);
    await truncate(log, 0);
    await send('/ok', 20);
    await send('/fail', 4);
    const truncated = await countUntil(p, 24);
    expect(truncated).toMatchObject({ requests: 24, errors: 4 });
    expect(truncated.samples.some((s) => s.error?.includes('truncated (copytruncate)'))).toBe(true);
  });
});
