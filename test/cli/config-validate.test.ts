/**
 * `release-guard config validate FILE`, run as an operator runs it: a separate node process on the
 * TypeScript source, checking exit codes and what lands on stdout and stderr.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const root = resolve(import.meta.dirname, '../..');

function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((done) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', 'src/cli/main.ts', ...args],
      { cwd: root, env: { ...process.env, NO_COLOR: '1' }, timeout: 30_000 },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === 'number' ? error.code : -1;
        done({ code, stdout, stderr });
      },
    );
  });
}

const BROKEN = `
service: web
servr:                       # misspelt section
  host: 127.0.0.1
server:
  port: 99999                # out of range
probes:
  - name: health
    type: http
    url: not-a-url
    timeot: 2s               # misspelt key
    version_path: version
release:
  version_probe: health
  window: ten minutes        # not a duration
rules:
  health:
    probe: health
    consecutve: 3            # misspelt key
  error_rate:
    probe: health
    threshold: 5             # a percentage where a fraction is expected
rollback:
  steps: []
verification:
  probe: health
`;

describe('release-guard config validate', () => {
  let dir: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'release-guard-cli-'));
  });

  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('accepts the shipped example config', async () => {
    const result = await cli('config', 'validate', 'config/release-guard.example.yaml');
    expect(result.stderr).toBe('');
    expect(result.stdout).toBe('config/release-guard.example.yaml: OK\n');
    expect(result.code).toBe(0);
  });

  it('lists every problem of a broken config, one per line, without a stack trace', async () => {
    const file = join(dir, 'broken.yaml');
    await writeFile(file, BROKEN);
    const result = await cli('config', 'validate', file);
    expect(result.code).toBe(1);
    expect(result.stdout).toBe('');
    const lines = result.stderr.split('\n');
    expect(lines[0]).toBe(`release-guard: ${file}: 8 problems`);
    for (const path of [
      'servr',
      'server.port',
      'probes[0].url',
      'probes[0].timeot',
      'release.window',
      'rules.health.consecutve',
      'rules.error_rate.threshold',
      'rollback.steps',
    ]) {
      expect(lines.some((line) => line.startsWith(`  ${path}: `)), `a line for ${path}`).toBe(true);
    }
    expect(result.stderr).not.toMatch(/^ {4}at /m);
  });

  it('says so when the file does not exist', async () => {
    const file = join(dir, 'missing.yaml');
    const result = await cli('config', 'validate', file);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('no such file');
    expect(result.stderr).toContain(file);
    expect(result.stderr).not.toMatch(/^ {4}at /m);
  });

  it('exits 2 on a usage error', async () => {
    const result = await cli('config', 'validate');
    expect(result.code).toBe(2);
    expect(result.stderr).toContain("missing required argument 'file'");
  });
});
