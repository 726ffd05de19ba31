/**
 * release-guard behaves like the other daemons of the host, tried on the real CLI process:
 * syslog priority prefixes on every line under systemd (JOURNAL_STREAM set), so
 * `journalctl -p warning` finds the warnings and errors; release_guard_build_info on /metrics;
 * `init` pointing editors at the shipped schema; NO_COLOR honoured only when non-empty.
 */
import { execFile, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { colorWanted } from '../../src/cli/main.js';

const root = resolve(import.meta.dirname, '../..');
const version = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }).version;
/** What systemd sets: the device and inode of the journal stream. */
const JOURNAL = { JOURNAL_STREAM: '8:123456' };

function cli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((done) => {
    const clean: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1', ...env };
    if (!('JOURNAL_STREAM' in env)) delete clean.JOURNAL_STREAM;
    execFile(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], { cwd: root, env: clean, timeout: 60_000 }, (error, stdout, stderr) => {
      done({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : -1, stdout, stderr });
    });
  });
}

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise((r) => server.close(r));
  return port;
}

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'rg-daemon-manners-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

describe('under systemd (JOURNAL_STREAM set)', () => {
  it('a refused config is reported on lines carrying the error priority <3>; without the journal, no prefix', async () => {
    const file = join(dir, 'broken.yaml');
    await writeFile(file, 'service: web\nservr: {}\nprobes: []\n');
    const journal = await cli(['config', 'validate', file], JOURNAL);
    expect(journal.code).toBe(1);
    const lines = journal.stderr.split('\n').filter((l) => l !== '');
    expect(lines.length).toBeGreaterThan(1);
    for (const line of lines) expect(line).toMatch(/^<3>/);
    expect(lines[0]).toMatch(/^<3>release-guard: /);

    const plain = await cli(['config', 'validate', file]);
    expect(plain.code).toBe(1);
    expect(plain.stderr).toBe(journal.stderr.replace(/^<3>/gm, ''));
  });

  it('the daemon logs with priorities: <6> info, <4> warnings, and serves release_guard_build_info on /metrics', async () => {
    const port = await freePort();
    const config = join(dir, 'guard.yaml');
    await writeFile(config, stringify({
      service: 'web',
      state_dir: join(dir, 'state'),
      server: { host: '127.0.0.1', port },
      log: { level: 'debug', format: 'json' },
      // Nothing listens on port 9: the probe fails, which the guard reports as a warning.
      probes: [{ name: 'health', type: 'http', url: 'http://127.0.0.1:9/health', version_path: 'version'}],
      release: { version_probe: 'health' },
      rules: { health: { probe: 'health' } },
      rollback: { steps: [{ type: 'command', command: ['true'] }] },
      verification: { probe: 'health' },
    }));
    const env: NodeJS.ProcessEnv = { ...process.env, ...JOURNAL };
    delete env.NO_COLOR;
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'start', '--config', config], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.stdout.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    try {
      let metrics = '';
      for (let i = 0; i < 200 && child.exitCode === null && !(metrics.includes('release_guard_build_info') && /^<4>/m.test(stderr)); i++) {
        await new Promise((r) => setTimeout(r, 100));
        metrics = await fetch(`http://127.0.0.1:${port}/metrics`).then((r) => r.text(), () => '');
      }
      expect(child.exitCode, stderr).toBeNull();
      expect(metrics).toContain(`release_guard_build_info{version="${version}",node_version="${process.version}"} 1`);
      const lines = stderr.split('\n').filter((l) => l !== '');
      // Every line has a priority, and the JSON after it is the usual log entry.
      for (const line of lines) expect(line).toMatch(/^<[3467]>\{/);
      const entries = lines.map((l) => ({ priority: l.slice(1, 2), level: (JSON.parse(l.slice(3)) as { level: string }).level }));
      for (const entry of entries) expect(entry.priority).toBe({ error: '3', warn: '4', info: '6', debug: '7' }[entry.level]);
      expect(entries.some((e) => e.level === 'info')).toBe(true);
      expect(entries.some((e) => e.level === 'warn')).toBe(true);
    } finally {
      if (child.exitCode === null) {
        child.kill('SIGTERM');
        await new Promise((r) => child.once('exit', r));
      }
    }
  });
});

describe('init', () => {
  it('writes a yaml-language-server line pointing at the shipped config.schema.json first', async () => {
    const out = join(dir, 'init.yaml');
    const { code, stderr } = await cli(['init', '--service', 'web', '--health-url', 'http://127.0.0.1:9/health', '--state-dir', join(dir, 'init-state'), '--out', out]);
    expect(stderr).toBe('');
    expect(code).toBe(0);
    const first = (await readFile(out, 'utf8')).split('\n')[0]!;
    const match = /^# yaml-language-server: \$schema=(.+)$/.exec(first);
    expect(match?.[1]).toBe(join(root, 'config.schema.json'));
    expect(existsSync(match![1]!)).toBe(true);
    expect((JSON.parse(await readFile(match![1]!, 'utf8')) as { properties?: Record<string, unknown> }).properties).toHaveProperty('notifiers');
  });
});

describe('NO_COLOR', () => {
  it('turns colour off only when set to something: an empty NO_COLOR counts as unset', () => {
    expect(colorWanted(true, {})).toBe(true);
    expect(colorWanted(true, { NO_COLOR: '' })).toBe(true);
    expect(colorWanted(true, { NO_COLOR: '1' })).toBe(false);
    expect(colorWanted(false, {})).toBe(false);
  });
});
