/**
 * The webhook notifier against a local node:http receiver: JSON and Slack payload shapes, the URL
 * from a file or the environment, a retry through the dispatcher, and the URL (a secret) never in
 * an error message.
 */
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { NotificationDispatcher, routesFromConfig, type LogFn } from './dispatcher.js';
import { notifiersSchema, type NotifiersInput, type WebhookNotifierConfig } from './schema.js';
import type { NotificationEvent } from './types.js';
import { createWebhookNotifier, NotifyError } from './webhook.js';

const SECRET = 'T0001/B0002/XXsecretTOKENxx';

interface Received {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: unknown;
}

let server: http.Server;
let base: string;
let received: Received[] = [];
/** Statuses to answer with, in order; 200 once exhausted. */
let replies: number[] = [];
let dir: string;
const hanging = new Set<http.ServerResponse>();

beforeAll(async () => {
  server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      received.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: JSON.parse(text) });
      if (req.url?.includes('hang')) {
        hanging.add(res);
        return;
      }
      const status = replies.shift() ?? 200;
      // A careless receiver echoes what it got into its error answer: path and headers.
      res.writeHead(status, { 'content-type': 'text/plain' });
      res.end(status === 200 ? 'ok' : `no such hook ${req.url} (key ${String(req.headers['x-api-key'])})`);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  dir = await mkdtemp(path.join(os.tmpdir(), 'rg-webhook-test-'));
});

afterAll(async () => {
  for (const res of hanging) res.destroy();
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
  await rm(dir, { recursive: true, force: true });
});

beforeEach(() => {
  received = [];
  replies = [];
});

const parse = (input: NotifiersInput) => notifiersSchema.parse(input);
const webhook = (extra: Record<string, unknown>): WebhookNotifierConfig =>
  parse([{ type: 'webhook', name: 'ops', ...extra }])[0] as WebhookNotifierConfig;
const never = () => new AbortController().signal;

const rollback: NotificationEvent = {
  kind: 'rollback_started',
  severity: 'critical',
  message: 'rolling back v2 -> v1: error_rate 12 % > 5 % <breach>',
  service: 'web',
  at: Date.UTC(2026, 0, 24, 10, 0, 0),
  release: { version: 'v2', previous: 'v1' },
};

describe('schema', () => {
  it('defaults and validation', () => {
    expect(webhook({ url: `${base}/hook` })).toEqual({
      type: 'webhook',
      name: 'ops',
      url: `${base}/hook`,
      format: 'json',
      headers: {},
      min_severity: 'info',
      timeout: 5000,
      retries: 3,
    });
    const problems = (input: unknown) => notifiersSchema.safeParse(input).error?.issues.map((i) => `${i.path.join('.')}: ${i.message}`) ?? [];
    expect(problems([{ type: 'webhook', name: 'a' }])).toEqual(['0.url: set exactly one of url, url_file or url_env']);
    expect(problems([{ type: 'webhook', name: 'a', url: `${base}/`, url_env: 'HOOK' }])).toEqual(['0.url: set exactly one of url, url_file or url_env']);
    expect(problems([{ type: 'webhook', name: 'a', url_env: 'HOOK', events: ['rollback_strated'] }]).join()).toMatch(/^0\.events\.0: /);
    expect(problems([{ type: 'webhook', name: 'a', url_env: 'HOOK', format: 'teams' }]).join()).toMatch(/^0\.format: /);
    expect(problems([{ type: 'email', name: 'a' }]).length).toBe(1);
    expect(problems([{ type: 'webhook', name: 'a', url_env: 'A' }, { type: 'webhook', name: 'a', url_env: 'B' }])).toEqual(['1.name: duplicate notifier name "a"']);
    expect(notifiersSchema.parse(undefined)).toEqual([]);
  });
});

describe('webhook notifier: payload formats', () => {
  it('posts the event as JSON with an ISO time and the custom headers', async () => {
    const notifier = createWebhookNotifier(webhook({ url: `${base}/hooks/json`, headers: { 'x-api-key': 'k-123456' } }));
    await notifier.send(rollback, never());
    expect(received).toHaveLength(1);
    const [request] = received;
    expect(request?.method).toBe('POST');
    expect(request?.url).toBe('/hooks/json');
    expect(request?.headers['content-type']).toBe('application/json; charset=utf-8');
    expect(request?.headers['x-api-key']).toBe('k-123456');
    expect(request?.body).toEqual({
      kind: 'rollback_started',
      severity: 'critical',
      message: 'rolling back v2 -> v1: error_rate 12 % > 5 % <breach>',
      service: 'web',
      at: '2026-01-24T10:00:00.000Z',
      release: { version: 'v2', previous: 'v1' },
    });
    await notifier.send({ ...rollback, kind: 'promoted', severity: 'info', release: undefined }, never());
    expect(received[1]?.body).toMatchObject({ kind: 'promoted', release: null });
  });

  it('posts a Slack-compatible message: text and an attachment coloured by severity with service, kind and release', async () => {
    const notifier = createWebhookNotifier(webhook({ url: `${base}/services/slack`, format: 'slack' }));
    await notifier.send(rollback, never());
    await notifier.send({ ...rollback, kind: 'promoted', severity: 'info', message: 'v3 promoted', release: { version: 'v3', previous: null } }, never());
    expect(received[0]?.body).toEqual({
      text: '[critical] web: rolling back v2 -&gt; v1: error_rate 12 % &gt; 5 % &lt;breach&gt;',
      attachments: [
        {
          color: '#a30200',
          fallback: '[critical] web: rolling back v2 -&gt; v1: error_rate 12 % &gt; 5 % &lt;breach&gt;',
          text: 'rolling back v2 -&gt; v1: error_rate 12 % &gt; 5 % &lt;breach&gt;',
          fields: [
            { title: 'Service', value: 'web', short: true },
            { title: 'Kind', value: 'rollback_started', short: true },
            { title: 'Severity', value: 'critical', short: true },
            { title: 'Release', value: 'v2 (previous: v1)', short: true },
          ],
          footer: 'release-guard',
          ts: Math.floor(rollback.at / 1000),
        },
      ],
    });
    expect(received[1]?.body).toMatchObject({
      text: '[info] web: v3 promoted',
      attachments: [{ color: '#2eb886', fields: expect.arrayContaining([{ title: 'Release', value: 'v3 (previous: none)', short: true }]) }],
    });
  });
});

describe('webhook notifier: URLs and errors', () => {
  it('reads the URL from a file or the environment, and refuses unsafe or missing ones without showing them', async () => {
    const file = path.join(dir, 'hook-url');
    await writeFile(file, `${base}/from-file/${SECRET}\n`, { mode: 0o600 });
    await createWebhookNotifier(webhook({ url_file: file })).send(rollback, never());
    await createWebhookNotifier(webhook({ url_env: 'RG_TEST_HOOK' }), { RG_TEST_HOOK: `${base}/from-env` }).send(rollback, never());
    expect(received.map((r) => r.url)).toEqual([`/from-file/${SECRET}`, '/from-env']);

    await chmod(file, 0o644);
    expect(() => createWebhookNotifier(webhook({ url_file: file }))).toThrow(
      `notifier "ops": url_file ${file} is readable by its group or by everyone; run: chmod go-r ${file}`,
    );
    expect(() => createWebhookNotifier(webhook({ url_file: path.join(dir, 'missing') }))).toThrow(/url_file .*missing cannot be read \(ENOENT\)/);
    expect(() => createWebhookNotifier(webhook({ url_env: 'RG_TEST_HOOK' }), {})).toThrow(
      'notifier "ops": environment variable RG_TEST_HOOK (url_env) is not set',
    );
    try {
      createWebhookNotifier(webhook({ url_env: 'RG_TEST_HOOK' }), { RG_TEST_HOOK: `ftp://x/${SECRET}` });
      expect.unreachable();
    } catch (error) {
      expect((error as Error).message).toBe('notifier "ops": url_env RG_TEST_HOOK does not hold an http:// or https:// URL');
    }
  });

  it('never shows the URL or header values in errors, and says whether a retry can help', async () => {
    const url = `${base}/hooks/${SECRET}?token=querysecret1`;
    const notifier = createWebhookNotifier(webhook({ url, headers: { 'x-api-key': 'header-secret-42' }, timeout: '200ms' }));
    const errors: NotifyError[] = [];
    const attempt = async (n = notifier, signal = never()) => {
      const error = await n.send(rollback, signal).then(() => undefined, (e: unknown) => e);
      expect(error).toBeInstanceOf(NotifyError);
      errors.push(error as NotifyError);
      return error as NotifyError;
    };

    replies = [500];
    expect(await attempt()).toMatchObject({ retryable: true, code: 'notify_rejected' });
    replies = [404];
    expect(await attempt()).toMatchObject({ retryable: false });
    replies = [429];
    expect(await attempt()).toMatchObject({ retryable: true });
    expect(errors[0]?.message).toBe('webhook "ops": receiver answered 500: no such hook *** (key ***)');

    const hang = createWebhookNotifier(webhook({ url: `${base}/hang/${SECRET}`, timeout: '100ms' }));
    expect(await attempt(hang)).toMatchObject({ message: 'webhook "ops": timeout after 100ms', retryable: true });

    const closed = http.createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    const refused = createWebhookNotifier(webhook({ url: `http://127.0.0.1:${port}/hooks/${SECRET}` }));
    expect(await attempt(refused)).toMatchObject({ message: 'webhook "ops": connection refused (ECONNREFUSED)', retryable: true });

    const controller = new AbortController();
    controller.abort();
    expect(await attempt(notifier, controller.signal)).toMatchObject({ message: 'webhook "ops": aborted' });

    for (const error of errors) {
      const text = `${error.message} ${error.hint ?? ''} ${String(error.cause ?? '')} ${JSON.stringify(error)}`;
      expect(text).not.toMatch(/XXsecretTOKENxx|querysecret1|header-secret-42|hooks\//);
    }
  });
});

describe('webhook notifier: retries through the dispatcher', () => {

  it('is delivered after a retry when the receiver answers 500 then 200 (through the dispatcher)', async () => {
    process.env.RG_TEST_HOOK_URL = `${base}/hooks/${SECRET}`;
    try {
      const lines: { level: string; message: string; fields: Record<string, unknown> }[] = [];
      const log: LogFn = (level, message, fields) => lines.push({ level, message, fields });
      const delays: number[] = [];
      const routes = routesFromConfig(parse([{ type: 'webhook', name: 'slack', url_env: 'RG_TEST_HOOK_URL', format: 'slack', min_severity: 'warning' }]));
      const dispatcher = new NotificationDispatcher(routes, { log, clock: { sleep: async (ms) => void delays.push(ms) }, random: () => 0.5 });
      replies = [500, 200];
      dispatcher.publish({ ...rollback, kind: 'rule_breached', severity: 'info' }); // below min_severity
      dispatcher.publish(rollback);
      await dispatcher.close(5000);
      expect(received).toHaveLength(2);
      expect(received.every((r) => (r.body as { text: string }).text.startsWith('[critical] web: rolling back'))).toBe(true);
      expect(delays).toEqual([500]);
      expect(lines.map((l) => `${l.level} ${l.message}`)).toEqual(['warn notification attempt failed: retrying', 'debug notification delivered']);
      expect(lines[0]?.fields).toMatchObject({ notifier: 'slack', attempt: 1, error: 'webhook "slack": receiver answered 500: no such hook *** (key undefined)' });
      expect(JSON.stringify(lines)).not.toContain('XXsecretTOKENxx');
    } finally {
      delete process.env.RG_TEST_HOOK_URL;
    }
  });
});
