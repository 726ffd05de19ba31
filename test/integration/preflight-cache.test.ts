/**
 * Issue 13 item 3 (first half): `GET /preflight` is open to anyone who reaches the port and runs
 * every step's readiness check. Many concurrent GETs must cause one run, later GETs within
 * server.preflight_cache answer that result (saying when it was taken), and only a caller with the
 * token can force a new run (POST, or GET ?fresh=1).
 *
 * The readiness check counted is real work: a kubernetes step whose `kubectl` is a script that
 * appends a line to a journal each time it is run (and takes 300 ms, as a real API call would).
 */
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { parseConfigText } from '../../src/config/load.js';
import { createLogger } from '../../src/log.js';
import { startDaemon, type RunningDaemon } from '../../src/shell/daemon.js';
import { waitFor } from '../helpers/pm2-sandbox.js';

const TOKEN = 'preflight-test-token-0123456789abcdef';
let dir: string;
let journal: string;
let app: Server;
let version = 'v1';
let daemon: RunningDaemon | undefined;

/** kubectl runs so far (one per readiness check of the step). */
async function kubectlRuns(): Promise<number> {
  return (await readFile(journal, 'utf8')).split('\n').filter(Boolean).length;
}

async function preflight(init: RequestInit & { query?: string } = {}): Promise<{ status: number; age: string | null; body: Record<string, unknown> }> {
  const response = await fetch(`${daemon!.url}/preflight${init.query ?? ''}`, init);
  return { status: response.status, age: response.headers.get('age'), body: (await response.json()) as Record<string, unknown> };
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'rg-preflight-'));
  journal = join(dir, 'kubectl.journal');
  await writeFile(journal, '');
  const kubectl = join(dir, 'kubectl');
  await writeFile(kubectl, `#!/bin/sh\necho "$*" >> '${journal}'\nsleep 0.3\necho deployment.apps/web\n`);
  await chmod(kubectl, 0o755);
  const tokenFile = join(dir, 'token');
  await writeFile(tokenFile, `${TOKEN}\n`, { mode: 0o600 });
  app = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ version }));
  });
  await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
  const yaml = stringify({
    service: 'web',
    state_dir: join(dir, 'state'),
    server: { host: '127.0.0.1', port: 0, token_file: tokenFile, preflight_cache: '30s' },
    log: { level: 'debug', format: 'json' },
    probes: [{ name: 'health', type: 'http', url: `http://127.0.0.1:${(app.address() as AddressInfo).port}/health`, timeout: '1s', version_path: 'version' }],
    schedule: { interval: '200ms', fast_interval: '200ms', fast_for: '1m' },
    release: { version_probe: 'health', window: '10m', initial_delay: '1s', settle: '5m' },
    rules: { health: { probe: 'health', consecutive: 3 } },
    rollback: { steps: [{ type: 'kubernetes', deployment: 'web', kubectl, timeout: '10s' }] },
    verification: { probe: 'health', passes: 3, timeout: '20s' },
  });
  daemon = await startDaemon(parseConfigText(yaml, 'preflight.yaml'), { log: createLogger({ level: 'debug', format: 'json', stream: new PassThrough() }) });
});

afterAll(async () => {
  await daemon?.stop();
  app?.closeAllConnections();
  await new Promise((resolve) => app?.close(resolve));
  await rm(dir, { recursive: true, force: true });
});

describe('GET /preflight', () => {
  it('runs once for many concurrent requests, answers from the cache after, and runs again only for the token', async () => {
    const d = daemon!;
    await waitFor(() => d.guard.current.stable === 'v1', 15_000);
    // A release: now there is something to roll back to, so the step's check really runs.
    version = 'v2';
    await waitFor(() => d.guard.current.release?.version === 'v2', 15_000);
    // The window's own preflight (not through the API) runs once when the window opens.
    let settled = -1;
    await waitFor(async () => {
      const now = await kubectlRuns();
      const done = now > 0 && now === settled;
      settled = now;
      return done;
    }, 15_000, 1000);
    const perRun = settled;
    expect(perRun).toBeGreaterThan(0);

    const before = await kubectlRuns();
    const answers = await Promise.all(Array.from({ length: 50 }, () => preflight()));
    expect(answers.every((a) => a.status === 200)).toBe(true);
    expect((await kubectlRuns()) - before).toBe(perRun);
    // One result for all of them, saying when it was taken.
    const taken = new Set(answers.map((a) => a.body.checkedAt));
    expect(taken.size).toBe(1);
    expect(answers[0]!.body).toMatchObject({ from: 'v2', to: 'v1', maxAgeSeconds: 30 });
    expect(answers.filter((a) => a.body.cached === false)).toHaveLength(1);

    // Within server.preflight_cache: answered from the cache, no new run.
    const later = await Promise.all(Array.from({ length: 20 }, () => preflight()));
    expect((await kubectlRuns()) - before).toBe(perRun);
    expect(later.every((a) => a.body.cached === true && a.body.checkedAt === answers[0]!.body.checkedAt && a.age !== null)).toBe(true);

    // Forcing a run needs the token.
    expect((await preflight({ query: '?fresh=1' })).status).toBe(401);
    expect((await preflight({ method: 'POST' })).status).toBe(401);
    expect((await kubectlRuns()) - before).toBe(perRun);
    const forced = await Promise.all([
      preflight({ query: '?fresh=1', headers: { authorization: `Bearer ${TOKEN}` } }),
      preflight({ method: 'POST', headers: { authorization: `Bearer ${TOKEN}` } }),
    ]);
    expect(forced.map((f) => f.status)).toEqual([200, 200]);
    // Two forced requests at once still share one run.
    expect((await kubectlRuns()) - before).toBe(2 * perRun);
    expect(forced[0]!.body.checkedAt).not.toBe(answers[0]!.body.checkedAt);
  }, 90_000);
});
