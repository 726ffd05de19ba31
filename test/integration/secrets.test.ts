/**
 * Secrets stay secret: a guard with every kind of credential (the API token in a file, a MySQL
 * password from the environment, a webhook URL from the environment with an Authorization header,
 * a Prometheus Authorization header from a file) is driven through a release and a rollback while
 * its dependencies misbehave in ways that invite leaks (a Prometheus and a webhook receiver that
 * echo the credentials they were sent back in their error bodies). Then every log line (debug),
 * every file under state_dir and every GET endpoint is searched for each secret.
 */
import { chmod, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
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
import { mysqlConfig } from '../helpers/services.js';

const API_TOKEN = 'api-token-7f3a9c1e5b2d4f6a8c0e';
const PROM_TOKEN = 'prom-bearer-4d2c8e6a0f1b3d5c';
const PROM_HEADER = `Bearer ${PROM_TOKEN}`;
const HOOK_SEGMENT = 'XOXB7e1d3c5b9a2f4e6d8c0b';
const HOOK_HEADER_TOKEN = 'hook-header-2b4d6f8a0c1e3d5f';
const PASSWORD_ENV = 'RG_SECRETS_TEST_DB_PASSWORD';
const HOOK_ENV = 'RG_SECRETS_TEST_HOOK_URL';

let dir: string;
let app: http.Server;
let prom: http.Server;
let hook: http.Server;
let version = 'v1';
let versionFile: string;
const promAuth: (string | undefined)[] = [];
const hookDeliveries: { auth: string | undefined; kind: string }[] = [];
let hookUrl: string;
let daemon: RunningDaemon | undefined;
const logs: string[] = [];

async function listen(server: http.Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
}

/**
 * Every file under `root`, recursively, with its content. The guard is still running, so a
 * temp file listed a moment ago may have been renamed onto its final name since: such a file
 * is skipped (its content is read under the final name).
 */
async function filesUnder(root: string): Promise<{ path: string; text: string }[]> {
  const out: { path: string; text: string }[] = [];
  for (const entry of await readdir(root, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile()) continue;
    const path = join(entry.parentPath, entry.name);
    try {
      out.push({ path, text: await readFile(path, 'latin1') });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
  }
  return out;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'rg-secrets-'));
  versionFile = join(dir, 'app-version');
  await writeFile(versionFile, 'v1');

  // The app: reports the version in its version file; v2 answers 500.
  app = http.createServer(async (_req, res) => {
    version = (await readFile(versionFile, 'utf8')).trim();
    res.writeHead(version === 'v2' ? 500 : 200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ status: version === 'v2' ? 'down' : 'ok', version }));
  });
  // A Prometheus that refuses the first queries and echoes the credential it got, then answers.
  prom = http.createServer((req, res) => {
    promAuth.push(req.headers.authorization);
    if (promAuth.length <= 3) {
      res.writeHead(401, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ status: 'error', errorType: 'unauthorized', error: `bad credentials "${req.headers.authorization}" (token ${PROM_TOKEN})` }));
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ status: 'success', data: { resultType: 'vector', result: [{ metric: {}, value: [Date.now() / 1000, '0'] }] } }));
  });
  // A webhook receiver that fails the first deliveries, echoing the URL parts and the header it got.
  hook = http.createServer((req, res) => {
    let body = '';
    req.on('data', (chunk: Buffer) => (body += chunk.toString()));
    req.on('end', () => {
      const kind = (JSON.parse(body) as { kind: string }).kind;
      hookDeliveries.push({ auth: req.headers.authorization, kind });
      if (hookDeliveries.length <= 2) {
        res.writeHead(500);
        res.end(`no such hook ${req.url} (token ${HOOK_SEGMENT}); auth ${req.headers.authorization} / ${HOOK_HEADER_TOKEN}`);
        return;
      }
      res.end('ok');
    });
  });
  const [appPort, promPort, hookPort] = await Promise.all([listen(app), listen(prom), listen(hook)]);
  hookUrl = `http://127.0.0.1:${hookPort}/services/T0AAAA/${HOOK_SEGMENT}?sig=${HOOK_SEGMENT}`;

  const tokenFile = join(dir, 'api-token');
  await writeFile(tokenFile, `${API_TOKEN}\n`);
  await chmod(tokenFile, 0o600);
  const promAuthFile = join(dir, 'prom-auth');
  await writeFile(promAuthFile, `${PROM_HEADER}\n`);
  await chmod(promAuthFile, 0o600);
  const db = mysqlConfig();
  process.env[PASSWORD_ENV] = db.password;
  process.env[HOOK_ENV] = hookUrl;

  const yaml = stringify({
    service: 'web',
    state_dir: join(dir, 'state'),
    server: { host: '127.0.0.1', port: 0, token_file: tokenFile },
    log: { level: 'debug', format: 'json' },
    probes: [
      { name: 'health', type: 'http', url: `http://127.0.0.1:${appPort}/health`, timeout: '1s', version_path: 'version' },
      { name: 'db', type: 'mysql', host: db.host, port: db.port, user: db.user, password_env: PASSWORD_ENV, timeout: '2s' },
      { name: 'prom', type: 'prometheus', url: `http://127.0.0.1:${promPort}`, queries: { error_ratio: 'sum(rate(errors[1m])) / sum(rate(requests[1m]))' }, auth_header_file: promAuthFile, timeout: '1s' },
    ],
    schedule: { interval: '200ms', fast_interval: '100ms', fast_for: '1m' },
    release: { version_probe: 'health', window: '1m', initial_delay: '1s', settle: '5m' },
    rules: {
      health: { probe: 'health', consecutive: 3 },
      db_latency: { probe: 'db', threshold: '2s', for: '10s' },
      error_rate: { probe: 'prom', threshold: 0.5, window: '10s' },
    },
    rollback: { steps: [{ type: 'command', command: ['/bin/sh', '-c', 'printf "%s" "$1" > "$0"', versionFile, '{to}'], timeout: '10s' }] },
    verification: { probe: 'health', passes: 3, timeout: '20s' },
    notifiers: [{ type: 'webhook', name: 'ops', url_env: HOOK_ENV, format: 'json', timeout: '1s', retries: 3, headers: { Authorization: `Bearer ${HOOK_HEADER_TOKEN}` } }],
  });
  const stream = new PassThrough();
  stream.on('data', (chunk: Buffer) => logs.push(...chunk.toString().split('\n').filter(Boolean)));
  daemon = await startDaemon(parseConfigText(yaml, 'secrets.yaml'), { log: createLogger({ level: 'debug', format: 'json', stream }) });
});

afterAll(async () => {
  await daemon?.stop();
  delete process.env[PASSWORD_ENV];
  delete process.env[HOOK_ENV];
  for (const server of [app, prom, hook]) {
    server?.closeAllConnections();
    await new Promise((resolve) => server?.close(resolve));
  }
  await rm(dir, { recursive: true, force: true });
});

describe('secrets never leak', () => {
  it('through a release, a failing Prometheus, a failing webhook and a rollback: not in logs, files or the API', async () => {
    const d = daemon!;
    await waitFor(() => d.guard.current.stable === 'v1', 10_000);

    // Announce the release with the token (so the token travels), then make it bad.
    const announced = await fetch(`${d.url}/releases`, {
      method: 'POST',
      headers: { authorization: `Bearer ${API_TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ version: 'v2', deployedBy: 'ci' }),
    });
    expect(announced.status).toBe(200);
    // A wrong token too: its refusal is logged, the token it carried is not.
    expect((await fetch(`${d.url}/pause`, { method: 'POST', headers: { authorization: `Bearer ${API_TOKEN}-wrong` } })).status).toBe(401);
    await writeFile(versionFile, 'v2');
    await waitFor(() => d.guard.current.phase === 'rolled_back', 30_000);
    expect(d.guard.current).toMatchObject({ stable: 'v1', running: 'v1', rollback: { from: 'v2', to: 'v1' } });
    expect((await readFile(versionFile, 'utf8')).trim()).toBe('v1');
    await waitFor(async () => (await readdir(join(dir, 'state', 'rollbacks'))).some((n) => n.endsWith('.md')), 5_000);
    // The notifier got through after its failures, and the credentials were really used.
    await waitFor(() => hookDeliveries.some((h) => h.kind === 'rollback_finished'), 15_000);
    expect(hookDeliveries.every((h) => h.auth === `Bearer ${HOOK_HEADER_TOKEN}`)).toBe(true);
    expect(promAuth.length).toBeGreaterThan(3);
    expect(promAuth.every((a) => a === PROM_HEADER)).toBe(true);
    // The mysql probe logged in, or db_latency would stay blind. Right after the rollback the rules
    // judge only samples of the version that came back, and the db probe runs every second: wait
    // for its next sample instead of reading the state at one instant.
    await waitFor(() => !d.guard.current.blind.includes('db_latency'), 5_000);
    expect(d.guard.current.blind).not.toContain('db_latency');

    // The leaky paths were taken: failures of both were logged (scrubbed).
    const text = logs.join('\n');
    expect(text).toMatch(/prometheus error \(unauthorized\)/);
    expect(text).toMatch(/notification attempt failed: retrying/);

    const secrets: [string, string][] = [
      ['API token', API_TOKEN],
      ['MySQL password', mysqlConfig().password],
      ['webhook URL', hookUrl],
      ['webhook URL path', new URL(hookUrl).pathname],
      ['webhook URL secret segment', HOOK_SEGMENT],
      ['webhook Authorization token', HOOK_HEADER_TOKEN],
      ['Prometheus Authorization header', PROM_HEADER],
      ['Prometheus token', PROM_TOKEN],
    ];
    const places: [string, string][] = [
      ...logs.map((line, i): [string, string] => [`log line ${i + 1}`, line]),
      ...(await filesUnder(join(dir, 'state'))).map(({ path, text: content }): [string, string] => [path, content]),
    ];
    for (const path of ['/status', '/history', '/preflight', '/metrics', '/healthz']) {
      const response = await fetch(`${d.url}${path}`);
      expect(response.status, path).toBe(200);
      places.push([`GET ${path}`, await response.text()]);
    }
    expect(places.filter(([where]) => where.endsWith('.json')).length).toBeGreaterThan(1);
    for (const [name, secret] of secrets) {
      for (const [where, content] of places) {
        if (content.includes(secret)) expect.fail(`the ${name} appears in ${where}: ${content.slice(Math.max(0, content.indexOf(secret) - 120), content.indexOf(secret) + 120)}`);
      }
    }
  }, 60_000);
});
