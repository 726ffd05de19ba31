/**
 * `release-guard check`, the CI/CD gate, run as a user would: the CLI from source against a real
 * app process. Exit codes: 0 pass, 1 breach, 3 inconclusive (2 is a usage error, as everywhere).
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { PROJECT_ROOT, freePort } from '../fixtures/demo-app/releases.js';
import { startDemoApp, type DemoApp } from '../helpers/prometheus.js';

let cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
  cleanups = [];
});

async function check(trafficUrl: string, app: DemoApp, extra: string[] = []) {
  const dir = await mkdtemp(join(tmpdir(), 'rg-check-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'config.yaml');
  await writeFile(
    file,
    stringify({
      service: 'web',
      state_dir: join(dir, 'state'),
      probes: [
        { name: 'health', type: 'http', url: `${app.url}/health`, version_path: 'version' },
        { name: 'traffic', type: 'prometheus', url: trafficUrl, queries: { error_ratio: 'vector(0)' } },
      ],
      schedule: { interval: '250ms', fast_interval: '100ms' },
      release: { version_probe: 'health' },
      rules: {
        health: { probe: 'health' },
        error_rate: { probe: 'traffic' },
        latency_max: { probe: 'health', threshold: '500ms', min_samples: 5 },
      },
      rollback: { steps: [{ type: 'pm2', pm2_app: 'web' }] },
      verification: { probe: 'health' },
    }),
  );
  const child = spawn(process.execPath, ['--import', 'tsx', join(PROJECT_ROOT, 'src/cli/main.ts'), 'check', '--config', file, '--for', '2s', ...extra], {
    cwd: PROJECT_ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  return { code, stdout, stderr };
}

/** A fake Prometheus answering every query with the same scalar. */
async function fakePrometheus(value: string) {
  const http = await import('node:http');
  const port = await freePort();
  const server = http.createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ status: 'success', data: { resultType: 'scalar', result: [Date.now() / 1000, value] } }));
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  cleanups.push(() => new Promise((resolve) => server.close(resolve)));
  return `http://127.0.0.1:${port}`;
}

describe('release-guard check', () => {
  it('passes (exit 0) on a healthy app and prints every rule', async () => {
    const app = await startDemoApp();
    cleanups.push(() => app.stop());
    const result = await check(await fakePrometheus('0.01'), app);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toMatch(/web: PASS/);
    expect(result.stdout).toMatch(/✔ +health +pass/);
    expect(result.stdout).toMatch(/error_rate +pass +1% .*<= 5%/);
  });

  it('fails (exit 1) when a rule breaches: 5xx from the app, 10 % errors on traffic', async () => {
    const app = await startDemoApp({ fault: '5xx' });
    cleanups.push(() => app.stop());
    const result = await check(await fakePrometheus('0.1'), app, ['--json']);
    expect(result.code, result.stderr).toBe(1);
    const report = JSON.parse(result.stdout) as { outcome: string; verdicts: { rule: string; outcome: string }[] };
    expect(report.outcome).toBe('fail');
    expect(report.verdicts.filter((v) => v.outcome === 'fail').map((v) => v.rule).sort()).toEqual(['error_rate', 'health']);
  });

  it('is inconclusive (exit 3, not the usage error 2) when a source has no data: Prometheus unreachable is not a pass', async () => {
    const app = await startDemoApp();
    cleanups.push(() => app.stop());
    const closed = `http://127.0.0.1:${await freePort()}`;
    const result = await check(closed, app);
    expect(result.code, result.stderr).toBe(3);
    expect(result.stdout).toMatch(/web: INCONCLUSIVE/);
  });

  it('keeps exit 2 for a usage error (an unknown option), so a gate tells it from inconclusive', async () => {
    const app = await startDemoApp();
    cleanups.push(() => app.stop());
    const result = await check(`http://127.0.0.1:${await freePort()}`, app, ['--no-such-option']);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/unknown option '--no-such-option'/);
    expect(result.stdout).toBe('');
  });
});
