/**
 * A quick run of `npm run chaos` inside `npm test`, so the chaos runner cannot rot unnoticed: the
 * built runner (`node build/bench/chaos/run.js`, after the same `tsc` builds `npm run chaos` does)
 * runs the hostile-metrics scenario in quick mode (1 run of 4 s, 3 s per other hostile body) and
 * the stored-state scenario (a few hostile state.json files, ~15 s) against the built daemon. Asserts the table and what the daemon made of each hostile body,
 * never the figures against their targets: RSS and loop blocking are the runner's business on a
 * quiet machine, not a test's.
 *
 * Nothing goes into the repository: the table goes to a temp dir (`--out`). Every process the
 * runner starts inherits a marker variable, so the test can tell that none outlived it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../fixtures/demo-app/releases.js';

const RUNNER = path.join(PROJECT_ROOT, 'build', 'bench', 'chaos', 'run.js');
const TSC = path.join(PROJECT_ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
const BUILD_TIMEOUT_MS = 5 * 60_000;
const RUN_TIMEOUT_MS = 3 * 60_000;
const MARKER = 'RG_CHAOS_TEST';

interface Exited {
  code: number | null;
  stdout: string;
  stderr: string;
}

const running = new Set<ChildProcess>();

function node(args: string[], env: NodeJS.ProcessEnv, timeoutMs: number): Promise<Exited> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { cwd: PROJECT_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    running.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => child.kill('SIGTERM'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      running.delete(child);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Processes whose environment carries `MARKER=id`: whatever the runner started and left. */
async function markedProcesses(id: string): Promise<number[]> {
  const found: number[] = [];
  for (const name of await readdir('/proc')) {
    const pid = Number(name);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    const environ = await readFile(`/proc/${pid}/environ`, 'utf8').catch(() => '');
    if (environ.split('\0').includes(`${MARKER}=${id}`)) found.push(pid);
  }
  return found;
}

describe('npm run chaos --only hostile-metrics,stored-state --quick', () => {
  const id = randomUUID();
  let dir = '';
  let result: Exited;
  let rows: string[][] = [];
  const row = (item: string) => rows.find((r) => r[0] === item);

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'rg-chaos-test-'));
    for (const project of ['tsconfig.build.json', 'tsconfig.tools.json']) {
      const build = await node([TSC, '-p', project], process.env, BUILD_TIMEOUT_MS);
      expect(build.code, `tsc -p ${project} failed:\n${build.stdout}${build.stderr}`).toBe(0);
    }
    result = await node([RUNNER, '--only', 'hostile-metrics,stored-state', '--quick', '--out', dir], { ...process.env, [MARKER]: id }, RUN_TIMEOUT_MS);
    rows = result.stdout
      .split('\n')
      .filter((line) => line.startsWith('| ') && !line.startsWith('| Item') && !line.startsWith('| ---'))
      .map((line) => line.slice(2, -2).split(' | '));
  }, 2 * BUILD_TIMEOUT_MS + RUN_TIMEOUT_MS);

  afterAll(async () => {
    for (const child of running) child.kill('SIGKILL');
    for (const pid of await markedProcesses(id)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    if (dir) await rm(dir, { recursive: true, force: true });
  }, 30_000);

  it('runs to the end and prints one row per measurement, with its target and met/missed', () => {
    expect(result.code, result.stderr.slice(-3000)).toBe(0);
    expect(rows.map((r) => r[0])).toEqual([
      'hostile /metrics: peak guard RSS',
      'hostile /metrics: blocked-loop time per hostile scrape',
      'hostile /metrics: the real families still read',
      'hostile /metrics: endless body',
      'hostile /metrics: one 50 MB line',
      'hostile /metrics: binary garbage',
      'hostile /metrics: slow-loris body',
      '4 stored state: refused',
      '4 stored state: refused',
      '4 stored state: refused',
      '4 stored state: refused',
      '4 stored state: hostile states acted on',
    ]);
    for (const r of rows) {
      expect(r, r.join(' | ')).toHaveLength(5);
      expect(['met', '**missed**']).toContain(r[4]);
    }
    expect(row('hostile /metrics: peak guard RSS')![2]).toMatch(/^\d+(\.\d)? MB$/);
    expect(row('hostile /metrics: peak guard RSS')![3]).toBe('≤ 120 MB');
    expect(row('hostile /metrics: blocked-loop time per hostile scrape')![2]).toMatch(/^\d+(\.\d)? ms; wall/);
    expect(row('hostile /metrics: blocked-loop time per hostile scrape')![3]).toBe('≤ 50 ms');
  });

  it("reports what the daemon made of each hostile body: the real families read, or the probe's clear error", () => {
    expect(row('hostile /metrics: the real families still read')![2]).toMatch(/^\d+ of [1-9]\d* scrape samples failed/);
    expect(row('hostile /metrics: endless body')![2]).toMatch(/^(\d+) of \1 samples failed \(.*scrape: body larger than max_body_bytes 8388608/);
    expect(row('hostile /metrics: one 50 MB line')![2]).toMatch(/^(\d+) of \1 samples failed \(.*scrape: body larger than max_body_bytes 8388608/);
    expect(row('hostile /metrics: binary garbage')![2]).toMatch(/^(\d+) of \1 samples failed \(.*scrape: body is not in the Prometheus text format/);
    expect(row('hostile /metrics: slow-loris body')![2]).toMatch(/^(\d+) of \1 samples failed \(scrape failed: timeout after 2000ms\)/);
  });

  it('reports what the daemon made of each hostile state.json: refused in one line, the file untouched, nothing acted', () => {
    const refused = rows.filter((r) => r[0] === '4 stored state: refused');
    for (const r of refused) expect(r[2], r[1]).toMatch(/^exit 1, 1 line\(s\): release-guard: cannot start: state\.json is not .*; file byte-identical; nothing acted$/);
    expect(row('4 stored state: hostile states acted on')![2]).toBe('0 (control: resumed, step ran with from v2)');
  });

  it('writes the table to CHAOS-partial.md in --out (a partial run never writes CHAOS.md)', async () => {
    const written = await readFile(path.join(dir, 'CHAOS-partial.md'), 'utf8');
    expect(written).toContain('# Chaos run (partial)');
    for (const r of rows) expect(written).toContain(`| ${r.join(' | ')} |`);
    expect(existsSync(path.join(dir, 'CHAOS.md'))).toBe(false);
  });

  it('leaves no process behind (the guards, the hostile servers)', async () => {
    expect(await markedProcesses(id)).toEqual([]);
  });

  it('refuses an unknown scenario with one clear line and exit code 2', async () => {
    const bad = await node([RUNNER, '--only', 'nope', '--out', dir], process.env, 30_000);
    expect(bad.code).toBe(2);
    expect(bad.stderr.trim()).toBe('chaos: unknown scenario nope; known: hostile-metrics, second-guard, kill-points, stale-restore, backup-race, api-on-demand, stored-state, secrets-and-records, store-blip, host-limits, shared-dir');
  });
});
