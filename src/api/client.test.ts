import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { initialState } from '../core/transition.js';
import type { GuardState } from '../core/types.js';
import { ApiError } from '../errors.js';
import { ApiClient } from './client.js';
import { startApiServer, type ApiServer } from './server.js';
import type { ControlRequest, ControlResult, GuardControl, StatusView } from './types.js';

const TOKEN = 'client-test-token';

const state: GuardState = {
  ...initialState(0),
  phase: 'guarding',
  since: 0,
  paused: false,
  stable: '1.4.1',
  running: '1.5.0',
  release: { id: '1970-01-01T00-00-00-000Z_1.5.0', version: '1.5.0', previous: '1.4.1', startedAt: 0, deployedBy: 'alice', source: 'manual' },
};

const statusView: StatusView = {
  service: 'web',
  phase: 'guarding',
  paused: false,
  since: '2024-05-01T12:00:00.000Z',
  stable: '1.4.1',
  running: '1.5.0',
  release: {
    version: '1.5.0',
    previous: '1.4.1',
    startedAt: '2024-05-01T12:00:00.000Z',
    deployedBy: 'alice',
    source: 'manual',
    windowEndsAt: '2024-05-01T12:10:00.000Z',
  },
  rollback: null,
  wouldRollBack: null,
  pendingRollback: null,
  failure: null,
  rules: [{ rule: 'health', outcome: 'pass', observed: 0, threshold: 3, unit: 'failures', message: 'health: 0 consecutive failures < 3' }],
  lastRollback: null,
  now: '2024-05-01T12:01:48.000Z',
};

/** A port nobody listens on: bound, then released. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

async function apiError(promise: Promise<unknown>): Promise<ApiError> {
  const error = await promise.then(
    () => {
      throw new Error('expected the call to fail');
    },
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ApiError);
  return error as ApiError;
}

let server: ApiServer;
let calls: ControlRequest[];
let next: ControlResult;

/** Each test gets its own API server on a free port, over a control that records its requests and answers with `next`. */
function useServer() {
  beforeEach(async () => {
    calls = [];
    next = { ok: true, state };
    const control: GuardControl = {
      status: () => statusView,
      history: async () => ({ service: 'web', deployments: [], candidates: [], previousStable: null, rollbacks: [] }),
      metrics: async () => ({ contentType: 'text/plain', body: '' }),
      liveTimeline: () => ({ series: [], events: [], from: 0, to: 1000, title: 'web' }),
      recordDocument: async () => null,
      lastDrill: async () => null,
      lastPreflight: () => null,
      drill: async () => ({ ok: false, error: 'drills refuse a target marked environment: production' }),
      alertmanager: async () => ({ ok: false, error: 'triggers.alertmanager is not configured' }),
      preflight: async () => ({ ready: false, from: '1.5.0', to: '1.4.1', problems: [], steps: [{ index: 0, type: 'releases', description: 'releases: swap', problems: ['releases/1.4.1 is missing'] }], checkedAt: '2024-05-01T12:00:00.000Z' }),
      control: async (request) => {
        calls.push(request);
        return next;
      },
    };
    server = await startApiServer({ host: '127.0.0.1', port: 0, token: TOKEN, control });
  });

  afterEach(async () => {
    await server.close();
  });
}

describe('ApiClient: reads and control requests', () => {
  useServer();

  it('reads the status and health without a token', async () => {
    const client = new ApiClient({ baseUrl: `${server.url}/` });
    expect(await client.status()).toEqual(statusView);
    expect(await client.healthz()).toEqual({ ok: true });
    expect((await client.history()).service).toBe('web');
  });

  it('round-trips the control requests with the token', async () => {
    const client = new ApiClient({ baseUrl: server.url, token: TOKEN });
    const summary = await client.release('1.5.0', 'alice');
    expect(summary).toMatchObject({ ok: true, action: 'release', phase: 'guarding', release: '1.5.0', stable: '1.4.1' });
    await client.rollback({ reason: 'errors after deploy' });
    await client.rollback({ to: '1.3.0', reason: 'go further back' });
    await client.promote();
    await client.pause('bob');
    await client.resume();
    expect(calls).toEqual([
      { action: 'release', version: '1.5.0', deployedBy: 'alice' },
      { action: 'rollback', reason: 'errors after deploy', by: 'api' },
      { action: 'rollback', to: '1.3.0', reason: 'go further back', by: 'api' },
      { action: 'promote', by: 'api' },
      { action: 'pause', by: 'bob' },
      { action: 'resume', by: 'api' },
    ]);
  });
});

describe('ApiClient: errors, timeouts and preflight', () => {
  useServer();

  it('says how to start the daemon when nothing listens', async () => {
    const port = await closedPort();
    const client = new ApiClient({ baseUrl: `http://127.0.0.1:${port}` });
    const error = await apiError(client.status());
    expect(error.message).toBe(
      `cannot reach release-guard at http://127.0.0.1:${port} (is the daemon running? start it with: release-guard start --config FILE)`,
    );
    expect(error.status).toBe(0);
  });

  it('says the token was refused on 401', async () => {
    const wrong = new ApiClient({ baseUrl: server.url, token: 'not-the-token' });
    const error = await apiError(wrong.promote());
    expect(error.message).toBe('the daemon refused the token (set RELEASE_GUARD_TOKEN or server.token_file)');
    expect(error.status).toBe(401);
    expect(error.message).not.toContain('not-the-token');

    const none = new ApiClient({ baseUrl: server.url });
    expect((await apiError(none.pause())).message).toMatch(/requires a token and none was found \(set RELEASE_GUARD_TOKEN/);
    expect(calls).toEqual([]);
  });

  it("passes the daemon's refusal (409) and validation errors (400) through", async () => {
    const client = new ApiClient({ baseUrl: server.url, token: TOKEN });
    next = { ok: false, error: 'already paused' };
    const refused = await apiError(client.pause());
    expect(refused.message).toBe('already paused');
    expect(refused.status).toBe(409);

    const invalid = await apiError(client.release('../../etc'));
    expect(invalid.status).toBe(400);
    expect(invalid.message).toMatch(/^version: version ".*" is not allowed: use 1-128 letters, digits/);
  });

  it('gives up after the timeout', async () => {
    const { createServer: createHttpServer } = await import('node:http');
    const silent = createHttpServer(() => undefined); // never answers
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = silent.address() as AddressInfo;
      const client = new ApiClient({ baseUrl: `http://127.0.0.1:${port}`, timeoutMs: 200 });
      expect((await apiError(client.status())).message).toBe(`release-guard at http://127.0.0.1:${port} did not answer within 200ms`);
    } finally {
      silent.closeAllConnections();
      await new Promise<void>((resolve) => silent.close(() => resolve()));
    }
  });
  it('reads the preflight without a token and carries the problems', async () => {
    const view = await new ApiClient({ baseUrl: server.url }).preflight();
    expect(view).toMatchObject({ ready: false, steps: [{ problems: ['releases/1.4.1 is missing'] }] });
  });
});
