import type { AlertmanagerPayload } from './alertmanager-payload.js';
import { request as httpRequest } from 'node:http';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { initialState } from '../core/transition.js';
import type { GuardState } from '../core/types.js';
import { startApiServer, type ApiServer } from './server.js';
import type { ControlRequest, ControlResult, GuardControl, HistoryView, StatusView } from './types.js';

const TOKEN = 's3cret-token-0123456789abcdef';

const state: GuardState = {
  ...initialState(0),
  phase: 'guarding',
  since: Date.parse('2024-05-01T12:00:00Z'),
  paused: false,
  stable: '1.4.1',
  running: '1.5.0',
  release: { id: '2024-05-01T12-00-00-000Z_1.5.0', version: '1.5.0', previous: '1.4.1', startedAt: Date.parse('2024-05-01T12:00:00Z'), deployedBy: 'ci', source: 'manual' },
};

const statusView: StatusView = {
  service: 'web',
  phase: 'stable',
  paused: false,
  since: '2024-05-01T12:00:00.000Z',
  stable: '1.4.1',
  running: '1.4.1',
  release: null,
  rollback: null,
  wouldRollBack: null,
  pendingRollback: null,
  failure: null,
  rules: [],
  lastRollback: null,
  now: '2024-05-01T12:05:00.000Z',
};

const historyView: HistoryView = { service: 'web', deployments: [], candidates: ['1.4.1'], previousStable: null, rollbacks: [] };

/** A GuardControl that records every control request and answers with `next`. */
function fakeControl() {
  const calls: ControlRequest[] = [];
  const alertMessages: AlertmanagerPayload[] = [];
  let next: ControlResult = { ok: true, state };
  const control: GuardControl = {
    status: () => statusView,
    history: async () => historyView,
    metrics: async () => ({ contentType: 'text/plain; version=0.0.4; charset=utf-8', body: 'release_guard_state{state="stable"} 1\n' }),
    liveTimeline: () => ({ series: [], events: [], from: 0, to: 1000, title: 'web' }),
    recordDocument: async () => null,
    lastDrill: async () => null,
    lastPreflight: () => null,
    drill: async () => ({ ok: false, error: 'drills refuse a target marked environment: production' }),
    alertmanager: async (payload) => {
      alertMessages.push(payload);
      return { ok: true, alerts: payload.alerts.length, matched: 1 };
    },
    preflight: async () => ({ ready: true, from: '1.5.0', to: '1.4.1', problems: [], steps: [], checkedAt: '2024-05-01T12:00:00.000Z' }),
    control: async (request) => {
      calls.push(request);
      return next;
    },
  };
  return { control, calls, alertMessages, answer: (result: ControlResult) => (next = result) };
}

let server: ApiServer;
let fake: ReturnType<typeof fakeControl>;
let logs: string[];

/** Each test gets its own server on a free port over a fresh fake control; whatever happened, the token never reaches the log. */
function useServer() {
  beforeEach(async () => {
    fake = fakeControl();
    logs = [];
    server = await startApiServer({
      host: '127.0.0.1',
      port: 0,
      token: TOKEN,
      control: fake.control,
      log: (level, message, fields) => logs.push(`${level} ${message} ${JSON.stringify(fields ?? {})}`),
    });
  });

  afterEach(async () => {
    await server.close();
    // Whatever happened in the test, the token never reaches the log.
    for (const line of logs) expect(line).not.toContain(TOKEN);
  });
}

const post = (path: string, body: unknown, token: string | null = TOKEN, headers: Record<string, string> = {}) =>
  fetch(`${server.url}${path}`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      ...(token === null ? {} : { authorization: `Bearer ${token}` }),
      ...headers,
    },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });

describe('startApiServer: reads and authorization', () => {
  useServer();

  it('listens on the port it was given (0: any free one) and reports its URL', () => {
    expect(server.port).toBeGreaterThan(0);
    expect(server.url).toBe(`http://127.0.0.1:${server.port}`);
  });

  it('answers /healthz, /status, /history and /metrics without a token', async () => {
    const health = await fetch(`${server.url}/healthz`);
    expect(health.status).toBe(200);
    expect(await health.json()).toEqual({ ok: true });

    const status = await fetch(`${server.url}/status?verbose=1`);
    expect(status.status).toBe(200);
    expect(status.headers.get('content-type')).toMatch(/^application\/json/);
    expect(await status.json()).toEqual(statusView);

    const history = await fetch(`${server.url}/history`);
    expect(await history.json()).toEqual(historyView);

    const metrics = await fetch(`${server.url}/metrics`);
    expect(metrics.status).toBe(200);
    expect(metrics.headers.get('content-type')).toContain('version=0.0.4');
    expect(await metrics.text()).toContain('release_guard_state');
  });

  it('refuses a control request without a token, and does not act on it', async () => {
    const response = await post('/releases', { version: '1.5.0' }, null);
    expect(response.status).toBe(401);
    expect(await response.json()).toEqual({ error: 'unauthorized' });
    expect(fake.calls).toEqual([]);
  });

  it.each([
    ['a wrong token', { authorization: 'Bearer wrong-token' }],
    ['the token with one character missing', { authorization: `Bearer ${TOKEN.slice(0, -1)}` }],
    ['the token as a basic credential', { authorization: `Basic ${TOKEN}` }],
    ['an empty bearer', { authorization: 'Bearer ' }],
  ])('refuses %s with 401 and no detail', async (_name, headers) => {
    const response = await post('/pause', {}, null, headers);
    expect(response.status).toBe(401);
    expect(await response.json()).toEqual({ error: 'unauthorized' });
    expect(fake.calls).toEqual([]);
  });

  it('refuses every control request when no token is configured', async () => {
    const open = await startApiServer({ host: '127.0.0.1', port: 0, token: null, control: fake.control });
    try {
      for (const token of [null, '', 'null', 'anything']) {
        const response = await fetch(`${open.url}/promote`, {
          method: 'POST',
          headers: token === null ? {} : { authorization: `Bearer ${token}` },
        });
        expect(response.status).toBe(401);
      }
      expect(fake.calls).toEqual([]);
    } finally {
      await open.close();
    }
  });
});

describe('startApiServer: control requests and bodies', () => {
  useServer();

  it('passes a valid, authorized request to the control, defaulting the actor to api', async () => {
    const response = await post('/releases', { version: '1.5.0+build.7' });
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({
      ok: true,
      action: 'release',
      phase: 'guarding',
      paused: false,
      stable: '1.4.1',
      running: '1.5.0',
      release: '1.5.0',
    });
    expect(fake.calls).toEqual([{ action: 'release', version: '1.5.0+build.7', deployedBy: 'api' }]);
  });

  it('parses every control body into its request', async () => {
    expect((await post('/releases', { version: '2.0.0', deployedBy: 'deploy-bot@ci' })).status).toBe(200);
    expect((await post('/rollback', { reason: 'error rate after deploy' })).status).toBe(200);
    expect((await post('/rollback', { to: '1.3.0', reason: 'bad migration', by: 'alice' })).status).toBe(200);
    expect((await post('/promote', '')).status).toBe(200);
    expect((await post('/pause', { by: 'Ops Team' })).status).toBe(200);
    expect((await fetch(`${server.url}/resume`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` } })).status).toBe(200);
    expect(fake.calls).toEqual([
      { action: 'release', version: '2.0.0', deployedBy: 'deploy-bot@ci' },
      { action: 'rollback', reason: 'error rate after deploy', by: 'api' },
      { action: 'rollback', to: '1.3.0', reason: 'bad migration', by: 'alice' },
      { action: 'promote', by: 'api' },
      { action: 'pause', by: 'Ops Team' },
      { action: 'resume', by: 'api' },
    ]);
  });

  it('answers 413 to a body over 16 KiB and does not act on it', async () => {
    const response = await post('/rollback', { reason: 'x'.repeat(17 * 1024) });
    expect(response.status).toBe(413);
    expect((await response.json()) as unknown).toEqual({ error: expect.stringContaining('16384') });
    expect(fake.calls).toEqual([]);
  });

  it('takes an Alertmanager webhook message with the token: up to 1 MiB, validated, fields it does not read let through', async () => {
    const alert = { status: 'firing', labels: { alertname: 'HighErrorRate', service: 'web' }, annotations: {}, startsAt: '2026-12-07T10:00:00Z', endsAt: '0001-01-01T00:00:00Z', generatorURL: 'http://prom/graph', fingerprint: 'abc' };
    const message = { version: '4', groupKey: '{}:{}', truncatedAlerts: 0, status: 'firing', receiver: 'guard', groupLabels: {}, commonLabels: {}, commonAnnotations: {}, externalURL: 'http://am', alerts: [alert] };
    expect((await post('/alertmanager', message, null)).status).toBe(401);
    const response = await post('/alertmanager', message);
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ ok: true, alerts: 1, matched: 1 });
    // A group of 200 alerts is over the control routes' 16 KiB, and still taken.
    const big = { ...message, alerts: Array.from({ length: 200 }, (_, i) => ({ ...alert, fingerprint: `f${i}`, annotations: { description: 'x'.repeat(100) } })) };
    expect((await post('/alertmanager', big)).status).toBe(200);
    expect(fake.alertMessages.map((m) => m.alerts.length)).toEqual([1, 200]);
    const bad = await post('/alertmanager', { ...message, alerts: [{ ...alert, startsAt: 'yesterday' }] });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: string }).error).toMatch(/alerts\.0\.startsAt.*RFC 3339/);
    expect(fake.alertMessages).toHaveLength(2);
  });
});

describe('startApiServer: request bodies and methods', () => {
  useServer();

  it('stops reading a chunked body once it passes 16 KiB', async () => {
    const { status, body } = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = httpRequest(`${server.url}/rollback`, {
        method: 'POST',
        headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json', 'transfer-encoding': 'chunked' },
      });
      req.on('response', (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
      });
      req.on('error', reject);
      req.write('{"reason":"');
      // 4 KiB at a time; the server must answer long before the client is done.
      let sent = 0;
      const more = () => {
        if (sent >= 64 * 1024 || req.destroyed) return;
        sent += 4096;
        req.write('y'.repeat(4096), () => setImmediate(more));
      };
      more();
    });
    expect(status).toBe(413);
    expect(body).toContain('larger than');
    expect(fake.calls).toEqual([]);
  });

  it('answers 400 to a body that is not JSON', async () => {
    const response = await post('/releases', '{"version": 1.5.0');
    expect(response.status).toBe(400);
    expect(((await response.json()) as { error: string }).error).toMatch(/not valid JSON/);
    expect(fake.calls).toEqual([]);
  });

  it('answers 415 to a body sent as something other than JSON', async () => {
    const response = await post('/releases', 'version=1.5.0', TOKEN, { 'content-type': 'application/x-www-form-urlencoded' });
    expect(response.status).toBe(415);
    expect(fake.calls).toEqual([]);
  });

  it.each([
    ['a shell injection', '/releases', { version: 'v1;rm -rf /' }, /^version: version ".*" is not allowed: use 1-128 letters, digits/],
    ['a path traversal', '/releases', { version: '../../etc' }, /^version: /],
    ['a leading dot', '/releases', { version: '.hidden' }, /^version: /],
    ['a version of 129 characters', '/releases', { version: `v${'1'.repeat(128)}` }, /^version: /],
    ['a missing version', '/releases', {}, /^version: required/],
    ['a version that is a number', '/releases', { version: 15 }, /^version: must be a string/],
    ['a misspelt field', '/releases', { version: '1.5.0', deployed_by: 'x' }, /^deployed_by: unknown field; allowed: version, deployedBy/],
    ['a bad actor', '/releases', { version: '1.5.0', deployedBy: 'eve; DROP TABLE' }, /^deployedBy: must be 1-64 characters/],
    ['a rollback without reason', '/rollback', {}, /^reason: required/],
    ['an empty reason', '/rollback', { reason: '   ' }, /^reason: must not be empty/],
    ['a reason over 500 characters', '/rollback', { reason: 'r'.repeat(501) }, /^reason: must be at most 500/],
    ['a reason with a line break', '/rollback', { reason: 'one\ntwo' }, /^reason: must not contain control characters/],
    ['a traversal as rollback target', '/rollback', { to: '../1.4.1', reason: 'x' }, /^to: /],
    ['a body that is an array', '/promote', [], /must be a JSON object/],
  ])('answers 400 to %s, naming the field', async (_name, path, body, message) => {
    const response = await post(path, body);
    expect(response.status).toBe(400);
    expect(((await response.json()) as { error: string }).error).toMatch(message);
    expect(fake.calls).toEqual([]);
  });

  it('answers 405 to the wrong method, with Allow', async () => {
    const get = await fetch(`${server.url}/rollback`);
    expect(get.status).toBe(405);
    expect(get.headers.get('allow')).toBe('POST');
    const postStatus = await post('/status', {});
    expect(postStatus.status).toBe(405);
    expect(postStatus.headers.get('allow')).toBe('GET');
    expect(fake.calls).toEqual([]);
  });
});

describe('startApiServer: routes and the operator page', () => {
  useServer();

  it('answers 404 to an unknown route', async () => {
    for (const path of ['/nope', '/status/', '/__proto__', '/constructor', '/page/', '/page/nope.js']) {
      const response = await fetch(`${server.url}${path}`);
      expect(response.status, path).toBe(404);
      expect(await response.json()).toEqual({ error: 'not found' });
    }
  });

  it('serves the operator page at / without a token: HTML locked down by its CSP, assets from the daemon, sections sent only when changed', async () => {
    const page = await fetch(`${server.url}/`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(page.headers.get('content-security-policy')).toMatch(/default-src 'none'; script-src 'self'/);
    const html = await page.text();
    const assets = [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]!);
    expect(assets.sort()).toEqual([expect.stringMatching(/^page\/app\.css\?v=/), expect.stringMatching(/^page\/app\.js\?v=/), 'page/icon.svg']);
    for (const asset of assets) expect((await fetch(`${server.url}/${asset}`)).status, asset).toBe(200);
    expect(html).toContain('data-phase="stable"');

    const first = (await (await fetch(`${server.url}/page/live`)).json()) as { sections: { id: string; hash: string; html?: string }[] };
    expect(first.sections.map((s) => s.id)).toEqual(['state', 'rules', 'chart', 'history']);
    expect(first.sections.every((s) => typeof s.html === 'string')).toBe(true);
    const known = first.sections.map((s) => `${s.id}:${s.hash}`).join(',');
    const again = (await (await fetch(`${server.url}/page/live?known=${encodeURIComponent(known)}`)).json()) as typeof first;
    expect(again.sections).toEqual(first.sections.map(({ id, hash }) => ({ id, hash })));
    // Read-only: a POST to the page is not a control request.
    expect((await fetch(`${server.url}/`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` } })).status).toBe(405);
  });
});

describe('startApiServer: refusals, history paging, errors and logging', () => {
  useServer();

  it('passes a refusal of the control through as 409 with its reason', async () => {
    fake.answer({ ok: false, error: 'nothing to promote: no release is under guard' });
    const response = await post('/promote', {});
    expect(response.status).toBe(409);
    expect(await response.json()).toEqual({ error: 'nothing to promote: no release is under guard' });
  });

  it('pages /history: ?limit and ?before reach the guard; a bad value is a 400 naming what is allowed', async () => {
    const pages: unknown[] = [];
    fake.control.history = async (page) => {
      pages.push(page);
      return historyView;
    };
    expect((await fetch(`${server.url}/history`)).status).toBe(200);
    expect((await fetch(`${server.url}/history?limit=5&before=2024-01-02T00:00:00.000Z`)).status).toBe(200);
    expect(pages).toEqual([{ limit: 50 }, { limit: 5, before: Date.parse('2024-01-02T00:00:00.000Z') }]);
    const tooMany = await fetch(`${server.url}/history?limit=100000`);
    expect(tooMany.status).toBe(400);
    expect(((await tooMany.json()) as { error: string }).error).toBe('limit=100000 is not allowed: use a whole number from 1 to 500');
    const badBefore = await fetch(`${server.url}/history?before=yesterday`);
    expect(badBefore.status).toBe(400);
    expect(((await badBefore.json()) as { error: string }).error).toMatch(/^before=yesterday is not allowed: use an ISO time/);
  });

  it('answers 500 without detail when a handler throws, and logs it once', async () => {
    fake.control.history = async () => {
      throw new Error('disk on fire');
    };
    const response = await fetch(`${server.url}/history`);
    expect(response.status).toBe(500);
    expect(await response.json()).toEqual({ error: 'internal error' });
    const failures = logs.filter((line) => line.includes('disk on fire'));
    expect(failures).toHaveLength(1);
    expect(failures[0]).toMatch(/^warn /);
  });

  it('never logs the token or the Authorization header', async () => {
    await post('/releases', { version: '1.5.0' });
    await post('/releases', { version: 'v1;rm -rf /' });
    await post('/pause', {}, 'wrong-token');
    fake.answer({ ok: false, error: 'refused' });
    await post('/resume', {});
    expect(logs.length).toBeGreaterThan(0);
    for (const line of logs) {
      expect(line).not.toContain(TOKEN);
      expect(line).not.toContain('wrong-token');
      expect(line.toLowerCase()).not.toContain('bearer');
    }
  });
});
