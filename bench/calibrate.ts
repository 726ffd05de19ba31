/**
 * `npm run calibrate`: false-rollback rate and detection delay of the traffic rules (error_rate,
 * latency_ratio) and the health rule, measured on seeded, simulated release windows pushed through
 * the pure rules after every sample (see calibrate-sim.ts). Deterministic: the same seed and scale
 * give the same figures, however many workers share the windows.
 *
 *   npm run calibrate                         # full run (~10,000 healthy + ~10,000 faulty windows)
 *   npm run calibrate -- --quick              # a few hundred windows
 *   npm run calibrate -- --windows N --seed S --workers K --out FILE
 *
 * A run without --quick or --out also rewrites the Calibration section of BENCHMARKS.md (between
 * its calibration markers); any run writes its results as JSON (default
 * bench/results/calibrate-<date>.json) and prints a table and one PASS/FAIL line per target.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { sequentialParams } from '../src/core/sequential.js';
import { PROJECT_ROOT } from '../test/fixtures/demo-app/releases.js';
import {
  BASELINE_P95_MS,
  BUCKET_SETS,
  cells as allCells,
  defaultRules,
  FAULT_BASELINE_ERRORS,
  LATENCY_MEDIAN_MS,
  LOOKS,
  runWindow,
  SCHEDULE,
  trueSlowShare,
  type Cell,
  type WindowResult,
} from './calibrate-sim.js';

export const DEFAULT_SEED = 20261207;
/** The scale of a full run: about this many healthy and this many faulty traffic windows. */
export const FULL_WINDOWS = 10_000;
export const QUICK_WINDOWS = 36;

export interface CalibrateOptions {
  windows: number;
  seed: number;
  quick: boolean;
  /** 0 or 1: in this thread. */
  workers: number;
}

interface Percentiles {
  p50: number | null;
  p95: number | null;
  max: number | null;
}

export interface CellResult {
  family: Cell['family'];
  scenario: string;
  expect: Cell['expect'];
  rate: number;
  buckets: string;
  baselineErrors: number;
  faultStartS: number | null;
  windows: number;
  /** Windows where a rule failed (the guard would have rolled back). */
  rolledBack: number;
  /** …of them, before the fault started (false rollbacks in a faulty window). */
  early: number;
  /** Healthy and benign cells: rolledBack / windows with its 95 % Wilson interval. */
  falseRollback: { rate: number; ci95: [number, number] } | null;
  /** Faulty cells: windows rolled back after the fault started / windows not rolled back before it. */
  detection: { detected: number; of: number; rate: number; ci95: [number, number] } | null;
  /** From the fault's start to the rollback, of the detected windows. */
  delaySeconds: Percentiles | null;
  /** Requests (health: checks) from the fault's start to the rollback, of the detected windows. */
  delayRequests: Percentiles | null;
  /** Which rule failed first, by windows. */
  byRule: Record<string, number>;
}

export interface TargetResult {
  id: string;
  description: string;
  pass: boolean;
  detail: string;
}

export interface CalibrationResults {
  tool: 'release-guard calibrate';
  date: string;
  command: string;
  seed: number;
  windowsOption: number;
  quick: boolean;
  machine: { cpu: string; cores: number; node: string; loadavgBefore: string; loadavgAfter: string; loadavg1Max: number; wallMs: number; workers: number };
  model: Record<string, unknown>;
  totals: { healthy: number; benign: number; faulty: number; informative: number; windows: number };
  cells: CellResult[];
  targets: TargetResult[];
}

// ---------------------------------------------------------------------------------------------
// Statistics of the results.

/** Wilson score interval, 95 %. */
export function wilson(k: number, n: number): [number, number] {
  if (n === 0) return [0, 1];
  const z = 1.959964;
  const p = k / n;
  const denom = 1 + (z * z) / n;
  const centre = (p + (z * z) / (2 * n)) / denom;
  const half = (z * Math.sqrt((p * (1 - p)) / n + (z * z) / (4 * n * n))) / denom;
  return [round(Math.max(0, centre - half), 6), round(Math.min(1, centre + half), 6)];
}

function nearestRank(sorted: readonly number[], p: number): number | null {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

function percentiles(values: number[], digits: number): Percentiles | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const r = (v: number | null) => (v === null ? null : round(v, digits));
  return { p50: r(nearestRank(sorted, 50)), p95: r(nearestRank(sorted, 95)), max: r(sorted.at(-1)!) };
}

const round = (v: number, digits: number) => Number(v.toFixed(digits));

export function summarise(cell: Cell, results: readonly WindowResult[]): CellResult {
  const rolledBack = results.filter((r) => r.rolledBack).length;
  const early = results.filter((r) => r.early).length;
  const byRule: Record<string, number> = {};
  for (const r of results) for (const rule of r.rules) byRule[rule] = (byRule[rule] ?? 0) + 1;
  const faulty = cell.expect === 'detect' || cell.expect === 'informative';
  const detected = results.filter((r) => r.rolledBack && !r.early);
  const of = results.length - early;
  return {
    family: cell.family,
    scenario: cell.scenario,
    expect: cell.expect,
    rate: cell.rate,
    buckets: cell.buckets,
    baselineErrors: cell.baselineErrors,
    faultStartS: cell.fault ? cell.fault.startMs / 1000 : null,
    windows: results.length,
    rolledBack,
    early,
    falseRollback: faulty ? null : { rate: round(rolledBack / results.length, 6), ci95: wilson(rolledBack, results.length) },
    detection: faulty ? { detected: detected.length, of, rate: round(of > 0 ? detected.length / of : 0, 6), ci95: wilson(detected.length, of) } : null,
    delaySeconds: faulty ? percentiles(detected.map((r) => r.delayMs! / 1000), 3) : null,
    delayRequests: faulty ? percentiles(detected.map((r) => r.delayRequests!), 0) : null,
    byRule,
  };
}

// ---------------------------------------------------------------------------------------------
// Running the windows: in this thread, or spread over worker threads (same figures either way).

interface Task {
  cell: number;
  from: number;
  to: number;
}

function tasksOf(list: readonly Cell[]): Task[] {
  const tasks: Task[] = [];
  list.forEach((c, cell) => {
    // Chunks small enough to share the long (healthy) cells between workers.
    const chunk = c.family === 'health' ? c.windows : 50;
    for (let from = 0; from < c.windows; from += chunk) tasks.push({ cell, from, to: Math.min(c.windows, from + chunk) });
  });
  return tasks;
}

export function runTask(list: readonly Cell[], task: Task, seed: number): WindowResult[] {
  const out: WindowResult[] = [];
  for (let i = task.from; i < task.to; i++) out.push(runWindow(list[task.cell]!, i, seed));
  return out;
}

async function runAll(list: readonly Cell[], options: CalibrateOptions, progress: (done: number, total: number) => void): Promise<WindowResult[][]> {
  const results: WindowResult[][] = list.map((c) => new Array<WindowResult>(c.windows));
  const tasks = tasksOf(list);
  const store = (task: Task, out: WindowResult[]) => out.forEach((r, j) => (results[task.cell]![task.from + j] = r));
  const here = fileURLToPath(import.meta.url);
  const workerFile = path.join(path.dirname(here), 'calibrate-worker.js');
  if (options.workers <= 1 || !here.endsWith('.js')) {
    tasks.forEach((task, i) => {
      store(task, runTask(list, task, options.seed));
      progress(i + 1, tasks.length);
    });
    return results;
  }
  let next = 0;
  let done = 0;
  await Promise.all(
    Array.from({ length: options.workers }, () => {
      const worker = new Worker(workerFile, { workerData: { windows: options.windows, seed: options.seed } });
      return new Promise<void>((resolve, reject) => {
        const give = () => {
          if (next >= tasks.length) {
            void worker.terminate().then(() => resolve());
            return;
          }
          const task = tasks[next++]!;
          worker.once('message', (out: WindowResult[]) => {
            store(task, out);
            progress(++done, tasks.length);
            give();
          });
          worker.postMessage(task);
        };
        worker.once('error', reject);
        worker.once('online', give);
      });
    }),
  );
  return results;
}

// ---------------------------------------------------------------------------------------------
// Targets.

const pct = (v: number, digits = 2) => `${round(v * 100, digits)}%`;

export function checkTargets(cells: readonly CellResult[]): TargetResult[] {
  const targets: TargetResult[] = [];
  const traffic = cells.filter((c) => c.family === 'traffic');
  const sum = (list: readonly CellResult[], f: (c: CellResult) => number) => list.reduce((a, c) => a + f(c), 0);

  const healthy = traffic.filter((c) => c.expect === 'healthy');
  const hk = sum(healthy, (c) => c.rolledBack);
  const hn = sum(healthy, (c) => c.windows);
  const worst = healthy.filter((c) => c.baselineErrors === 0.02);
  const wk = sum(worst, (c) => c.rolledBack);
  const wn = sum(worst, (c) => c.windows);
  const [lo, hi] = wilson(hk, hn);
  targets.push({
    id: 'false-rollbacks',
    description: '<= 0.1 % false rollbacks of healthy 10-minute windows at the default budget',
    pass: hn >= 1 && hk / hn <= 0.001,
    detail: `${hk}/${hn} = ${pct(hk / hn, 3)} (95 % CI ${pct(lo, 3)}–${pct(hi, 3)}); at 2 % errors (the tolerance) ${wk}/${wn}`,
  });

  const latencyBenign = traffic.filter((c) => c.expect === 'benign' && c.scenario.startsWith('latency'));
  const lk = sum(latencyBenign, (c) => c.rolledBack);
  const ln = sum(latencyBenign, (c) => c.windows);
  targets.push({
    id: 'benign-latency',
    description: 'latency x1.5 and x2 (benign) rolled back in <= 0.1 % of windows',
    pass: ln >= 1 && lk / ln <= 0.001,
    detail: `${lk}/${ln}` + latencyBenign.filter((c) => c.rolledBack > 0).map((c) => `; ${c.scenario} ${c.rate}/s ${c.buckets} @${c.faultStartS}s: ${c.rolledBack}/${c.windows}`).join(''),
  });

  const blips = cells.filter((c) => c.scenario.includes('blip 0.5s'));
  const bk = sum(blips, (c) => c.rolledBack);
  targets.push({
    id: 'blip-0.5s',
    description: 'a 0.5 s blip (100 % errors, or failed health checks) never rolls back',
    pass: bk === 0,
    detail: `${bk}/${sum(blips, (c) => c.windows)} windows rolled back`,
  });

  const must = cells.filter((c) => c.expect === 'detect');
  const missed = must.filter((c) => c.detection!.detected < c.detection!.of);
  targets.push({
    id: 'detect-all',
    description: 'every window with a fault >= 1.5 x threshold (errors 10/50/100 %, latency x3.5/x10, health outages) detected',
    pass: missed.length === 0,
    detail:
      `${sum(must, (c) => c.detection!.detected)}/${sum(must, (c) => c.detection!.of)} detected` +
      missed.map((c) => `; missed ${c.detection!.of - c.detection!.detected}/${c.detection!.of}: ${c.scenario} ${label(c)}`).join(''),
  });

  const ten50 = traffic.find((c) => c.scenario === 'errors 10%' && c.rate === 50 && c.faultStartS === 0);
  const med = ten50?.delayRequests?.p50 ?? null;
  targets.push({
    id: 'errors-10pct-50rps',
    description: '10 % errors at 50 req/s from the window open: median detection <= 150 requests',
    pass: med !== null && med <= 150,
    detail: ten50 ? `median ${med} requests (p95 ${ten50.delayRequests?.p95 ?? '–'}), ${ten50.delaySeconds?.p50 ?? '–'} s` : 'not run',
  });

  const late = traffic.filter((c) => c.scenario === 'errors 10%' && c.faultStartS === 300);
  const lateJudged = late.filter((c) => c.rate >= 50);
  targets.push({
    id: 'late-fault-5s',
    description: '10 % errors starting 5 min in: decided <= 5 s after the start (p95, at 50 and 500 req/s)',
    pass: lateJudged.length > 0 && lateJudged.every((c) => c.delaySeconds?.p95 !== null && c.delaySeconds!.p95! <= 5 && c.detection!.detected === c.detection!.of),
    detail: late.map((c) => `${c.rate}/s: p50 ${c.delaySeconds?.p50 ?? '–'} s, p95 ${c.delaySeconds?.p95 ?? '–'} s, max ${c.delaySeconds?.max ?? '–'} s`).join('; ') + ' (5 req/s informative)',
  });

  const outages = cells.filter((c) => c.scenario === 'health: outage (refused)');
  const early = outages.filter((c) => c.faultStartS !== null && c.faultStartS < SCHEDULE.fastForMs / 1000);
  targets.push({
    id: 'health-outage',
    description: 'health: a full outage breaches in about min_span + one check (p95 <= 1.5 s while checks run every 250 ms)',
    pass: early.length > 0 && early.every((c) => c.detection!.detected === c.detection!.of && c.delaySeconds!.p95! <= 1.5),
    detail: outages.map((c) => `@${c.faultStartS}s: p50 ${c.delaySeconds?.p50 ?? '–'} s, p95 ${c.delaySeconds?.p95 ?? '–'} s`).join('; '),
  });
  return targets;
}

const label = (c: CellResult) => `${c.family === 'traffic' ? `${c.rate}/s ` : ''}${c.scenario.startsWith('latency') ? `${c.buckets} ` : ''}${c.faultStartS !== null ? `@${c.faultStartS}s` : ''}`.trim();

// ---------------------------------------------------------------------------------------------

export async function runCalibration(options: CalibrateOptions, progress: (done: number, total: number) => void = () => {}): Promise<CalibrationResults> {
  const started = Date.now();
  const loadBefore = await loadavg();
  let loadMax = Number(loadBefore.split(' ')[0]) || 0;
  const sampler = setInterval(() => {
    void loadavg().then((l) => (loadMax = Math.max(loadMax, Number(l.split(' ')[0]) || 0)));
  }, 5000);
  sampler.unref();
  const list = allCells(options.windows);
  let raw: WindowResult[][];
  try {
    raw = await runAll(list, options, progress);
  } finally {
    clearInterval(sampler);
  }
  const cells = list.map((c, i) => summarise(c, raw[i]!));
  const loadAfter = await loadavg();
  loadMax = Math.max(loadMax, Number(loadAfter.split(' ')[0]) || 0);
  const count = (f: (c: CellResult) => boolean) => cells.filter((c) => c.family === 'traffic' && f(c)).reduce((a, c) => a + c.windows, 0);
  const rules = defaultRules('traffic');
  const params = sequentialParams({ threshold: rules.error_rate!.threshold, tolerance: rules.error_rate!.threshold * 0.4, budget: rules.error_rate!.budget, looks: LOOKS, minSpanMs: rules.error_rate!.min_span });
  return {
    tool: 'release-guard calibrate',
    date: new Date(started).toISOString(),
    command: `npm run calibrate${process.argv.length > 2 && process.argv[1]?.endsWith('calibrate.js') ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`,
    seed: options.seed,
    windowsOption: options.windows,
    quick: options.quick,
    machine: {
      cpu: os.cpus()[0]?.model ?? 'unknown',
      cores: os.cpus().length,
      node: process.version,
      loadavgBefore: loadBefore,
      loadavgAfter: loadAfter,
      loadavg1Max: loadMax,
      wallMs: Date.now() - started,
      workers: Math.max(1, options.workers),
    },
    model: {
      windowMs: SCHEDULE.windowMs,
      schedule: SCHEDULE,
      looks: LOOKS,
      crossingLevel: round(params.h, 3),
      p1: round(params.p1, 4),
      rules: { error_rate: rules.error_rate, latency_ratio: rules.latency_ratio, health: defaultRules('health').health },
      probe: 'scrape (traffic counts per interval), http (health checks)',
      latency: `log-normal, median ${LATENCY_MEDIAN_MS} ms, p95 ${round(BASELINE_P95_MS, 1)} ms (= baselineP95); boundary max(3 × p95, 50 ms) = ${round(3 * BASELINE_P95_MS, 1)} ms`,
      trueSlowShareAtBoundary: Object.fromEntries([1, 1.5, 2, 3.5, 10].map((f) => [`x${f}`, round(trueSlowShare(3 * BASELINE_P95_MS, f), 5)])),
      bucketSets: BUCKET_SETS,
      faultBaselineErrors: FAULT_BASELINE_ERRORS,
    },
    totals: {
      healthy: count((c) => c.expect === 'healthy'),
      benign: count((c) => c.expect === 'benign'),
      faulty: count((c) => c.expect === 'detect' || c.expect === 'informative'),
      informative: count((c) => c.expect === 'informative'),
      windows: cells.reduce((a, c) => a + c.windows, 0),
    },
    cells,
    targets: checkTargets(cells),
  };
}

async function loadavg(): Promise<string> {
  try {
    return (await readFile('/proc/loadavg', 'utf8')).split(' ').slice(0, 3).join(' ');
  } catch {
    return os.loadavg().map((v) => v.toFixed(2)).join(' ');
  }
}

// ---------------------------------------------------------------------------------------------
// The report: a compact table (one line per scenario, start and bucket set; one column per rate).

const RATE_COLUMNS = [5, 50, 500];

function cellText(c: CellResult | undefined): string {
  if (!c) return '–';
  if (c.falseRollback) return `${c.rolledBack}/${c.windows}`;
  const d = c.detection!;
  const det = d.detected === d.of ? 'all' : `${d.detected}/${d.of}`;
  const early = c.early > 0 ? ` (+${c.early} early)` : '';
  if (d.detected === 0) return `${det}${early}`;
  return `${det} ${c.delayRequests!.p50}/${c.delayRequests!.p95}req ${c.delaySeconds!.p50}/${c.delaySeconds!.p95}s${early}`;
}

export function renderTable(results: CalibrationResults): string[] {
  const lines: string[] = [];
  const traffic = results.cells.filter((c) => c.family === 'traffic');
  const groups = new Map<string, CellResult[]>();
  for (const c of traffic) {
    const key = `${c.scenario}|${c.scenario.startsWith('latency') || c.expect === 'healthy' ? c.buckets : ''}|${c.faultStartS ?? ''}`;
    groups.set(key, [...(groups.get(key) ?? []), c]);
  }
  lines.push('| scenario | buckets | fault at | expect | 5 req/s | 50 req/s | 500 req/s |', '| --- | --- | --- | --- | --- | --- | --- |');
  for (const [key, list] of groups) {
    const [scenario, buckets, start] = key.split('|');
    const cols = RATE_COLUMNS.map((r) => cellText(list.find((c) => c.rate === r)));
    lines.push(`| ${scenario} | ${buckets || '–'} | ${start ? `${start}s` : '–'} | ${list[0]!.expect} | ${cols.join(' | ')} |`);
  }
  const healthy = traffic.filter((c) => c.expect === 'healthy');
  const k = healthy.reduce((a, c) => a + c.rolledBack, 0);
  const n = healthy.reduce((a, c) => a + c.windows, 0);
  const [lo, hi] = wilson(k, n);
  lines.push('', `Healthy traffic windows, all rates and bucket sets: ${k}/${n} rolled back = ${pct(k / Math.max(1, n), 3)} (95 % Wilson CI ${pct(lo, 3)}–${pct(hi, 3)}).`);
  lines.push('', '| health rule | fault at | expect | windows | rolled back | delay p50/p95/max |', '| --- | --- | --- | --- | --- | --- |');
  for (const c of results.cells.filter((x) => x.family === 'health')) {
    const delay = c.delaySeconds ? `${c.delaySeconds.p50}/${c.delaySeconds.p95}/${c.delaySeconds.max}s (${c.delayRequests!.p50}/${c.delayRequests!.p95} checks)` : '–';
    lines.push(`| ${c.scenario} | ${c.faultStartS !== null ? `${c.faultStartS}s` : '–'} | ${c.expect} | ${c.windows} | ${c.rolledBack}${c.early ? ` (${c.early} early)` : ''} | ${delay} |`);
  }
  return lines;
}

export function renderTargets(results: CalibrationResults): string[] {
  return results.targets.map((t) => `${t.pass ? 'PASS' : 'FAIL'} ${t.id}: ${t.description} — ${t.detail}`);
}

// ---------------------------------------------------------------------------------------------
// CLI.

function parseArgs(argv: string[]): CalibrateOptions & { out: string | null } {
  const options = { windows: FULL_WINDOWS, seed: DEFAULT_SEED, quick: false, workers: Math.min(2, Math.max(1, os.cpus().length)), out: null as string | null };
  let windowsGiven = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${arg} needs a value`);
      return v;
    };
    if (arg === '--windows') {
      options.windows = positiveInt(arg, value());
      windowsGiven = true;
    } else if (arg === '--seed') options.seed = positiveInt(arg, value(), true);
    else if (arg === '--workers') options.workers = positiveInt(arg, value(), true);
    else if (arg === '--out') options.out = value();
    else if (arg === '--quick') options.quick = true;
    else if (arg === '--help' || arg === '-h') {
      console.log('usage: npm run calibrate -- [--windows N] [--seed S] [--quick] [--workers K] [--out FILE]');
      process.exit(0);
    } else throw new Error(`unknown option ${arg}`);
  }
  if (options.quick && !windowsGiven) options.windows = QUICK_WINDOWS;
  return options;
}

function positiveInt(name: string, text: string, zero = false): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < (zero ? 0 : 1)) throw new Error(`${name}: not a ${zero ? 'non-negative' : 'positive'} integer: ${text}`);
  return n;
}

const MD_START = '<!-- calibration:start -->';
const MD_END = '<!-- calibration:end -->';

export function renderMarkdown(results: CalibrationResults, jsonPath: string): string {
  const m = results.machine;
  const lines = [
    MD_START,
    '## Calibration',
    '',
    `\`${results.command}\` — ${results.date.slice(0, 16).replace('T', ' ')} UTC, ${m.cpu} (${m.cores} cores), node ${m.node}, ${m.workers} workers; ` +
      `load average (1/5/15 min) ${m.loadavgBefore} before, ${m.loadavgAfter} after, 1-min max ${m.loadavg1Max} during the run; wall time ${round(m.wallMs / 1000, 1)} s. ` +
      `Seed ${results.seed}; results: [${jsonPath}](${jsonPath}).`,
    '',
    'What is measured: seeded, simulated 10-minute release windows pushed through the pure rules (`evaluateRules`, default settings: error_rate 5 %, tolerance 2 %, latency_ratio 3× baseline p95 with 2 % tolerance, budget 0.1 %, min_span 1 s; health 3 consecutive over 1 s), evaluated after every sample as the guard does. ' +
      `Traffic samples are shaped as the scrape probe gives them (requests, errors and cumulative latency buckets per interval) on the default schedule (every 250 ms for 2 minutes, then every second: ${LOOKS} looks); ` +
      `requests per interval are Poisson, errors binomial, latencies log-normal (median ${LATENCY_MEDIAN_MS} ms, p95 ${round(BASELINE_P95_MS, 1)} ms = the baseline) counted into prom-client's default buckets or a fine set. ` +
      `Faults replace the error rate (baseline ${pct(FAULT_BASELINE_ERRORS, 1)} around them) or multiply latencies from their start (window open, 1, 5 or 9 minutes in). ` +
      'A healthy or benign window that rolls back is a false rollback; for faults, the delay runs from the fault’s start to the evaluation that failed, in seconds and in requests (health: checks) since the start. ' +
      'The health rule reads an http probe (every 250 ms for 2 minutes and while the latest check failed, else every second); failing checks are refused at once or hang to the timeout (500 ms fast, 2 s otherwise).',
    '',
    `Windows: ${results.totals.healthy} healthy, ${results.totals.benign} benign, ${results.totals.faulty} faulty (${results.totals.informative} of them informative: 5.5 %, 7 %, 2 s blips), all traffic; plus health-rule windows. ` +
      'Cells: healthy/benign `rolled back/windows`; faults `detected p50/p95 requests p50/p95 seconds` ("all": every window not rolled back before the fault).',
    '',
    ...renderTable(results),
    '',
    '### Targets',
    '',
    ...renderTargets(results).map((t) => `- ${t}`),
    MD_END,
  ];
  return lines.join('\n');
}

async function writeBenchmarksSection(markdown: string): Promise<string> {
  const file = path.join(PROJECT_ROOT, 'BENCHMARKS.md');
  const text = await readFile(file, 'utf8').catch(() => '# Benchmarks\n');
  const start = text.indexOf(MD_START);
  const end = text.indexOf(MD_END);
  const next = start >= 0 && end > start ? text.slice(0, start) + markdown + text.slice(end + MD_END.length) : `${text.trimEnd()}\n\n${markdown}\n`;
  await writeFile(file, next);
  return file;
}

async function main(): Promise<number> {
  const options = parseArgs(process.argv.slice(2));
  const t0 = Date.now();
  let lastShown = 0;
  const results = await runCalibration(options, (done, total) => {
    if (Date.now() - lastShown > 5000 || done === total) {
      lastShown = Date.now();
      process.stderr.write(`[calibrate +${Math.round((Date.now() - t0) / 1000)}s] ${done}/${total} chunks\n`);
    }
  });
  const out = options.out ?? path.join(PROJECT_ROOT, 'bench', 'results', `calibrate-${results.date.replace(/[:.]/g, '-')}${options.quick ? '-quick' : ''}.json`);
  await mkdir(path.dirname(path.resolve(out)), { recursive: true });
  await writeFile(out, `${JSON.stringify(results, null, 2)}\n`);
  console.log(renderTable(results).join('\n'));
  console.log('');
  for (const line of renderTargets(results)) console.log(line);
  // Any run but --quick into the repository's results stands for the calibration in BENCHMARKS.md
  // (its counts say how many windows it had).
  if (!options.quick && options.out === null) {
    const md = await writeBenchmarksSection(renderMarkdown(results, path.relative(PROJECT_ROOT, out)));
    console.log(`\n${path.relative(PROJECT_ROOT, md)}: Calibration section written`);
  }
  console.log(`\nresults: ${out} (${round(results.machine.wallMs / 1000, 1)} s, ${results.totals.windows} windows)`);
  return 0;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().then(
    (code) => process.exit(code),
    (error: unknown) => {
      console.error(error instanceof Error ? error.message : error);
      process.exit(2);
    },
  );
}
