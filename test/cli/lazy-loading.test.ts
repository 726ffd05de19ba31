/**
 * The guard loads only the client libraries its configuration uses (mysql2 and ioredis cost
 * 15-25 MB of RSS each), and axios (~20 MB) only when it first sends something out: the CLI is run from source as a user would, with a preload that records
 * every module the process loads (test/helpers/record-loads.ts). Not timing based: `start` is
 * stopped once its API answers, i.e. after every probe and strategy has been built.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { PROJECT_ROOT, freePort } from '../fixtures/demo-app/releases.js';
import { loadedPackages } from '../helpers/record-loads.js';

const RECORDER = join(PROJECT_ROOT, 'test/helpers/record-loads.ts');

let cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
  cleanups = [];
});

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'rg-lazy-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** A config: an http check, the guard's own process, a releases plan, and `extra` probes. */
async function writeConfig(dir: string, port: number, extraProbes: object[] = []): Promise<string> {
  const pidFile = join(dir, 'app.pid');
  await writeFile(pidFile, `${process.pid}\n`);
  const file = join(dir, 'config.yaml');
  await writeFile(
    file,
    stringify({
      service: 'web',
      state_dir: join(dir, 'state'),
      server: { host: '127.0.0.1', port },
      log: { level: 'error', format: 'json' },
      probes: [
        // Nothing listens there: a failing check is all this test needs.
        { name: 'health', type: 'http', url: `http://127.0.0.1:${await freePort()}/health`, timeout: '200ms', version_path: 'version' },
        { name: 'app', type: 'process', pid_file: pidFile },
        ...extraProbes,
      ],
      release: { version_probe: 'health' },
      rules: { health: { probe: 'health' }, cpu: { probe: 'app', threshold: 0.9, for: '10s' } },
      rollback: { steps: [{ type: 'releases', dir: join(dir, 'deploy'), pm2_app: 'web' }] },
      verification: { probe: 'health' },
    }),
  );
  return file;
}

/** Runs the CLI with the recorder; `whileRunning` decides when to stop it (SIGTERM) if it has not exited. */
async function runRecorded(args: string[], dir: string, whileRunning?: () => Promise<void>) {
  const record = join(dir, 'loads.txt');
  const child = spawn(process.execPath, ['--import', 'tsx', '--import', RECORDER, join(PROJECT_ROOT, 'src/cli/main.ts'), ...args], {
    cwd: PROJECT_ROOT,
    // A PM2_HOME of its own: loading pm2's API must not touch the user's ~/.pm2.
    env: { ...process.env, RG_RECORD_LOADS: record, PM2_HOME: join(dir, 'pm2') },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let output = '';
  child.stdout.on('data', (c: Buffer) => ((stdout += c.toString()), (output += c.toString())));
  child.stderr.on('data', (c: Buffer) => (output += c.toString()));
  const closed = new Promise<number | null>((resolve) => child.on('close', resolve));
  cleanups.push(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await closed;
  });
  if (whileRunning) {
    await Promise.race([whileRunning(), closed.then((code) => Promise.reject(new Error(`exited early (${code}):\n${output}`)))]);
    child.kill('SIGTERM');
  }
  const code = await closed;
  const packages = loadedPackages(record);
  if (!packages) throw new Error(`the recorder wrote nothing (exit ${code}):\n${output}`);
  return { code, stdout, output, packages };
}

/** Resolves once the daemon's API answers, i.e. start-up (probes, strategies, store) is done. */
async function untilServing(port: number): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      const response = await fetch(`http://127.0.0.1:${port}/healthz`, { signal: AbortSignal.timeout(1000) });
      if (response.ok) return;
    } catch {
      // Not listening yet.
    }
    if (Date.now() > deadline) throw new Error(`the daemon did not serve on port ${port} within 30 s`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

describe('client libraries are loaded only when the config uses them', () => {
  it('start with http, process and releases: pm2 and prom-client loaded, mysql2 and ioredis not', async () => {
    const dir = await tempDir();
    const port = await freePort();
    const file = await writeConfig(dir, port);
    const { code, output, packages } = await runRecorded(['start', '--config', file], dir, () => untilServing(port));
    expect(code, output).toBe(0);
    // The recorder sees what was loaded (pm2 through createRequire, prom-client through import)…
    expect(packages).toContain('pm2');
    expect(packages).toContain('prom-client');
    // …and the libraries of probes, strategies and stores this config does not use are not.
    expect(packages).not.toContain('mysql2');
    expect(packages).not.toContain('ioredis');
    // Nothing was notified yet: the outbound HTTP client is not loaded either.
    expect(packages).not.toContain('axios');
  });

  it('start with a mysql and a redis probe loads mysql2 and ioredis (the recorder would see them)', async () => {
    const dir = await tempDir();
    const port = await freePort();
    const closed = await freePort();
    const file = await writeConfig(dir, port, [
      { name: 'db', type: 'mysql', host: '127.0.0.1', port: closed, user: 'monitor', database: 'app' },
      { name: 'cache', type: 'redis', host: '127.0.0.1', port: closed },
    ]);
    const { packages } = await runRecorded(['start', '--config', file], dir, () => untilServing(port));
    expect(packages).toContain('mysql2');
    expect(packages).toContain('ioredis');
  });

  it('check with the same config loads neither mysql2 nor ioredis', async () => {
    const dir = await tempDir();
    const file = await writeConfig(dir, await freePort());
    const { code, stdout, output, packages } = await runRecorded(['check', '--config', file, '--for', '1s', '--json'], dir);
    expect(JSON.parse(stdout), output).toHaveProperty('samples.health');
    expect(code).not.toBe(0); // the health check fails: nothing listens
    expect(packages).not.toContain('mysql2');
    expect(packages).not.toContain('ioredis');
  });

  it('status loads no client library at all', async () => {
    const dir = await tempDir();
    const { code, packages } = await runRecorded(['status', '--url', `http://127.0.0.1:${await freePort()}`], dir);
    expect(code).toBe(1); // nothing answers there
    for (const name of ['mysql2', 'ioredis', 'pm2', 'prom-client']) expect(packages).not.toContain(name);
  });
});
