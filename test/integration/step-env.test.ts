/**
 * Item 6 of issue 13: a step's program gets a minimal environment (not the guard's API token,
 * database password or webhook URL), and what a step prints or fails with leaves the guard
 * redacted on every path: the record (JSON and Markdown), /status, a notification delivered to a
 * real local webhook receiver, and the log. Real daemon (in process), real programs, real MariaDB.
 *
 * The plan: step 1 dumps its environment to a file and prints the database password (read from
 * a file the guard never gave it); step 2 prints it to stderr and fails, so it becomes the
 * rollback's failure (/status, the rollback_failed notification, the record's failure).
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

const API_TOKEN = 'api-token-env-5e7c9a1b3d5f7e9c';
const TOKEN_ENV = 'RG_STEP_ENV_TEST_TOKEN';
const PASSWORD_ENV = 'RG_STEP_ENV_TEST_DB_PASSWORD';
const HOOK_ENV = 'RG_STEP_ENV_TEST_HOOK_URL';
const HOOK_SEGMENT = 'HOOKSEGMENT9d8c7b6a5f4e3d2c';

let dir: string;
let app: http.Server;
let hook: http.Server;
let versionFile: string;
let envDump: string;
let hookUrl: string;
const deliveries: { kind: string; message: string; raw: string }[] = [];
let daemon: RunningDaemon | undefined;
const logs: string[] = [];

async function listen(server: http.Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'rg-stepenv-'));
  versionFile = join(dir, 'app-version');
  envDump = join(dir, 'step-env.txt');
  await writeFile(versionFile, 'v1');
  const db = mysqlConfig();
  // The secret the steps echo: the guard knows it (its mysql probe's password), the steps read it here.
  const leaked = join(dir, 'leaked-password');
  await writeFile(leaked, db.password);
  await chmod(leaked, 0o600);

  app = http.createServer(async (_req, res) => {
    const version = (await readFile(versionFile, 'utf8')).trim();
    res.writeHead(version === 'v2' ? 500 : 200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ version }));
  });
  hook = http.createServer((req, res) => {
    let body = '';
    req.on('data', (chunk: Buffer) => (body += chunk.toString()));
    req.on('end', () => {
      const event = JSON.parse(body) as { kind: string; message: string };
      deliveries.push({ kind: event.kind, message: event.message, raw: body });
      res.end('ok');
    });
  });
  const [appPort, hookPort] = await Promise.all([listen(app), listen(hook)]);
  hookUrl = `http://127.0.0.1:${hookPort}/hooks/${HOOK_SEGMENT}`;
  process.env[TOKEN_ENV] = API_TOKEN;
  process.env[PASSWORD_ENV] = db.password;
  process.env[HOOK_ENV] = hookUrl;

  const yaml = stringify({
    service: 'web',
    state_dir: join(dir, 'state'),
    server: { host: '127.0.0.1', port: 0, token_env: TOKEN_ENV },
    log: { level: 'debug', format: 'json' },
    probes: [
      { name: 'health', type: 'http', url: `http://127.0.0.1:${appPort}/health`, timeout: '1s', version_path: 'version' },
      { name: 'db', type: 'mysql', host: db.host, port: db.port, user: db.user, password_env: PASSWORD_ENV, timeout: '2s' },
    ],
    schedule: { interval: '200ms', fast_interval: '100ms', fast_for: '1m' },
    release: { version_probe: 'health', window: '1m', initial_delay: '1s', settle: '5m' },
    rules: { health: { probe: 'health', consecutive: 3 } },
    rollback: {
      steps: [
        { type: 'command', command: ['/bin/sh', '-c', 'env > "$0"; echo "db password is $(cat "$1")"', envDump, leaked], env: { STEP_GIVEN: 'given-by-config' }, timeout: '10s' },
        { type: 'command', command: ['/bin/sh', '-c', 'echo "cannot log in with $(cat "$0")" >&2; exit 3', leaked], timeout: '10s' },
      ],
    },
    verification: { probe: 'health', passes: 3, timeout: '20s' },
    notifiers: [{ type: 'webhook', name: 'ops', url_env: HOOK_ENV, format: 'json', timeout: '2s', retries: 2 }],
  });
  const stream = new PassThrough();
  stream.on('data', (chunk: Buffer) => logs.push(...chunk.toString().split('\n').filter(Boolean)));
  daemon = await startDaemon(parseConfigText(yaml, 'step-env.yaml'), { log: createLogger({ level: 'debug', format: 'json', stream }) });
});

afterAll(async () => {
  await daemon?.stop();
  for (const name of [TOKEN_ENV, PASSWORD_ENV, HOOK_ENV]) delete process.env[name];
  for (const server of [app, hook]) {
    server?.closeAllConnections();
    await new Promise((resolve) => server?.close(resolve));
  }
  await rm(dir, { recursive: true, force: true });
});

describe('step environment and step output redaction', () => {
  it('a step sees none of the guard secrets; what it echoes is redacted in record, /status, notification and log', async () => {
    const d = daemon!;
    const password = mysqlConfig().password;
    await waitFor(() => d.guard.current.stable === 'v1', 10_000);
    await writeFile(versionFile, 'v2');
    await waitFor(() => d.guard.current.phase === 'failed', 30_000);

    // The child's environment: the minimal base and what its config gave it, no guard secret.
    const env = await readFile(envDump, 'utf8');
    expect(env).toMatch(/^PATH=/m);
    expect(env).toContain('STEP_GIVEN=given-by-config');
    for (const [name, secret] of [[TOKEN_ENV, API_TOKEN], [PASSWORD_ENV, password], [HOOK_ENV, hookUrl]] as const) {
      expect(env, name).not.toContain(name);
      expect(env, name).not.toContain(secret);
    }

    // The record, JSON and Markdown: step 1's output and step 2's failure, redacted.
    const records = join(dir, 'state', 'rollbacks');
    await waitFor(async () => (await readdir(records)).some((n) => n.endsWith('.md')), 10_000);
    const names = await readdir(records);
    const json = await readFile(join(records, names.find((n) => n.endsWith('.json'))!), 'utf8');
    const markdown = await readFile(join(records, names.find((n) => n.endsWith('.md'))!), 'utf8');
    for (const text of [json, markdown]) {
      expect(text).toContain('db password is [redacted]');
      expect(text).toContain('cannot log in with [redacted]');
    }

    // /status: the failure quotes step 2's stderr.
    const status = await (await fetch(`${d.url}/status`)).text();
    expect(status).toContain('cannot log in with [redacted]');

    // The notification of the failure, as the webhook receiver got it.
    await waitFor(() => deliveries.some((e) => e.kind === 'rollback_failed'), 15_000);
    expect(deliveries.find((e) => e.kind === 'rollback_failed')!.message).toContain('cannot log in with [redacted]');

    // The log: the progress line and the failure.
    const text = logs.join('\n');
    expect(text).toContain('db password is [redacted]');
    expect(text).toContain('cannot log in with [redacted]');

    const places: [string, string][] = [['record json', json], ['record markdown', markdown], ['GET /status', status], ['log', text], ...deliveries.map((e, i): [string, string] => [`notification ${i + 1}`, e.raw])];
    places.push(['GET /history', await (await fetch(`${d.url}/history`)).text()]);
    for (const [where, content] of places) {
      for (const secret of [password, API_TOKEN, hookUrl, HOOK_SEGMENT]) {
        if (content.includes(secret)) expect.fail(`a secret appears in ${where}: ${content.slice(Math.max(0, content.indexOf(secret) - 100), content.indexOf(secret) + 100)}`);
      }
    }
  }, 60_000);
});
