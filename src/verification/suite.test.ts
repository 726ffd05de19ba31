/**
 * The verification suite against a local node:http server (functional, performance, security)
 * and the shared test MariaDB (data, DB latency), plus resource readings given at run time.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import mysql from 'mysql2/promise';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { mysqlConfig, type MysqlInfo } from '../../test/helpers/services.js';
import { verificationChecksSchema, type VerificationCheck, type VerificationChecksInput } from './schema.js';
import { runVerificationSuite, type VerificationContext } from './suite.js';

const checks = (input: VerificationChecksInput): VerificationCheck[] => verificationChecksSchema.parse(input);
const context = (extra: Partial<VerificationContext> = {}): VerificationContext => ({
  signal: new AbortController().signal,
  now: () => performance.now(),
  ...extra,
});

let server: http.Server;
let base: string;
const hanging = new Set<http.ServerResponse>();
/** Requests that reached /api/hang. */
let hangRequests = 0;

beforeAll(async () => {
  server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const auth = req.headers.authorization;
      const json = (status: number, value: unknown) => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(value));
      };
      switch (req.url?.split('?')[0]) {
        case '/health':
          return json(200, { status: 'ok' });
        case '/api/login':
          if (req.method !== 'POST') return json(405, { error: 'method' });
          return body.includes('"alice"') ? json(200, { token: 'session-token-abc' }) : json(401, { error: 'bad credentials' });
        case '/api/broken':
          return json(500, { error: 'boom' });
        case '/api/slow':
          setTimeout(() => json(200, { ok: true }), 250);
          return;
        case '/api/hang':
          hangRequests += 1;
          hanging.add(res);
          return;
        case '/api/admin': // protected properly
          return auth === 'Bearer good-token' ? json(200, { users: [] }) : json(401, { error: 'unauthorized' });
        case '/api/admin-open': // the bad release: authentication middleware dropped
          return json(200, { users: ['alice', 'bob'] });
        case '/api/admin-any-token': // rejects a missing header but takes any token
          return auth ? json(200, { users: [] }) : json(401, { error: 'unauthorized' });
        default:
          return json(404, { error: 'not found' });
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  for (const res of hanging) res.destroy();
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

describe('schema', () => {
  it('fills in the seed defaults and parses durations', () => {
    const [httpCheck, security, db, resources] = checks([
      { type: 'http', name: 'api', url: `${base}/health`, max_latency: '500ms' },
      { type: 'security', name: 'auth', url: `${base}/api/admin` },
      { type: 'mysql', name: 'data', user: 'probe' },
      { type: 'resources', name: 'res' },
    ]);
    expect(httpCheck).toMatchObject({ method: 'GET', expect_status: [200], max_latency: 500, timeout: 5000, repeat: 1, headers: {} });
    expect(security).toMatchObject({ token_header: 'authorization', bad_token: 'Bearer invalid-token', expect_status: [401, 403] });
    expect(db).toMatchObject({ host: '127.0.0.1', port: 3306, query: 'SELECT 1', max_query_latency: 100, timeout: 5000, tables: [], min_rows: {} });
    expect(resources).toMatchObject({ cpu_max: 0.7, memory_max: 0.8 });
    expect(verificationChecksSchema.parse(undefined)).toEqual([]);
  });

  it('rejects unknown keys, bad durations, duplicate names and row checks without a database', () => {
    const problems = (input: unknown) =>
      verificationChecksSchema.safeParse(input).error?.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`) ?? [];
    expect(problems([{ type: 'http', name: 'a', url: `${base}/`, max_latncy: '1s' }]).join()).toMatch(/max_latncy/);
    expect(problems([{ type: 'http', name: 'a', url: `${base}/`, max_latency: 'fast' }]).join()).toMatch(/"fast" is not a duration/);
    expect(problems([{ type: 'resources', name: 'a' }, { type: 'resources', name: 'a' }])).toEqual(['1.name: duplicate check name "a"']);
    expect(problems([{ type: 'mysql', name: 'd', user: 'u', tables: ['users'] }])).toEqual(['0.database: tables and min_rows need database']);
    expect(problems([{ type: 'mysql', name: 'd', user: 'u', database: 'app', min_rows: { users: 'latest' } }]).length).toBeGreaterThan(0);
    expect(problems([{ type: 'resources', name: 'a', cpu_max: 70 }]).join()).toMatch(/at most 1/);
  });
});

describe('http checks (functional and performance)', () => {
  it('passes a health endpoint and a login with a body, saying what it saw', async () => {
    const suite = await runVerificationSuite(
      checks([
        { type: 'http', name: 'health', url: `${base}/health`, expect_body_contains: '"ok"', max_latency: '500ms' },
        {
          type: 'http',
          name: 'login',
          url: `${base}/api/login?api_key=secret-in-query`,
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ user: 'alice', password: 'pw' }),
          expect_body_contains: 'token',
        },
      ]),
      context(),
    );
    expect(suite.ok).toBe(true);
    expect(suite.results.map((r) => [r.name, r.type, r.ok])).toEqual([
      ['health', 'http', true],
      ['login', 'http', true],
    ]);
    expect(suite.results[0]?.detail).toMatch(new RegExp(`^GET ${base}/health: status 200, body contains "\\\\"ok\\\\"", \\d+ms <= max 500ms$`));
    expect(suite.results[1]?.detail).toMatch(/^POST http:\/\/127\.0\.0\.1:\d+\/api\/login: status 200, body contains "token", \d+ms$/);
    expect(suite.results[1]?.detail).not.toContain('secret-in-query');
    for (const result of suite.results) expect(result.durationMs).toBeGreaterThanOrEqual(0);
  });

  it('fails a wrong status, a wrong login and a missing body text, with readable details', async () => {
    const suite = await runVerificationSuite(
      checks([
        { type: 'http', name: 'core-api', url: `${base}/api/broken` },
        { type: 'http', name: 'login', url: `${base}/api/login`, method: 'POST', body: '{"user":"mallory"}' },
        { type: 'http', name: 'page', url: `${base}/health`, expect_body_contains: 'Welcome' },
      ]),
      context(),
    );
    expect(suite.ok).toBe(false);
    expect(suite.results.map((r) => r.ok)).toEqual([false, false, false]);
    expect(suite.results[0]?.detail).toBe(`GET ${base}/api/broken: status 500, expected 200`);
    expect(suite.results[1]?.detail).toBe(`POST ${base}/api/login: status 401, expected 200`);
    expect(suite.results[2]?.detail).toMatch(/^GET .*\/health: status 200 but the body \(\d+ bytes\) does not contain "Welcome"$/);
  });

  it('fails a slow endpoint against max_latency, and compares the p95 when repeated', async () => {
    const suite = await runVerificationSuite(
      checks([
        { type: 'http', name: 'slow-api', url: `${base}/api/slow`, max_latency: '100ms' },
        { type: 'http', name: 'slow-page', url: `${base}/api/slow`, max_latency: '2s', repeat: 3 },
        { type: 'http', name: 'slow-p95', url: `${base}/api/slow`, max_latency: '100ms', repeat: 2 },
      ]),
      context(),
    );
    expect(suite.results.map((r) => r.ok)).toEqual([false, true, false]);
    expect(suite.results[0]?.detail).toMatch(/^GET .*\/api\/slow: status 200, but ((2[5-9]\d|[3-9]\d\d)ms|[\d.]+s) > max 100ms$/);
    expect(suite.results[1]?.detail).toMatch(/: 3 requests, all status 200, p95 \d+ms <= max 2s$/);
    expect(suite.results[2]?.detail).toMatch(/: 2 requests, all status 200, but p95 \d+ms > max 100ms$/);
  });

  it('fails on a timeout and on a refused connection: no answer is never a pass', async () => {
    const closed = http.createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));

    const before = hangRequests;
    const suite = await runVerificationSuite(
      checks([
        { type: 'http', name: 'hang', url: `${base}/api/hang`, timeout: '200ms', repeat: 5 },
        { type: 'http', name: 'down', url: `http://127.0.0.1:${port}/health` },
      ]),
      context(),
    );
    // Stops at the first failed request: one request of the five reached the server.
    expect(hangRequests - before).toBe(1);
    expect(suite.results[0]).toMatchObject({ ok: false, detail: `GET ${base}/api/hang: request 1 of 5: no answer timeout after 200ms (expected 200)` });
    expect(suite.results[1]).toMatchObject({ ok: false, detail: `GET http://127.0.0.1:${port}/health: no answer connection refused (ECONNREFUSED) (expected 200)` });
  });
});

describe('security check', () => {
  it('fails when a protected endpoint answers 200 without a token (the endpoint is open)', async () => {
    const suite = await runVerificationSuite(checks([{ type: 'security', name: 'admin-auth', url: `${base}/api/admin-open` }]), context());
    expect(suite.ok).toBe(false);
    expect(suite.results[0]?.detail).toBe(
      `GET ${base}/api/admin-open without authorization -> 200, expected 401 or 403: the endpoint is open; ` +
        'with an invalid authorization -> 200, expected 401 or 403: the endpoint is open',
    );
  });

  it('passes when both a missing and an invalid token are rejected with 401', async () => {
    const suite = await runVerificationSuite(
      checks([{ type: 'security', name: 'admin-auth', url: `${base}/api/admin`, headers: { Authorization: 'Bearer good-token', 'x-trace': '1' } }]),
      context(),
    );
    expect(suite.ok).toBe(true);
    expect(suite.results[0]?.detail).toBe(`GET ${base}/api/admin without authorization -> 401 (rejected); with an invalid authorization -> 401 (rejected)`);
    // Neither the configured credential nor the bad token is ever shown.
    expect(suite.results[0]?.detail).not.toMatch(/good-token|invalid-token/);
  });

  it('fails when any token is accepted, and when the endpoint does not answer', async () => {
    const suite = await runVerificationSuite(
      checks([
        { type: 'security', name: 'any-token', url: `${base}/api/admin-any-token` },
        { type: 'security', name: 'hang', url: `${base}/api/hang`, timeout: '100ms' },
      ]),
      context(),
    );
    expect(suite.results.map((r) => r.ok)).toEqual([false, false]);
    expect(suite.results[0]?.detail).toContain('without authorization -> 401 (rejected); with an invalid authorization -> 200, expected 401 or 403: the endpoint is open');
    expect(suite.results[1]?.detail).toContain('without authorization: no answer (timeout after 100ms), expected 401 or 403');
  });
});

describe('resources check and the suite', () => {
  it('judges the readings given at run time; a missing reading is "no data", never a pass', async () => {
    const list = checks([{ type: 'resources', name: 'res' }]);
    const pass = await runVerificationSuite(list, context({ resources: { cpu: 0.35, memory: 0.5 } }));
    expect(pass.results[0]).toMatchObject({ ok: true, detail: 'cpu 35 % < 70 %; memory 50 % < 80 %' });
    const high = await runVerificationSuite(list, context({ resources: { cpu: 0.91, memory: 0.5 } }));
    expect(high.results[0]).toMatchObject({ ok: false, detail: 'cpu 91 % >= max 70 %; memory 50 % < 80 %' });
    const none = await runVerificationSuite(list, context());
    expect(none.ok).toBe(false);
    expect(none.results[0]?.detail).toBe('cpu: no data (no reading), expected < 70 %; memory: no data (no reading), expected < 80 %');
    const half = await runVerificationSuite(list, context({ resources: { cpu: 0.2, memory: Number.NaN } }));
    expect(half.results[0]).toMatchObject({ ok: false, detail: 'cpu 20 % < 70 %; memory: no data (no reading), expected < 80 %' });
  });

  it('runs every check in order, fails if any fails, and reports the rest as not run after an abort', async () => {
    const list = checks([
      { type: 'http', name: 'one', url: `${base}/health` },
      { type: 'http', name: 'two', url: `${base}/api/broken` },
      { type: 'resources', name: 'three' },
    ]);
    const suite = await runVerificationSuite(list, context({ resources: { cpu: 0.1, memory: 0.1 } }));
    expect(suite.ok).toBe(false);
    expect(suite.results.map((r) => `${r.name}:${r.ok}`)).toEqual(['one:true', 'two:false', 'three:true']);
    expect(await runVerificationSuite([], context())).toEqual({ ok: true, results: [] });

    const controller = new AbortController();
    const aborted = runVerificationSuite(
      checks([
        { type: 'http', name: 'hang', url: `${base}/api/hang`, timeout: '10s' },
        { type: 'resources', name: 'after' },
      ]),
      context({ signal: controller.signal, resources: { cpu: 0.1, memory: 0.1 } }),
    );
    setTimeout(() => controller.abort(), 50);
    const result = await aborted;
    expect(result.ok).toBe(false);
    expect(result.results).toMatchObject([
      { name: 'hang', ok: false, detail: expect.stringContaining('aborted') },
      { name: 'after', ok: false, detail: 'aborted: not run', durationMs: 0 },
    ]);
  });
});

const PASSWORD_ENV = 'RG_TEST_VERIFY_MYSQL_PASSWORD';
let info: MysqlInfo;
let admin: mysql.Connection;
let database: string;

const dbCheck = (extra: Record<string, unknown>) =>
  checks([{ type: 'mysql', name: 'data', host: info.host, port: info.port, user: info.user, password_env: PASSWORD_ENV, database, ...extra }]);

/** A throwaway database per test, with users (3 rows) and orders (2 rows), set up by the server's root; the checks read it as the SELECT-only test account. */
function useTestDatabase() {
  beforeAll(async () => {
    info = mysqlConfig();
    process.env[PASSWORD_ENV] = info.password;
    // The test account can only SELECT; the throwaway server's root (no password on 127.0.0.1)
    // sets the data up.
    admin = await mysql.createConnection({ host: info.host, port: info.port, user: 'root' });
  });

  afterAll(async () => {
    delete process.env[PASSWORD_ENV];
    await admin?.end();
  });

  beforeEach(async () => {
    database = `rg_verify_${randomBytes(6).toString('hex')}`;
    await admin.query(`CREATE DATABASE ${database}`);
    await admin.query(`CREATE TABLE ${database}.users (id INT PRIMARY KEY)`);
    await admin.query(`CREATE TABLE ${database}.orders (id INT PRIMARY KEY)`);
    await admin.query(`INSERT INTO ${database}.users VALUES (1), (2), (3)`);
    await admin.query(`INSERT INTO ${database}.orders VALUES (1), (2)`);
  });

  afterEach(async () => {
    await admin.query(`DROP DATABASE IF EXISTS ${database}`);
  });
}

describe('mysql check against the test MariaDB: tables', () => {
  useTestDatabase();

  it('passes when the tables exist, row counts hold and the query is fast', async () => {
    const suite = await runVerificationSuite(
      dbCheck({ tables: ['users', 'orders'], min_rows: { users: 'snapshot', orders: 1 } }),
      context({ rowSnapshot: { users: 3 } }),
    );
    expect(suite.results[0]).toMatchObject({ name: 'data', type: 'mysql', ok: true });
    expect(suite.results[0]?.detail).toMatch(
      new RegExp(`^2 tables exist in ${database}; users: 3 rows >= pre-release snapshot 3; orders: 2 rows >= minimum 1; query \\d+ms <= max 100ms$`),
    );
  });

  it('fails naming a missing table', async () => {
    const suite = await runVerificationSuite(dbCheck({ tables: ['users', 'payments'] }), context());
    expect(suite.ok).toBe(false);
    expect(suite.results[0]?.detail).toContain(`missing in ${database}: payments (expected 2 tables, found 1)`);
  });
});

describe('mysql check against the test MariaDB: counts, latency and connection failures', () => {
  useTestDatabase();

  it('fails when a row count is below the pre-release snapshot, naming the table and both counts', async () => {
    const suite = await runVerificationSuite(
      dbCheck({ min_rows: { users: 'snapshot', orders: 'snapshot' } }),
      context({ rowSnapshot: { [`${database}.users`]: 5, users: 1, orders: 2 } }),
    );
    expect(suite.ok).toBe(false);
    expect(suite.results[0]?.detail).toMatch(/^users: 3 rows < pre-release snapshot 5; orders: 2 rows >= pre-release snapshot 2; query \d+ms <= max 100ms$/);
  });

  it('fails without a snapshot ("no data"), on a missing table and on a slow query', async () => {
    const suite = await runVerificationSuite(
      dbCheck({ min_rows: { users: 'snapshot', ghosts: 0 }, query: 'SELECT SLEEP(0.2)', max_query_latency: '100ms' }),
      context(),
    );
    const detail = suite.results[0]?.detail ?? '';
    expect(suite.ok).toBe(false);
    expect(detail).toContain('users: no data (no pre-release row count in the snapshot)');
    expect(detail).toMatch(/ghosts: cannot count rows: .*doesn't exist \(ER_NO_SUCH_TABLE\)/);
    expect(detail).toMatch(/query ((2\d\d|[3-9]\d\d)ms|[\d.]+s) > max 100ms$/);
  });

  it('fails without revealing the password: wrong password, refused connection, timeout', async () => {
    process.env.RG_TEST_VERIFY_WRONG = `wrong-${info.password}`;
    try {
      const denied = await runVerificationSuite(dbCheck({ password_env: 'RG_TEST_VERIFY_WRONG' }), context());
      expect(denied.results[0]?.detail).toMatch(/^mysql 127\.0\.0\.1:\d+: cannot connect: Access denied .*\(ER_ACCESS_DENIED_ERROR\)$/);
      expect(denied.results[0]?.detail).not.toContain(info.password);
    } finally {
      delete process.env.RG_TEST_VERIFY_WRONG;
    }
    const refused = await runVerificationSuite(dbCheck({ port: 1, tables: ['users'] }), context());
    expect(refused.results[0]?.detail).toMatch(/^mysql 127\.0\.0\.1:1: cannot connect: .*ECONNREFUSED/);

    // A 5 s query is not waited for: the check gives up at its 300 ms timeout, and says so.
    const slow = await runVerificationSuite(dbCheck({ query: 'SELECT SLEEP(5)', timeout: '300ms' }), context());
    expect(slow.results[0]).toMatchObject({ ok: false, detail: 'timeout after 300ms while running the query' });

    const unset = await runVerificationSuite(dbCheck({ password_env: 'RG_TEST_VERIFY_UNSET' }), context());
    expect(unset.results[0]?.detail).toBe('verification check "data": environment variable RG_TEST_VERIFY_UNSET (password_env) is not set');
  });
});
