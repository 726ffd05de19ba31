/**
 * A smoke run of the benchmark inside `npm test`, so the bench cannot rot unnoticed: the built
 * bench (`node build/bench/run-bench.js`, as `npm run bench` runs it, after the same `tsc` builds)
 * runs one fault scenario (5xx) and one benign one (one-failed-probe), 1 run each, against
 * release-guard (the scrape traffic source only, to stay within ~3 minutes; the access_log source
 * has its own end-to-end test, test/integration/guard-cluster-traffic.test.ts) and monit, with the
 * app as a 2-worker pm2 cluster behind nginx as in every bench run. That exercises both runners,
 * the traffic generator, the results file, the report and its reading. Asserts what happened
 * (rolled back or not, by what), never how fast: timings are the bench's business, not a test's.
 *
 * Nothing goes into the repository: results go to a temp dir (`--out`), and so do the bench's
 * worlds (TMPDIR); the temp dir is removed afterwards. Every process the bench starts inherits a
 * marker variable, so the test can tell (from /proc/<pid>/environ) that none outlived it.
 *
 * monit comes from Debian (installed when missing and run as root); without it only the monit
 * part is skipped (`--no-monit`), and the test name says so.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BenchResults } from '../../bench/report.js';
import type { RunResult } from '../../bench/results.js';
import { scenarios } from '../../bench/scenarios.js';
import { PROJECT_ROOT } from '../fixtures/demo-app/releases.js';
import { ensureDebianPackage } from '../helpers/apt.js';

const BENCH = path.join(PROJECT_ROOT, 'build', 'bench', 'run-bench.js');
const TSC = path.join(PROJECT_ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
const FAULT = '5xx';
const BENIGN = 'one-failed-probe';
/** The build, and the bench's two or three runs (each bounded at 150 s by the bench itself). */
const BUILD_TIMEOUT_MS = 5 * 60_000;
const BENCH_TIMEOUT_MS = 12 * 60_000;
const MARKER = 'RG_BENCH_SMOKE';

let monitMissing = '';
const MONIT = await ensureDebianPackage('monit', 'monit').then(
  (ensured) => ensured.path,
  (error: unknown) => {
    monitMissing = error instanceof Error ? error.message : String(error);
    return null;
  },
);
/** Shown in the test name when skipped, so the report says why. */
const SKIP_MONIT = MONIT ? '' : ` [skipped: ${monitMissing}; the bench ran with --no-monit]`;

const title = (id: string) => scenarios().find((s) => s.id === id)!.title;

interface Exited {
  code: number | null;
  output: string;
}

const running = new Set<ChildProcess>();

/** Runs `node args` from the repository root; rejects after `timeoutMs` (the child is stopped). */
function node(args: string[], env: NodeJS.ProcessEnv, timeoutMs: number): Promise<Exited> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { cwd: PROJECT_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    running.add(child);
    let output = '';
    let timedOut = false;
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const timer = setTimeout(() => {
      timedOut = true;
      // SIGTERM: the bench stops everything it started (its exit hook), then exits.
      void stop(child);
    }, timeoutMs);
    child.on('error', (error) => {
      clearTimeout(timer);
      running.delete(child);
      reject(error);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      running.delete(child);
      if (timedOut) reject(new Error(`node ${args.join(' ')}: no exit within ${timeoutMs} ms, stopped; output:\n${output.slice(-6000)}`));
      else resolve({ code, output });
    });
  });
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const closed = new Promise((resolve) => child.once('close', resolve));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
  await closed;
  clearTimeout(timer);
}

/** Pids of the processes whose environment carries `MARKER=id`: whatever the bench started and left. */
async function markedProcesses(id: string): Promise<{ pid: number; cmdline: string }[]> {
  const found: { pid: number; cmdline: string }[] = [];
  for (const name of await readdir('/proc')) {
    const pid = Number(name);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    const environ = await readFile(`/proc/${pid}/environ`, 'utf8').catch(() => '');
    if (!environ.split('\0').includes(`${MARKER}=${id}`)) continue;
    const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
    found.push({ pid, cmdline: cmdline.split('\0').join(' ').trim() });
  }
  return found;
}

describe(`bench smoke run (${FAULT} and ${BENIGN}, 1 run each)`, () => {
  const id = randomUUID();
  let dir = '';
  let outDir = '';
  let bench: Exited;
  let results: BenchResults;
  let jsonFile = '';
  const runOf = (scenario: string, tool: RunResult['tool']) => results.runs.find((r) => r.scenario === scenario && r.tool === tool);

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'rg-smoke-'));
    outDir = path.join(dir, 'out');
    const tmp = path.join(dir, 't');
    await mkdir(tmp);

    // What `npm run bench` builds first; the guard it starts is dist/cli/main.js.
    for (const project of ['tsconfig.build.json', 'tsconfig.tools.json']) {
      const build = await node([TSC, '-p', project], process.env, BUILD_TIMEOUT_MS);
      expect(build.code, `tsc -p ${project} failed:\n${build.output}`).toBe(0);
    }

    const args = [BENCH, '--only', `${FAULT},${BENIGN}`, '--runs', '1', '--sources', 'scrape', '--out', outDir, ...(MONIT ? [] : ['--no-monit'])];
    const env = { ...process.env, TMPDIR: tmp, [MARKER]: id };
    bench = await node(args, env, BENCH_TIMEOUT_MS);
    if (bench.code !== 0) throw new Error(`the bench failed (exit ${bench.code}):\n${bench.output.slice(-6000)}`);
    const files = (await readdir(outDir)).filter((f) => f.endsWith('.json'));
    expect(files, 'one results file in --out').toHaveLength(1);
    jsonFile = path.join(outDir, files[0]!);
    results = JSON.parse(await readFile(jsonFile, 'utf8')) as BenchResults;
  }, 2 * BUILD_TIMEOUT_MS + BENCH_TIMEOUT_MS);

  afterAll(async () => {
    for (const child of running) await stop(child);
    // Last resort, should the bench have died without its exit hook: nothing may outlive the test.
    for (const { pid } of await markedProcesses(id)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    if (dir) await rm(dir, { recursive: true, force: true });
  }, 60_000);

  it('runs the selected scenarios once and records them as a partial run', () => {
    expect(results.options).toEqual({ runs: 1, only: [FAULT, BENIGN], quick: false, sources: ['scrape'] });
    expect(results.setup).toMatchObject({ instances: 2, execMode: 'cluster', sources: ['scrape'] });
    expect(results.runs.filter((r) => r.tool === 'release-guard').every((r) => r.source === 'scrape')).toBe(true);
    expect(results.scenarios.map((s) => s.id).sort()).toEqual([FAULT, BENIGN].sort());
    expect(path.basename(jsonFile)).toMatch(/-partial\.json$/);
    for (const r of results.runs) expect(r.error ?? '', `${r.scenario} / ${r.tool}`).toBe('');
    expect(results.runs.every((r) => r.completed)).toBe(true);
  });

  it(`release-guard rolls ${FAULT} back`, () => {
    const g = runOf(FAULT, 'release-guard');
    expect(g, 'a release-guard run of 5xx').toBeDefined();
    expect(g!.completed).toBe(true);
    expect(g!.rolledBack).toBe(true);
    expect(g!.trigger).toMatch(/health|error_rate/);
    expect(g!.detectionMs).toEqual(expect.any(Number));
    expect(g!.recoveryMs).toEqual(expect.any(Number));
  });

  it(`release-guard leaves ${BENIGN} alone`, () => {
    const g = runOf(BENIGN, 'release-guard');
    expect(g, 'a release-guard run of one-failed-probe').toBeDefined();
    expect(g!.completed).toBe(true);
    expect(g!.rolledBack, `rolled back: ${g!.trigger} ${g!.reason}`).toBe(false);
    // Benign scenarios are never run against monit (nothing for it to do).
    expect(runOf(BENIGN, 'monit')).toBeUndefined();
  });

  it.skipIf(!MONIT)(`monit acts on ${FAULT}${SKIP_MONIT}`, () => {
    const m = runOf(FAULT, 'monit');
    expect(m, 'a monit run of 5xx').toBeDefined();
    expect(m!.completed).toBe(true);
    expect(m!.rolledBack).toBe(true);
    expect(m!.trigger).toBe('http');
    expect(m!.detectionMs).toEqual(expect.any(Number));
  });

  it('prints the report with a row for each scenario', () => {
    expect(bench.output).toContain('## Fault scenarios: release-guard (per traffic source) and monit side by side');
    expect(bench.output).toContain(`| ${title(FAULT)} |`);
    expect(bench.output).toContain('## Benign scenarios (must not roll back)');
    expect(bench.output).toContain(`| ${title(BENIGN)} | 0/1 |`);
    expect(bench.output).toContain(`Raw results: [\`${path.basename(jsonFile)}\`]`);
    expect(bench.output).toContain('## Reading');
  });

  it('renders the results file again (--render), printing it: a partial run never rewrites BENCHMARKS.md', async () => {
    const rendered = await node([BENCH, '--render', jsonFile, '--out', outDir], { ...process.env, [MARKER]: id }, 60_000);
    expect(rendered.code, rendered.output).toBe(0);
    expect(rendered.output).toContain(`| ${title(FAULT)} |`);
    expect(rendered.output).toContain(`| ${title(BENIGN)} | 0/1 |`);
    expect(existsSync(path.join(outDir, 'BENCHMARKS.md'))).toBe(false);
  });

  it('writes nothing into the repository', async () => {
    const stem = path.basename(jsonFile, '.json');
    const repoResults = await readdir(path.join(PROJECT_ROOT, 'bench', 'results')).catch(() => [] as string[]);
    expect(repoResults.filter((f) => f.startsWith(stem.replace(/-partial$/, '')))).toEqual([]);
    expect(await readFile(path.join(PROJECT_ROOT, 'BENCHMARKS.md'), 'utf8')).not.toContain(stem);
  });

  it('leaves no process behind (pm2 daemons, apps, the guard, monit)', async () => {
    expect(await markedProcesses(id)).toEqual([]);
  });
});
