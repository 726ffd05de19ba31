/**
 * mysqlProbe against real MariaDB servers: the shared one from the globalSetup for the happy and
 * slow paths, and servers of its own for the outages (they are stopped under the probe's feet).
 */
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { MysqlProbeConfig } from '../../src/config/schema.js';
import { freePort } from '../fixtures/demo-app/releases.js';
import { ProbeError } from '../../src/errors.js';
import { mysqlProbe } from '../../src/probes/mysql.js';
import type { Probe } from '../../src/probes/types.js';
import { mysqlConfig, startMariaDb, type MysqlInfo } from '../helpers/services.js';

const PASSWORD_ENV = 'RG_TEST_MYSQL_PASSWORD';
const WRONG_ENV = 'RG_TEST_MYSQL_WRONG_PASSWORD';
const never = () => new AbortController().signal;

function configFor(info: Pick<MysqlInfo, 'host' | 'port' | 'user'>, overrides: Partial<MysqlProbeConfig> = {}): MysqlProbeConfig {
  return {
    type: 'mysql',
    name: 'db',
    host: info.host,
    port: info.port,
    user: info.user,
    password_env: PASSWORD_ENV,
    query: 'SELECT 1',
    timeout: 2000,
    pool_size: 2,
    ...overrides,
  };
}

/** Every probe made here is closed after its test, pass or fail. */
const open: Probe[] = [];
function probe(config: MysqlProbeConfig): Probe {
  const created = mysqlProbe(config, { now: () => 42 });
  open.push(created);
  return created;
}
afterEach(async () => {
  await Promise.all(open.splice(0).map((p) => p.close?.()));
});

/** Unhandled rejections and uncaught exceptions seen while `work` runs (vitest would also fail the run). */
async function collectingCrashes(work: () => Promise<void>): Promise<unknown[]> {
  const crashes: unknown[] = [];
  const onCrash = (error: unknown) => crashes.push(error);
  process.on('unhandledRejection', onCrash);
  process.on('uncaughtException', onCrash);
  try {
    await work();
    // Late socket errors arrive on later ticks: give them a moment to surface.
    await new Promise((resolve) => setTimeout(resolve, 300));
  } finally {
    process.off('unhandledRejection', onCrash);
    process.off('uncaughtException', onCrash);
  }
  return crashes;
}

describe('mysqlProbe against the shared MariaDB', () => {
  let info: MysqlInfo;
  beforeAll(() => {
    info = mysqlConfig();
    process.env[PASSWORD_ENV] = info.password;
    process.env[WRONG_ENV] = `wrong-${info.password}-wrong`;
  });
  afterAll(() => {
    delete process.env[PASSWORD_ENV];
    delete process.env[WRONG_ENV];
  });

  it('runs SELECT 1 and reports its latency', async () => {
    const sample = await probe(configFor(info)).sample(7, never());
    expect(sample).toMatchObject({ probe: 'db', startedAt: 7, at: 42, ok: true });
    expect(sample.error).toBeUndefined();
    expect(sample.unavailable).toBeUndefined();
    expect(sample.values.latency_ms).toBeGreaterThanOrEqual(0);
    expect(sample.values.latency_ms).toBeLessThan(2000);
  });

  it('keeps its connections: later samples reuse the pool', async () => {
    const p = probe(configFor(info, { pool_size: 1 }));
    for (let i = 0; i < 5; i += 1) expect((await p.sample(i, never())).ok).toBe(true);
  });

  it('measures the query: SELECT SLEEP(0.3) takes at least 300 ms', async () => {
    const sample = await probe(configFor(info, { query: 'SELECT SLEEP(0.3)' })).sample(0, never());
    expect(sample.ok).toBe(true);
    expect(sample.values.latency_ms).toBeGreaterThanOrEqual(300);
  });

  it('fails, without waiting for the query, when it outlasts the timeout', async () => {
    const p = probe(configFor(info, { query: 'SELECT SLEEP(3)', timeout: 400 }));
    const started = performance.now();
    const sample = await p.sample(0, never());
    expect(performance.now() - started).toBeLessThan(1500);
    expect(sample).toMatchObject({ ok: false, error: 'query timed out after 400ms', values: {} });
    expect(sample.unavailable).toBeUndefined();
    // The busy connection was dropped, not handed back: the next sample is not stuck behind it.
    const again = await p.sample(1, never());
    expect(again.error).toBe('query timed out after 400ms');
  });

  it('reports a failing query as a failed check, not as an outage', async () => {
    const sample = await probe(configFor(info, { query: 'SELECT * FROM no_such_db.no_such_table' })).sample(0, never());
    expect(sample.ok).toBe(false);
    expect(sample.unavailable).toBeUndefined();
    expect(sample.error).toMatch(/^query failed: .*\((ER_BAD_DB_ERROR|ER_NO_SUCH_TABLE)\)$/);
  });

  it('is unavailable with a wrong password, and never shows the password', async () => {
    const sample = await probe(configFor(info, { password_env: WRONG_ENV })).sample(0, never());
    expect(sample).toMatchObject({ ok: false, unavailable: true });
    expect(sample.error).toContain(`mysql 127.0.0.1:${info.port}`);
    expect(sample.error).toContain('ER_ACCESS_DENIED_ERROR');
    expect(sample.error).not.toContain(process.env[WRONG_ENV]);
    expect(sample.error).not.toContain(info.password);
  });

  it('reads the password from password_file (trimmed)', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'rg-mysql-secret-'));
    try {
      const file = path.join(dir, 'password');
      await writeFile(file, `${info.password}\n`, { mode: 0o600 });
      const sample = await probe(configFor(info, { password_env: undefined, password_file: file })).sample(0, never());
      expect(sample.ok).toBe(true);

      await chmod(file, 0o644);
      expect(() => mysqlProbe(configFor(info, { password_env: undefined, password_file: file }), { now: () => 0 })).toThrow(
        /readable by everyone/,
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('refuses to start when the password variable is not set', () => {
    expect(() => mysqlProbe(configFor(info, { password_env: 'RG_TEST_UNSET_PASSWORD' }), { now: () => 0 })).toThrow(ProbeError);
  });
});

describe('mysqlProbe when the server is not there', () => {
  it('is unavailable when nothing listens, naming host:port and the code', async () => {
    const port = await freePort();
    process.env[PASSWORD_ENV] = 'irrelevant';
    try {
      const sample = await probe(configFor({ host: '127.0.0.1', port, user: 'probe' })).sample(0, never());
      expect(sample).toMatchObject({ ok: false, unavailable: true, values: {} });
      expect(sample.error).toContain(`mysql 127.0.0.1:${port}`);
      expect(sample.error).toContain('ECONNREFUSED');
    } finally {
      delete process.env[PASSWORD_ENV];
    }
  });

  it('is unavailable when the server accepts connections but never answers (connect timeout)', async () => {
    const sockets = new Set<net.Socket>();
    const mute = net.createServer((socket) => sockets.add(socket));
    await new Promise<void>((resolve) => mute.listen(0, '127.0.0.1', resolve));
    const port = (mute.address() as net.AddressInfo).port;
    process.env[PASSWORD_ENV] = 'irrelevant';
    try {
      const started = performance.now();
      const sample = await probe(configFor({ host: '127.0.0.1', port, user: 'probe' }, { timeout: 300 })).sample(0, never());
      expect(performance.now() - started).toBeLessThan(1000);
      expect(sample).toMatchObject({ ok: false, unavailable: true });
      expect(sample.error).toContain(`mysql 127.0.0.1:${port}`);
      expect(sample.error).toContain('ETIMEDOUT');
    } finally {
      delete process.env[PASSWORD_ENV];
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => mute.close(resolve));
    }
  });

  it('stops waiting when the signal aborts', async () => {
    const info = mysqlConfig();
    process.env[PASSWORD_ENV] = info.password;
    try {
      const controller = new AbortController();
      setTimeout(() => controller.abort(), 100);
      const sample = await probe(configFor(info, { query: 'SELECT SLEEP(2)' })).sample(0, controller.signal);
      expect(sample).toMatchObject({ ok: false, error: 'aborted' });
    } finally {
      delete process.env[PASSWORD_ENV];
    }
  });
});

describe('mysqlProbe when its server goes away mid-run', () => {
  const OWN_ENV = 'RG_TEST_MYSQL_OWN_PASSWORD';
  afterAll(() => {
    delete process.env[OWN_ENV];
  });

  it.each([
    ['shut down (SIGTERM)', 10_000],
    ['killed (SIGKILL)', 0],
  ])('turns unavailable when the server is %s, and nothing crashes', async (_how, graceMs) => {
    const server = await startMariaDb();
    try {
      process.env[OWN_ENV] = server.info.password;
      const quick = probe(configFor(server.info, { password_env: OWN_ENV }));
      const slow = probe(configFor(server.info, { password_env: OWN_ENV, query: 'SELECT SLEEP(5)', timeout: 10_000 }));

      const crashes = await collectingCrashes(async () => {
        expect((await quick.sample(0, never())).ok).toBe(true);
        const inFlight = slow.sample(1, never());
        await new Promise((resolve) => setTimeout(resolve, 300)); // the SLEEP is running now
        await server.stop({ graceMs });

        const interrupted = await inFlight;
        expect(interrupted).toMatchObject({ ok: false, unavailable: true });
        expect(interrupted.error).toContain(`mysql 127.0.0.1:${server.port}`);

        for (let i = 0; i < 3; i += 1) {
          const sample = await quick.sample(2 + i, never());
          expect(sample).toMatchObject({ ok: false, unavailable: true, values: {} });
          expect(sample.error).toContain(`mysql 127.0.0.1:${server.port}`);
        }
        const last = await quick.sample(9, never());
        expect(last.error).toContain('ECONNREFUSED');
      });
      expect(crashes).toEqual([]);
    } finally {
      await server.stop({ graceMs: 0 });
    }
  });
});
