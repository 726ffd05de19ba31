/**
 * `release-guard init` as a new user runs it, against what really runs: the demo app under a
 * private pm2 (cluster mode, started through `<dir>/current/server.cjs` in a Capistrano layout)
 * and its health URL. The written file must pass the real validation and use the releases
 * strategy on the right dir; a second run must refuse to overwrite; an unreachable health URL must
 * be reported and still give a valid file; a Prometheus that answers adds a traffic probe.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { buildRelease, createPm2Sandbox, freePort, getJson, pointCurrent, waitFor, type Pm2Sandbox } from '../helpers/pm2-sandbox.js';

const root = resolve(import.meta.dirname, '../..');

function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((done) => {
    execFile(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], { cwd: root, env: { ...process.env, NO_COLOR: '1' }, timeout: 60_000 }, (error, stdout, stderr) => {
      done({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : -1, stdout, stderr });
    });
  });
}

describe('release-guard init', () => {
  let sandbox: Pm2Sandbox;
  let port: number;
  let out: string;
  let healthUrl: string;

  beforeAll(async () => {
    sandbox = await createPm2Sandbox();
    port = await freePort();
    await buildRelease(sandbox.dir, 'v1');
    await buildRelease(sandbox.dir, 'v2');
    await pointCurrent(sandbox.dir, 'v2');
    await sandbox.client.start({
      name: 'web',
      script: join(sandbox.dir, 'current', 'server.cjs'),
      execMode: 'cluster',
      instances: 2,
      env: { PORT: String(port) },
    });
    healthUrl = `http://127.0.0.1:${port}/health`;
    await waitFor(async () => ((await getJson(healthUrl)).body as { version?: string }).version === 'v2', 20_000);
    out = join(await mkdtemp(join(tmpdir(), 'rg-init-')), 'release-guard.yaml');
  });

  afterAll(async () => {
    await sandbox?.cleanup();
    if (out) await rm(join(out, '..'), { recursive: true, force: true });
  });

  it('writes a valid config using the releases strategy, found through pm2 and the current symlink', async () => {
    const stateDir = join(out, '..', 'state');
    const { code, stdout, stderr } = await cli('init', '--pm2-app', 'web', '--pm2-home', sandbox.home, '--health-url', healthUrl, '--state-dir', stateDir, '--out', out);
    expect(code, stderr).toBe(0);
    expect(stdout).toContain(`wrote ${out}`);
    expect(stdout).toMatch(/pm2 app web: 2 processes in cluster mode/);
    expect(stdout).toContain('Capistrano layout');
    expect(stdout).toMatch(/version = "v2": version_path version/);
    expect(stdout).toContain(`release-guard config validate ${out}`);

    const config = await loadConfig(out);
    expect(config.service).toBe('web');
    expect(config.state_dir).toBe(stateDir);
    expect(config.pm2).toMatchObject({ app: 'web', home: sandbox.home });
    expect(config.rollback.steps).toHaveLength(1);
    expect(config.rollback.steps[0]).toMatchObject({ type: 'releases', dir: sandbox.dir, current: 'current', pm2_app: 'web' });
    const health = config.probes.find((p) => p.name === 'health');
    expect(health).toMatchObject({ type: 'http', url: healthUrl, version_path: 'version', json_field: { path: 'status', equals: 'ok' } });
    expect(config.release.version_probe).toBe('health');
    expect(config.verification.probe).toBe('health');
    expect(Object.keys(config.rules).sort()).toEqual(['cpu', 'error_rate', 'health', 'latency_ratio', 'memory']);
    expect((await stat(out)).mode & 0o777).toBe(0o640);

    // The same check an operator runs next.
    const validate = await cli('config', 'validate', out);
    expect(validate.code, validate.stderr).toBe(0);
    expect(validate.stdout).toContain(`${out}: OK`);
  });

  it('refuses to overwrite the file without --force (exit 1), and replaces it with --force', async () => {
    const before = await readFile(out, 'utf8');
    const again = await cli('init', '--pm2-app', 'web', '--pm2-home', sandbox.home, '--health-url', healthUrl, '--out', out);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain(`${out} already exists; not overwriting it (pass --force to replace it)`);
    expect(await readFile(out, 'utf8')).toBe(before);

    const forced = await cli('init', '--pm2-app', 'web', '--pm2-home', sandbox.home, '--health-url', healthUrl, '--service', 'shop', '--out', out, '--force');
    expect(forced.code, forced.stderr).toBe(0);
    expect((await loadConfig(out)).service).toBe('shop');
  });

  it('says what it could not infer when the health URL does not answer, and still writes a valid config', async () => {
    const deadPort = await freePort();
    const file = join(out, '..', 'unreachable.yaml');
    const { code, stdout, stderr } = await cli('init', '--pm2-app', 'web', '--pm2-home', sandbox.home, '--health-url', `http://127.0.0.1:${deadPort}/health`, '--out', file);
    expect(code, stderr).toBe(0);
    expect(stdout).toContain('could not infer');
    expect(stdout).toContain(`health URL http://127.0.0.1:${deadPort}/health could not be read (connection refused)`);
    const text = await readFile(file, 'utf8');
    expect(text).toMatch(/# TODO: health URL .* could not be read/);
    const config = await loadConfig(file);
    // pm2 still told the layout; the version path is the documented guess.
    expect(config.rollback.steps[0]).toMatchObject({ type: 'releases', dir: sandbox.dir });
    expect(config.probes.find((p) => p.name === 'health')).toMatchObject({ version_path: 'version' });
  });

  it('falls back to the pm2 strategy (with a TODO) for an app not deployed in a releases layout, and uses a Prometheus that answers', async () => {
    await sandbox.client.start({ name: 'plain', script: join(sandbox.dir, 'releases', 'v1', 'server.cjs'), env: { PORT: String(await freePort()) } });
    // A Prometheus API that answers buildinfo but has no data for the example queries.
    const prometheus: Server = createServer((req, res) => {
      res.setHeader('content-type', 'application/json');
      if (req.url?.startsWith('/api/v1/status/buildinfo')) res.end(JSON.stringify({ status: 'success', data: { version: '2.42.0' } }));
      else if (req.url?.startsWith('/api/v1/query')) res.end(JSON.stringify({ status: 'success', data: { resultType: 'vector', result: [] } }));
      else res.writeHead(404).end('{}');
    });
    await new Promise<void>((ready) => prometheus.listen(0, '127.0.0.1', ready));
    const address = prometheus.address() as { port: number };
    try {
      const file = join(out, '..', 'plain.yaml');
      const { code, stdout, stderr } = await cli(
        'init', '--pm2-app', 'plain', '--pm2-home', sandbox.home, '--health-url', healthUrl,
        '--prometheus-url', `http://127.0.0.1:${address.port}`, '--out', file,
      );
      expect(code, stderr).toBe(0);
      expect(stdout).toContain('Prometheus 2.42.0');
      expect(stdout).toMatch(/the example queries return no data: adjust them/);
      expect(stdout).toMatch(/pm2 strategy can only restart it/);
      const config = await loadConfig(file);
      expect(config.rollback.steps[0]).toMatchObject({ type: 'pm2', pm2_app: 'plain', action: 'restart' });
      expect(config.probes.find((p) => p.name === 'traffic')).toMatchObject({ type: 'prometheus', url: `http://127.0.0.1:${address.port}` });
      // Not judged on queries that answer nothing: the rules stay on the health checks.
      expect(config.rules.error_rate?.probe).toBe('health');
    } finally {
      await new Promise((closed) => prometheus.close(closed));
    }
  });
});
