import { appendFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { validateConfig } from '../config/load.js';
import { probeSchema, type AccessLogProbeConfig } from '../config/schema.js';
import { ConfigError } from '../errors.js';
import { accessLogProbe } from './access-log.js';
import type { Probe } from './types.js';

let dir: string;
let file: string;
let clock: number;
let probes: Probe[];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'rg-alog-'));
  file = join(dir, 'access.log');
  clock = 1_000_000;
  probes = [];
});

afterEach(async () => {
  await Promise.all(probes.map((p) => p.close?.()));
  await rm(dir, { recursive: true, force: true });
});

function makeProbe(extra: Record<string, unknown> = {}): Probe {
  const config = probeSchema.parse({ type: 'access_log', name: 'edge', path: file, ...extra }) as AccessLogProbeConfig;
  const probe = accessLogProbe(config, { now: () => clock });
  probes.push(probe);
  return probe;
}

async function sample(probe: Probe, advanceMs = 1000, signal = new AbortController().signal) {
  clock += advanceMs;
  return probe.sample(clock, signal);
}

/** An nginx `timed` line. */
const nginx = (status: number, seconds: number, upstream = '127.0.0.1:3001') =>
  `127.0.0.1 - - [07/Dec/2026:10:15:32 +0000] "GET /api HTTP/1.1" ${status} 12 "-" "load/1" ${seconds.toFixed(3)} ${upstream}\n`;

describe('access_log probe: counting and bad input', () => {
  it('first sample takes the end of the log; then each sample counts what was appended', async () => {
    await writeFile(file, nginx(500, 9).repeat(50));
    const probe = makeProbe();
    const first = await sample(probe);
    expect(first).toMatchObject({ ok: true, values: {}, error: `following ${file} from its end; values from the next sample` });
    expect(first.traffic).toBeUndefined();

    // 100 requests in 2 s: 5 errors; latencies 1..100 ms.
    const batch = Array.from({ length: 100 }, (_, i) => nginx(i < 5 ? 502 : 200, (i + 1) / 1000)).join('');
    await appendFile(file, batch);
    const second = await sample(probe, 2000);
    expect(second.ok).toBe(true);
    expect(second.error).toBeUndefined();
    expect(second.values).toMatchObject({ requests: 100, rps: 50, error_ratio: 0.05, lines_unparsed: 0, lines_skipped: 0 });
    expect(second.values.p95_ms).toBeGreaterThan(90);
    expect(second.values.p95_ms).toBeLessThanOrEqual(100);
    expect(second.traffic).toMatchObject({ requests: 100, errors: 5 });
    const latency = second.traffic!.latency!;
    expect(latency.at(-1)).toEqual({ le: Number.POSITIVE_INFINITY, count: 100 });
    expect(latency.find((b) => b.le === 51)!.count).toBe(51);
  });

  it('no requests: requests 0, no error_ratio and no p95 (no data, never 0)', async () => {
    await writeFile(file, '');
    const probe = makeProbe();
    await sample(probe);
    const empty = await sample(probe);
    expect(empty.ok).toBe(true);
    expect(empty.values.requests).toBe(0);
    expect(empty.values).not.toHaveProperty('error_ratio');
    expect(empty.values).not.toHaveProperty('p95_ms');
    expect(empty.traffic).toEqual({ requests: 0, errors: 0 });
  });

  it('a missing file is unavailable (no data) with a clear error; once it appears it is read from its start', async () => {
    const probe = makeProbe();
    const missing = await sample(probe);
    expect(missing).toMatchObject({ ok: false, unavailable: true, error: `access log ${file} not found (no data); check the path and that the server writes it` });
    await writeFile(file, nginx(200, 0.01) + nginx(503, 0.02));
    const found = await sample(probe, 2000);
    expect(found).toMatchObject({ ok: true, values: { requests: 2, rps: 1, error_ratio: 0.5 } });
  });

  it('counts unparseable, oversized and binary lines and quotes the first bad one, cut short', async () => {
    await writeFile(file, '');
    const probe = makeProbe({ max_line_bytes: 1024 });
    await sample(probe);
    const garbage = `garbage ${'g'.repeat(300)}`;
    await appendFile(
      file,
      Buffer.concat([
        Buffer.from(`${nginx(200, 0.01)}${garbage}\nnot a request\n${'x'.repeat(5000)}\nbin\u0000ary\n`),
        Buffer.from([0xff, 0x0a, 0xc3, 0x28, 0x0a]), // not UTF-8
        Buffer.from(nginx(200, 0.01)),
      ]),
    );
    const result = await sample(probe);
    expect(result.ok).toBe(true);
    expect(result.values).toMatchObject({ requests: 2, lines_unparsed: 2, lines_skipped: 4 });
    expect(result.error).toBe(
      `2 of 8 lines unparseable as log_format "$remote_addr - $remote_user [$time_local] \\"$request\\" $status $body_bytes_sent \\"$http_referer\\" \\"$http_user_agent\\" $request_time $upstream_addr", ` +
        `e.g. "garbage ${'g'.repeat(112)}…"; 1 lines longer than max_line_bytes (1024) skipped; 3 binary lines skipped`,
    );
  });
});

describe('access_log probe: formats, filters and backlog', () => {
  it('a log in another format: unavailable, saying what a line looks like', async () => {
    await writeFile(file, '');
    const probe = makeProbe();
    await sample(probe);
    await appendFile(file, '127.0.0.1 - - [07/Dec/2026:10:15:32 +0000] "GET / HTTP/1.1" 200 612 "-" "curl/8"\n'.repeat(3));
    const result = await sample(probe);
    expect(result).toMatchObject({ ok: false, unavailable: true });
    expect(result.traffic).toBeUndefined();
    expect(result.error).toMatch(/^3 of 3 lines unparseable as log_format "\$remote_addr .*", e\.g\. "127\.0\.0\.1 - - \[07/);
  });

  it('where: only the matching upstream counts', async () => {
    await writeFile(file, '');
    const probe = makeProbe({ where: { field: 'upstream_addr', matches: ':3002$' } });
    await sample(probe);
    await appendFile(file, nginx(500, 0.5, '127.0.0.1:3001').repeat(10) + nginx(200, 0.01, '127.0.0.1:3002').repeat(4) + nginx(500, 0.01, '127.0.0.1:3002'));
    expect((await sample(probe)).values).toMatchObject({ requests: 5, error_ratio: 0.2 });
    await appendFile(file, nginx(500, 0.5, '127.0.0.1:3001'));
    expect((await sample(probe)).error).toBe('1 requests did not match where');
  });

  it('JSON lines (pino-http), with app log lines in between', async () => {
    await writeFile(file, '');
    const probe = makeProbe({ format: 'json' });
    await sample(probe);
    const request = (statusCode: number, responseTime: number) => `${JSON.stringify({ level: 30, res: { statusCode }, responseTime, msg: 'request completed' })}\n`;
    await appendFile(file, `${JSON.stringify({ level: 30, msg: 'listening' })}\n${request(200, 4)}${request(500, 8)}`);
    const result = await sample(probe);
    expect(result).toMatchObject({ ok: true, values: { requests: 2, error_ratio: 0.5 }, traffic: { requests: 2, errors: 1 } });
    expect(result.error).toBeUndefined();
  });

  it('behind: reads at most max_read_bytes per sample and says so; nothing is lost', async () => {
    await writeFile(file, '');
    const probe = makeProbe({ max_read_bytes: 65_536 });
    await sample(probe);
    const line = nginx(200, 0.01);
    await appendFile(file, line.repeat(1000));
    const first = await sample(probe);
    expect(first.values.bytes_behind).toBe(line.length * 1000 - 65_536);
    expect(first.error).toMatch(/^behind: \d+ bytes left for the next sample \(max_read_bytes 65536\)$/);
    const second = await sample(probe);
    expect(second.values).not.toHaveProperty('bytes_behind');
    expect(first.values.requests! + second.values.requests!).toBe(1000);
  });

  it('an aborted sample hands its lines to the next one, and overlapping samples are serialized', async () => {
    await writeFile(file, '');
    const probe = makeProbe();
    await sample(probe);
    await appendFile(file, nginx(200, 0.01).repeat(3));
    const aborted = new AbortController();
    aborted.abort();
    expect(await sample(probe, 1000, aborted.signal)).toMatchObject({ ok: false, error: 'aborted' });
    clock += 1000;
    const [a, b] = await Promise.all([probe.sample(clock, new AbortController().signal), probe.sample(clock + 1, new AbortController().signal)]);
    expect(a.values.requests! + b.values.requests!).toBe(3);
  });
});

describe('access_log config', () => {
  const config = (probe: Record<string, unknown>) => ({
    service: 'web',
    probes: [{ name: 'health', type: 'http', url: 'http://127.0.0.1:3000/health', version_path: 'version' }, { name: 'edge', type: 'access_log', path: '/var/log/nginx/access.log', ...probe }],
    release: { version_probe: 'health' },
    rules: { error_rate: { probe: 'edge' }, latency_ratio: { probe: 'edge' }, latency_max: { probe: 'edge' } },
    rollback: { steps: [{ type: 'command', command: ['true'] }] },
    verification: { probe: 'health' },
  });
  const problems = (probe: Record<string, unknown>) => {
    try {
      validateConfig(config(probe));
      return [];
    } catch (error) {
      if (error instanceof ConfigError) return error.problems;
      throw error;
    }
  };

  it('defaults, and the traffic rules accept it', () => {
    const parsed = validateConfig(config({}));
    expect(parsed.probes[1]).toEqual({
      type: 'access_log',
      name: 'edge',
      path: '/var/log/nginx/access.log',
      format: 'nginx',
      error_status: '^5..$',
      max_line_bytes: 16384,
      max_read_bytes: 8 * 1024 * 1024,
    });
  });

  it('errors name the key, the bad value and what is allowed', () => {
    expect(problems({ error_status: '(' })).toEqual([{ path: 'probes[1].error_status', message: expect.stringMatching(/^"\(" is not a regular expression .*; use e\.g\. \^5\.\.\$$/) }]);
    expect(problems({ where: { field: 'upstream', matches: '.' } })).toEqual([
      { path: 'probes[1].where.field', message: expect.stringMatching(/^"upstream" is not a variable of log_format \(it has \$remote_addr .* \$upstream_addr\)$/) },
    ]);
    expect(problems({ format: 'caddy' })).toEqual([{ path: 'probes[1].format', message: '"caddy" is not allowed; allowed: "nginx", "apache", "json"' }]);
    expect(problems({ latency_unit: 'min' })[0]!.path).toBe('probes[1].latency_unit');
    expect(problems({ max_line_bytes: 10 })).toEqual([{ path: 'probes[1].max_line_bytes', message: '10: must be at least 256' }]);
    expect(problems({ tail: true })[0]).toMatchObject({ path: 'probes[1].tail', message: expect.stringContaining('unknown key') });
  });
});
