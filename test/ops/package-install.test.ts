/**
 * What users install: `npm pack`, then `npm install -g` of the tarball into a clean prefix. The
 * installed `release-guard` answers --version, validates the shipped example config, starts a
 * guard on a minimal config, shows its status and its operator page, and stops on SIGTERM. The tarball holds the
 * product and what operators need beside it (schema, example config, dashboard, alert rules,
 * systemd unit, pm2 ecosystem file, docs) and nothing of tests, tooling or the demo fixture.
 * Dependencies come from the registry, as for a user (npm's cache makes this quick after npm ci).
 */
import { execFile, spawn } from 'node:child_process';
import { cp, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { PROJECT_ROOT } from '../fixtures/demo-app/releases.js';
import { freePort, waitFor } from '../helpers/pm2-sandbox.js';

const run = promisify(execFile);
let dir: string;
let files: string[];
let bin: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'rg-pack-'));
  // Packed from a copy of the tree, so its prepack build never rewrites the dist/ other tests run.
  const source = join(dir, 'source');
  await cp(PROJECT_ROOT, source, { recursive: true, filter: (path) => !/\/(node_modules|dist|build|\.git)$/.test(path) });
  await symlink(join(PROJECT_ROOT, 'node_modules'), join(source, 'node_modules'));
  // `npm pack` runs prepack (the build) and prints the tarball's contents as JSON.
  const { stdout } = await run('npm', ['pack', '--json', '--pack-destination', dir], { cwd: source, maxBuffer: 16 * 1024 * 1024 });
  const [packed] = JSON.parse(stdout.slice(stdout.indexOf('['))) as { filename: string; files: { path: string }[] }[];
  files = packed!.files.map((f) => f.path);
  const prefix = join(dir, 'prefix');
  await run('npm', ['install', '--global', '--prefix', prefix, '--prefer-offline', '--no-audit', '--no-fund', join(dir, packed!.filename)], { cwd: dir, maxBuffer: 16 * 1024 * 1024 });
  bin = join(prefix, 'bin', 'release-guard');
}, 300_000);

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('the installed package', () => {
  it('ships the product and the operator kit, nothing of tests, tooling or fixtures', () => {
    for (const needed of ['dist/cli/main.js', 'dist/api/page/page-routes.js', 'dist/api/page/assets.js', 'config.schema.json', 'config/release-guard.example.yaml', 'grafana/release-guard.json',
      'prometheus/release-guard.rules.yml', 'systemd/release-guard.service', 'ecosystem.config.cjs', 'docs/configuration.md', 'LICENSE', 'CHANGELOG.md', 'README.md']) {
      expect(files, needed).toContain(needed);
    }
    expect(files.filter((f) => /\.test\.|^test\/|^src\/|fixtures|^dist\/bench\/|^dist\/demo\/|^demo\/|^scripts\/|^bench\/|^build\//.test(f))).toEqual([]);
  });

  it('answers --version and validates the shipped example config', async () => {
    const pkg = JSON.parse(await readFile(join(PROJECT_ROOT, 'package.json'), 'utf8')) as { version: string };
    expect((await run(bin, ['--version'])).stdout.trim()).toBe(pkg.version);
    const installed = join(dir, 'prefix', 'lib', 'node_modules', 'release-guard', 'config', 'release-guard.example.yaml');
    const { stdout } = await run(bin, ['config', 'validate', installed]);
    expect(stdout.trim()).toBe(`${installed}: OK`);
  });

  it('init points editors at the installed package\'s config.schema.json', async () => {
    const out = join(dir, 'init.yaml');
    await run(bin, ['init', '--service', 'web', '--health-url', 'http://127.0.0.1:9/health', '--state-dir', join(dir, 'init-state'), '--out', out]);
    const first = (await readFile(out, 'utf8')).split('\n')[0];
    const schema = join(dir, 'prefix', 'lib', 'node_modules', 'release-guard', 'config.schema.json');
    expect(first).toBe(`# yaml-language-server: $schema=${schema}`);
    expect(JSON.parse(await readFile(schema, 'utf8'))).toHaveProperty('properties.notifiers');
  });

  it('starts a guard, shows its status, and stops on SIGTERM with exit 0', async () => {
    const app = http.createServer((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"ok","version":"v1"}'));
    await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
    const guardPort = await freePort();
    const config = join(dir, 'config.yaml');
    await writeFile(config, stringify({
      service: 'web',
      state_dir: join(dir, 'state'),
      server: { host: '127.0.0.1', port: guardPort },
      probes: [{ name: 'health', type: 'http', url: `http://127.0.0.1:${(app.address() as AddressInfo).port}/health`, version_path: 'version' }],
      release: { version_probe: 'health' },
      rules: { health: { probe: 'health' } },
      rollback: { steps: [{ type: 'command', command: ['true'] }] },
      verification: { probe: 'health' },
    }));
    const guard = spawn(bin, ['start', '--config', config], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    guard.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    guard.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    try {
      await waitFor(async () => {
        const status = await run(bin, ['status', '--url', `http://127.0.0.1:${guardPort}`]).catch(() => null);
        return status !== null && /v1/.test(status.stdout);
      }, 30_000);
      // The operator page and its assets come from the installed package (markdown-it among its dependencies).
      const page = await (await fetch(`http://127.0.0.1:${guardPort}/`)).text();
      expect(page).toContain('data-phase="stable"');
      for (const asset of [...page.matchAll(/(?:src|href)="(page\/[^"]+)"/g)].map((m) => m[1]!)) {
        expect((await fetch(`http://127.0.0.1:${guardPort}/${asset}`)).status, asset).toBe(200);
      }
      const exited = new Promise<number | null>((resolve) => guard.on('exit', (code) => resolve(code)));
      guard.kill('SIGTERM');
      expect(await exited, output).toBe(0);
    } finally {
      guard.kill('SIGKILL');
      await new Promise((resolve) => app.close(resolve));
    }
  });
});
