/**
 * `release-guard init` with a web server's access log: a log in a format the access_log probe
 * reads gives a live probe that the traffic rules judge; any other log (empty, another format,
 * unreadable) gives the probe commented out with a TODO that names the log_format it expects.
 * Runs init in process with no pm2 and no health URL: only the access-log part is looked at.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { runInit, type InitDeps } from '../../src/cli/init.js';
import { NGINX_TIMED_FORMAT } from '../../src/probes/access-log-parse.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'rg-init-log-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const deps = (candidates: string[] = []): InitDeps => ({
  describePm2: () => Promise.reject(new Error('not used')),
  fetch: () => Promise.reject(new Error('not used')),
  env: {},
  isRoot: false,
  accessLogCandidates: candidates,
});

const timed = (status: number) => `127.0.0.1 - - [07/Dec/2026:10:15:32 +0000] "GET / HTTP/1.1" ${status} 612 "-" "curl/8" 0.004 127.0.0.1:3000\n`;
const combined = '127.0.0.1 - - [07/Dec/2026:10:15:32 +0000] "GET / HTTP/1.1" 200 612 "-" "curl/8"\n';

async function init(options: { accessLog?: string }, candidates: string[] = []) {
  const out = join(dir, 'config.yaml');
  const result = await runInit({ out, force: true, service: 'web', stateDir: join(dir, 'state'), ...options }, deps(candidates));
  return { ...result, config: await loadConfig(out), text: await readFile(out, 'utf8') };
}

describe('init with an access log', () => {
  it('a log in the timed format: a live access_log probe, judged by the traffic rules', async () => {
    const log = join(dir, 'access.log');
    await writeFile(log, timed(200).repeat(20) + timed(502));
    const { config, inferred, todo } = await init({ accessLog: log });
    expect(config.probes.find((p) => p.name === 'access-log')).toMatchObject({ type: 'access_log', path: log, format: 'nginx' });
    expect(config.rules.error_rate?.probe).toBe('access-log');
    expect(config.rules.latency_ratio?.probe).toBe('access-log');
    expect(inferred).toContain(`access log ${log}: 21 recent lines in the nginx format the access_log probe reads: every request counts`);
    expect(todo.join('\n')).not.toContain('access log');
  });

  it('found at the usual place when not given; pino-http JSON is recognised', async () => {
    const log = join(dir, 'app.log');
    await writeFile(log, `${JSON.stringify({ level: 30, msg: 'listening' })}\n${JSON.stringify({ res: { statusCode: 200 }, responseTime: 3 })}\n`.repeat(10));
    const { config } = await init({}, [join(dir, 'missing.log'), log]);
    expect(config.probes.find((p) => p.name === 'access-log')).toMatchObject({ type: 'access_log', path: log, format: 'json' });
  });

  it.each([
    ['in the plain combined format', combined.repeat(5), /is not in a format the access_log probe reads by default \(e\.g\. "127\.0\.0\.1 - - \[07/],
    ['empty', '', /is empty, so its format could not be checked/],
  ])('a log %s: the probe commented out, a TODO with the log_format it expects, rules on health', async (_name, content, problem) => {
    const log = join(dir, 'access.log');
    await writeFile(log, content);
    const { config, todo, text } = await init({ accessLog: log });
    expect(config.probes.map((p) => p.type)).not.toContain('access_log');
    expect(config.rules.error_rate?.probe).toBe('health');
    expect(todo.find((t) => t.startsWith(`access log ${log}`))).toMatch(problem);
    expect(text).toContain(`#   log_format timed '${NGINX_TIMED_FORMAT}';`);
    expect(text).toContain(`#   access_log ${log} timed;`);
    expect(text).toContain('  # - name: access-log');
    expect(text).toContain('  #   type: access_log');
    expect(text).toContain('probe: access-log once it is enabled');
  });

  it('a given log that does not exist is a TODO, not an error', async () => {
    const log = join(dir, 'nope.log');
    const { todo } = await init({ accessLog: log });
    expect(todo).toContain(`access log ${log} does not exist; the access_log probe is written commented out`);
  });

  it('no access log given and none found: nothing about one', async () => {
    const { text } = await init({}, [join(dir, 'missing.log')]);
    expect(text).not.toContain('access_log');
  });
});
