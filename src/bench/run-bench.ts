/**
 * `npm run bench`: the scenario matrix against release-guard and monit, the guard's cost, and
 * the cost of each rollback strategy; writes bench/results/<date>.json and BENCHMARKS.md.
 *
 *   npm run bench                        # full run: 3 runs of everything (~40 min on 2 cores)
 *   npm run bench -- --runs 5            # more runs
 *   npm run bench -- --only 5xx,hang     # some scenarios (ids in src/bench/scenarios.ts), or cost, strategy
 *   npm run bench -- --quick             # a smoke run: 1 run of a few scenarios, short cost
 *   npm run bench -- --no-monit          # release-guard only
 *   npm run bench -- --only 5xx --out /tmp/b  # results into /tmp/b, nothing into the repository
 *   npm run bench -- --render bench/results/FILE.json  # BENCHMARKS.md again from a results file
 *
 * Only a full run (no --only, no --quick) rewrites BENCHMARKS.md; others print its tables.
 * --out DIR puts the results file (and a full run's BENCHMARKS.md) into DIR instead of
 * bench/results/ (and the repository root): `npm test`'s smoke run (test/bench/smoke.test.ts)
 * uses it with a temp dir.
 * Everything is bounded (each run has a hard timeout, traffic stops by itself) and every process
 * it starts (pm2 daemons with private PM2_HOMEs, apps, the guard, monit, MariaDB) is stopped,
 * even when a run fails or the bench is interrupted.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { PROJECT_ROOT } from '../demo/demo-app.js';
import { measureCost, type CostResult } from './cost.js';
import { runGuardScenario, RATE } from './guard-runner.js';
import { startBenchDb, type BenchDb } from './mariadb.js';
import { ensureMonit, monitVersion, runMonitScenario } from './monit-runner.js';
import { run as runProgram } from './proc.js';
import { checkTargets, machineInfo, renderMarkdown, type BenchResults } from './report.js';
import { summarize, type RunResult } from './results.js';
import { BASE_LATENCY_MS, FAST_FOR_MS, FAST_INTERVAL_MS, INITIAL_DELAY_MS, INTERVAL_MS, scenarios, type Scenario } from './scenarios.js';
import { runStrategy, VARIANTS, type StrategyRun } from './strategy-cost.js';
import { readingOf } from './reading.js';

interface Options {
  runs: number;
  only: string[] | null;
  quick: boolean;
  monit: boolean;
  /** Re-render BENCHMARKS.md from a results file (no new measurement). */
  render: string | null;
  /** Where results (and a full run's BENCHMARKS.md) go instead of the repository. */
  out: string | null;
}

function parseArgs(argv: string[]): Options {
  const options: Options = { runs: 3, only: null, quick: false, monit: true, render: null, out: null };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--runs') options.runs = Number(argv[++i]);
    else if (arg.startsWith('--runs=')) options.runs = Number(arg.slice(7));
    else if (arg === '--only') options.only = (argv[++i] ?? '').split(',').filter(Boolean);
    else if (arg.startsWith('--only=')) options.only = arg.slice(7).split(',').filter(Boolean);
    else if (arg === '--quick') options.quick = true;
    else if (arg === '--no-monit') options.monit = false;
    else if (arg === '--render') options.render = argv[++i] ?? null;
    else if (arg === '--out') options.out = argv[++i] ?? '';
    else if (arg.startsWith('--out=')) options.out = arg.slice(6);
    else if (arg === '--help' || arg === '-h') {
      console.log('usage: npm run bench -- [--runs N] [--only scenario,...|cost|strategy] [--quick] [--no-monit] [--out DIR] | [--render bench/results/FILE.json [--out DIR]]');
      process.exit(0);
    } else throw new Error(`unknown option ${arg}`);
  }
  if (!Number.isInteger(options.runs) || options.runs < 1 || options.runs > 20) throw new Error('--runs must be 1..20');
  if (options.out === '') throw new Error('--out needs a directory');
  if (options.quick && !argv.some((a) => a.startsWith('--runs'))) options.runs = 1;
  return options;
}

/** Only a full run (every scenario, cost and strategy) may stand for the bench in BENCHMARKS.md. */
const isFull = (options: { only: string[] | null; quick: boolean }) => !options.only && !options.quick;

/** Where results files and BENCHMARKS.md go: the repository, or everything into --out. */
function outputs(out: string | null): { resultsDir: string; benchmarksMd: string } {
  if (!out) return { resultsDir: path.join(PROJECT_ROOT, 'bench', 'results'), benchmarksMd: path.join(PROJECT_ROOT, 'BENCHMARKS.md') };
  const dir = path.resolve(out);
  return { resultsDir: dir, benchmarksMd: path.join(dir, 'BENCHMARKS.md') };
}

/** A path for the log: relative inside the repository, absolute outside (--out). */
function shown(file: string): string {
  const relative = path.relative(PROJECT_ROOT, file);
  return relative.startsWith('..') || path.isAbsolute(relative) ? file : relative;
}

/** BENCHMARKS.md for a full run's results, its tables printed for any other. */
async function writeReport(results: BenchResults, jsonPath: string, out: string | null): Promise<void> {
  const { benchmarksMd } = outputs(out);
  // The link to the results file, relative to where BENCHMARKS.md is (or would be).
  const markdown = renderMarkdown(results, path.relative(path.dirname(benchmarksMd), jsonPath), readingOf(results));
  if (isFull(results.options)) {
    await mkdir(path.dirname(benchmarksMd), { recursive: true });
    // The Calibration section belongs to `npm run calibrate`: keep it as it is.
    const before = await readFile(benchmarksMd, 'utf8').catch(() => '');
    const calibration = /<!-- calibration:start -->[\s\S]*?<!-- calibration:end -->/.exec(before)?.[0];
    await writeFile(benchmarksMd, calibration ? `${markdown.trimEnd()}\n\n${calibration}\n` : markdown);
    log(`${shown(benchmarksMd)} written from ${shown(jsonPath)}`);
  } else {
    console.log(`\n${markdown}`);
    log(`printed from ${shown(jsonPath)}`);
  }
}

const QUICK = ['crash-loop', '5xx', 'one-failed-probe'];
const t0 = Date.now();
const log = (message: string) => console.log(`[bench +${((Date.now() - t0) / 1000).toFixed(0)}s] ${message}`);
const secs = (ms: number | null) => (ms === null ? '–' : `${(ms / 1000).toFixed(2)}s`);

/** Writes BENCHMARKS.md again from a results file: for changes to the report, never to the numbers. */
async function render(file: string, out: string | null): Promise<number> {
  const jsonPath = path.resolve(PROJECT_ROOT, file);
  const results = JSON.parse(await readFile(jsonPath, 'utf8')) as BenchResults;
  if (!results.revision && process.env.BENCH_REVISION) results.revision = process.env.BENCH_REVISION;
  // Scenario definitions the file may predate (e.g. faultOutcomes), by id; the measurements are the file's.
  const defs = new Map(scenarios().map((s) => [s.id, s]));
  results.scenarios = results.scenarios.map((s) => ({ ...defs.get(s.id), ...s, faultOutcomes: s.faultOutcomes ?? defs.get(s.id)?.faultOutcomes ?? [] }));
  await writeReport(results, jsonPath, out);
  return 0;
}

async function main(): Promise<number> {
  const options = parseArgs(process.argv.slice(2));
  if (options.render) return render(options.render, options.out);
  const all = scenarios({ client: 'mariadb', appDefaultsFile: '' });
  const known = new Set([...all.map((s) => s.id), 'cost', 'strategy']);
  for (const id of options.only ?? []) if (!known.has(id)) throw new Error(`unknown scenario "${id}"; known: ${[...known].join(', ')}`);
  const wanted = (id: string) => (options.only ? options.only.includes(id) : options.quick ? QUICK.includes(id) || id === 'cost' || id === 'strategy' : true);
  const selectedIds = all.filter((s) => wanted(s.id)).map((s) => s.id);
  const doCost = wanted('cost');
  const doStrategy = wanted('strategy');

  // Load average through the run: how busy the machine was.
  const loads: number[] = [];
  const sampleLoad = async () => loads.push(Number((await readFile('/proc/loadavg', 'utf8').catch(() => '0')).split(' ')[0]));
  await sampleLoad();
  const loadTimer = setInterval(() => void sampleLoad(), 10_000);

  let db: BenchDb | undefined;
  let monitBin: string | null = null;
  try {
    if (selectedIds.includes('slow-db') || doCost) {
      log('starting a throwaway MariaDB');
      db = await startBenchDb();
      log(`MariaDB on 127.0.0.1:${db.port} (${(db.startupMs / 1000).toFixed(1)} s)`);
    }
    const list: Scenario[] = scenarios(db).filter((s) => selectedIds.includes(s.id) && (!s.needsDb || db));
    if (options.monit && list.some((s) => s.kind === 'fault' && s.monit.sees)) monitBin = await ensureMonit();
    const mariadbVersion = db ? (await runProgram(db.client, ['--version'])).stdout.trim().replace(/^.*Distrib\s+|,.*$/g, '') : null;
    const machine = await machineInfo(monitBin ? await monitVersion(monitBin) : null, mariadbVersion);
    log(`machine: ${machine.cpuModel}, ${machine.cores} cores, ${machine.memoryGb} GB, ${machine.kernel}, Node ${machine.node}`);
    log(`${list.length} scenarios × ${options.runs} runs${monitBin ? ', with monit' : ''}${doCost ? ', cost' : ''}${doStrategy ? ', strategy cost' : ''}`);

    const ctx = { ...(db ? { db } : {}), instances: 1, log };
    const runs: RunResult[] = [];
    for (let run = 1; run <= options.runs; run++) {
      for (const scenario of list) {
        const g = await runGuardScenario(scenario, run, ctx);
        runs.push(g);
        log(`${scenario.id} #${run} release-guard: ${describe(g)}`);
        if (monitBin && scenario.kind === 'fault' && scenario.monit.sees) {
          const m = await runMonitScenario(scenario, run, monitBin, ctx);
          runs.push(m);
          log(`${scenario.id} #${run} monit:         ${describe(m)}`);
        }
      }
    }

    let cost: CostResult | null = null;
    if (doCost) {
      log('cost: the guard process while guarding one service, then 200 endpoints');
      cost = await measureCost({ ...(db ? { db } : {}), seconds: options.quick ? 10 : 30, endpoints: 200, long: !options.quick, log });
      for (const w of cost.oneService) log(`  ${w.label}: CPU ${(w.cpuShare * 100).toFixed(2)} %, RSS ${w.rssMaxMb.toFixed(1)} MB max`);
      if (cost.endpoints) log(`  ${cost.endpoints.label}: CPU ${(cost.endpoints.cpuShare * 100).toFixed(1)} %, RSS ${cost.endpoints.rssMaxMb.toFixed(1)} MB, launch delay p99 ${cost.endpoints.delayP99Ms?.toFixed(1)} ms`);
      for (const e of cost.errors) log(`  cost failed: ${e}`);
    }

    const strategies: StrategyRun[] = [];
    if (doStrategy) {
      const variants = options.quick ? VARIANTS.slice(0, 1) : VARIANTS;
      for (let run = 1; run <= options.runs; run++) {
        for (const variant of variants) {
          const r = await runStrategy(variant, run, log);
          strategies.push(r);
          log(`strategy ${variant.strategy} ${variant.execMode}×${variant.instances} #${run}: ${r.completed ? `plan ${secs(r.planMs)}, verified ${secs(r.verifiedMs)}, all on v1 ${secs(r.servedMs)}, ${r.failedRequests} failed (${r.via})` : `FAILED: ${r.error?.split('\n')[0]}`}`);
        }
      }
    }

    clearInterval(loadTimer);
    await sampleLoad();
    const revision = process.env.BENCH_REVISION ?? (await gitRevision());
    const full = isFull(options);
    const results: BenchResults = {
      date: new Date(t0).toISOString(),
      durationSeconds: Math.round((Date.now() - t0) / 1000),
      command: `npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`,
      ...(revision ? { revision } : {}),
      machine,
      loadAverage: summarize(loads),
      options: { runs: options.runs, only: options.only, quick: options.quick },
      setup: {
        rate: RATE,
        instances: ctx.instances,
        execMode: 'cluster',
        baseLatencyMs: BASE_LATENCY_MS,
        interval: `${INTERVAL_MS / 1000} s`,
        fastInterval: `${FAST_INTERVAL_MS} ms`,
        fastFor: `${FAST_FOR_MS / 1000} s`,
        initialDelay: `${INITIAL_DELAY_MS / 1000} s`,
      },
      scenarios: list.map(({ id, title, kind, targetText, monit, targets, observeMs, faultOutcomes }) => ({
        id,
        title,
        kind,
        monit,
        faultOutcomes,
        ...(targetText ? { targetText } : {}),
        ...(targets ? { targets } : {}),
        ...(observeMs ? { observeMs } : {}),
      })),
      runs,
      cost,
      strategies,
    };
    const dir = outputs(options.out).resultsDir;
    await mkdir(dir, { recursive: true });
    const name = `${results.date.replace(/[:.]/g, '-')}${full ? '' : options.quick ? '-quick' : '-partial'}.json`;
    const jsonPath = path.join(dir, name);
    await writeFile(jsonPath, `${JSON.stringify(results, null, 2)}\n`);
    log(`results: ${shown(jsonPath)}`);
    await writeReport(results, jsonPath, options.out);
    const checks = checkTargets(results);
    const missed = checks.filter((c) => c.met === false);
    log(`${checks.length - missed.length}/${checks.length} targets met${missed.length ? `; missed: ${missed.map((c) => c.what).join('; ')}` : ''}`);
    // A run that broke is a bench failure (the smoke run must catch rot); a missed target is a finding.
    const broken = runs.filter((r) => !r.completed).length + strategies.filter((r) => !r.completed).length + (cost?.errors.length ?? 0);
    if (broken > 0) log(`${broken} run(s) broke: see the JSON`);
    return broken > 0 ? 1 : 0;
  } finally {
    clearInterval(loadTimer);
    await db?.stop().catch(() => undefined);
  }
}

/** `<commit>` of the measured tree, `+ local changes` when it has any; null outside a git checkout. */
async function gitRevision(): Promise<string | null> {
  const head = await runProgram('git', ['-C', PROJECT_ROOT, 'log', '-1', '--format=%h %s']);
  if (head.code !== 0) return null;
  // Tracked files only: an untracked node_modules link or results file is not a change to the code.
  const dirty = (await runProgram('git', ['-C', PROJECT_ROOT, 'status', '--porcelain', '--untracked-files=no'])).stdout.trim() !== '';
  return `${head.stdout.trim()}${dirty ? ' + local changes' : ''}`;
}

function describe(r: RunResult): string {
  if (!r.completed) return `BROKE: ${(r.error ?? '').split('\n')[0]}`;
  if (!r.rolledBack) return `no rollback; ${r.failedRequests} failed requests`;
  return `${r.trigger} → detect ${secs(r.detectionMs)}, recover ${secs(r.recoveryMs)}, ${r.failedRequests} failed${r.verifiedLagMs !== null ? `, verified +${secs(r.verifiedLagMs)}` : ''}`;
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    // The exit hook (proc.ts) kills every child and pm2 daemon and removes the temp dirs.
    console.error(`\n${signal}: stopping everything the bench started`);
    process.exit(130);
  });
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    console.error(`bench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    process.exitCode = 1;
  },
);
