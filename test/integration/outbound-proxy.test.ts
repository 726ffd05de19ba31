/**
 * Outbound HTTP honours the host's proxy settings, as curl and the host's other tools do: a
 * webhook to an HTTPS receiver goes through HTTPS_PROXY by CONNECT tunnel, a plain-HTTP one
 * through HTTP_PROXY, NO_PROXY sends it direct; the CLI's client never sends its loopback
 * daemon through a proxy. A local forward proxy records what it was asked for; the HTTPS
 * receiver uses a self-signed certificate made with openssl, trusted by the child process that
 * sends (NODE_EXTRA_CA_CERTS is read at start-up only, hence the child).
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ApiClient } from '../../src/api/client.js';
import { routesFromConfig } from '../../src/notify/dispatcher.js';
import { notifiersSchema, type WebhookNotifierConfig } from '../../src/notify/schema.js';
import { createWebhookNotifier } from '../../src/notify/webhook.js';
import { startForwardProxy, type ForwardProxy } from '../helpers/forward-proxy.js';

const run = promisify(execFile);
const PROXY_VARS = ['HTTP_PROXY', 'HTTPS_PROXY', 'NO_PROXY', 'http_proxy', 'https_proxy', 'no_proxy'];

let dir: string;
let proxy: ForwardProxy;
let received: string[];
let plain: http.Server;
let secure: https.Server;
const saved = Object.fromEntries(PROXY_VARS.map((name) => [name, process.env[name]]));

const receiver = (req: http.IncomingMessage, res: http.ServerResponse) => {
  let body = '';
  req.on('data', (chunk: Buffer) => (body += chunk.toString()));
  req.on('end', () => {
    received.push(body ? `${req.url} ${(JSON.parse(body) as { kind: string }).kind}` : `${req.method} ${req.url}`);
    res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
  });
};
const portOf = (server: http.Server | https.Server) => (server.address() as AddressInfo).port;
const event = { kind: 'rollback_started', severity: 'critical', message: 'rolling back v2 -> v1', service: 'web', at: Date.now() } as const;
const notifier = (url: string) => createWebhookNotifier(notifiersSchema.parse([{ type: 'webhook', name: 'ops', url, timeout: '5s' }])[0] as WebhookNotifierConfig);

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'rg-proxy-'));
  // A certificate for "localhost", signed by itself: the child trusts it as its CA.
  await run('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost',
    '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')]);
  plain = http.createServer(receiver);
  secure = https.createServer({ key: await readFile(join(dir, 'key.pem')), cert: await readFile(join(dir, 'cert.pem')) }, receiver);
  await new Promise<void>((resolve) => plain.listen(0, '127.0.0.1', resolve));
  await new Promise<void>((resolve) => secure.listen(0, '127.0.0.1', resolve));
  proxy = await startForwardProxy();
});

afterEach(() => {
  for (const name of PROXY_VARS) {
    if (saved[name] === undefined) delete process.env[name];
    else process.env[name] = saved[name];
  }
  received = [];
  proxy.seen.length = 0;
});

afterAll(async () => {
  await proxy?.close();
  plain?.closeAllConnections();
  secure?.closeAllConnections();
  await new Promise((resolve) => plain?.close(resolve));
  await new Promise((resolve) => secure?.close(resolve));
  await rm(dir, { recursive: true, force: true });
});

received = [];

describe('outbound HTTP through the host proxy', () => {

  it('a webhook to an HTTPS receiver goes through HTTPS_PROXY by CONNECT and is delivered', async () => {
    const url = `https://localhost:${portOf(secure)}/hooks/abc`;
    const { stdout } = await run(process.execPath, ['--import', 'tsx', join('test', 'helpers', 'send-webhook.ts'), url], {
      env: { ...process.env, HTTPS_PROXY: proxy.url, NO_PROXY: '', NODE_EXTRA_CA_CERTS: join(dir, 'cert.pem') },
    });
    expect(stdout.trim()).toBe('delivered');
    expect(proxy.seen).toEqual([`CONNECT localhost:${portOf(secure)}`]);
    expect(received).toEqual(['/hooks/abc rollback_started']);
  });

  it('a webhook to a plain-HTTP receiver goes through HTTP_PROXY; NO_PROXY sends it direct', async () => {
    process.env.HTTP_PROXY = proxy.url;
    const url = `http://127.0.0.1:${portOf(plain)}/hooks/plain`;
    await notifier(url).send(event, new AbortController().signal);
    expect(proxy.seen).toEqual([`POST ${url}`]);

    process.env.NO_PROXY = '127.0.0.1';
    await notifier(url).send(event, new AbortController().signal);
    expect(proxy.seen).toHaveLength(1);
    expect(received).toEqual(['/hooks/plain rollback_started', '/hooks/plain rollback_started']);
  });

  it('the notifier presets go through the proxy too (PagerDuty, Teams)', async () => {
    process.env.HTTP_PROXY = proxy.url;
    const base = `http://127.0.0.1:${portOf(plain)}`;
    const presets = routesFromConfig(notifiersSchema.parse([
      { type: 'pagerduty', name: 'pd', routing_key_env: 'PD_KEY', url: `${base}/v2/enqueue` },
      { type: 'teams', name: 'teams', url_env: 'TEAMS_URL' },
    ]), { PD_KEY: 'R0UT1NGkeySECRET0123456789abcdef', TEAMS_URL: `${base}/teams/hook` });
    for (const { notifier: preset } of presets) await preset.send({ ...event, kind: 'rollback_failed' }, new AbortController().signal);
    expect(proxy.seen).toEqual([`POST ${base}/v2/enqueue`, `POST ${base}/teams/hook`]);
    expect(received.map((r) => r.split(' ')[0])).toEqual(['/v2/enqueue', '/teams/hook']);
  });

  it('a proxy that refuses the tunnel is a clear, retryable delivery failure', async () => {
    process.env.HTTPS_PROXY = 'http://127.0.0.1:9'; // discard port: nothing listens
    const error = await notifier(`https://localhost:${portOf(secure)}/hooks/abc`).send(event, new AbortController().signal).catch((e: unknown) => e as Error & { retryable: boolean });
    expect(error).toMatchObject({ message: 'webhook "ops": connection refused (ECONNREFUSED)', retryable: true });
  });

  it("the CLI's client reaches its loopback daemon directly even when HTTP_PROXY is set", async () => {
    process.env.HTTP_PROXY = proxy.url;
    const client = new ApiClient({ baseUrl: `http://127.0.0.1:${portOf(plain)}` });
    expect(await client.healthz()).toEqual({ ok: true });
    expect(proxy.seen).toEqual([]);
    expect(received).toEqual(['GET /healthz']);
  });
});
