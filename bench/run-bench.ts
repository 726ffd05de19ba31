/**
 * `npm run bench`: the scenario matrix against release-guard and monit, the guard's cost, and
 * the cost of each rollback strategy; writes bench/results/<date>.json and BENCHMARKS.md.
 *
 *   npm run bench                        # full run: 3 runs of everything (~40 min on 2 cores)
 *   npm run bench -- --runs 5            # more runs
 *   npm run bench -- --only 5xx,hang     # some scenarios (ids in bench/scenarios.ts), or cost, strategy
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
import { PROJECT_ROOT } from '../test/fixtures/demo-app/releases.js';
import { measureCost, type CostResult } from './cost.js';
import { runGuardScenario, RATE } from './guard-runner.js';
import { startBenchDb, type BenchDb } from './mariadb.js';
import { ensureMonit, monitVersion, runMonitScenario } from './monit-runner.js';
import { run as runProgram } from './proc.js';
import { checkTargets, machineInfo, renderMarkdown, type BenchResults } from './report.js';
import { summarize, type RunResult } from './results.js';
import { BASE_LATENCY_MS, FAST_FOR_MS, FAST_INTERVAL_MS, INITIAL_DELAY_MS, INSTANCES, INTERVAL_MS, scenarios, SOURCES, WINDOW_MS, type Scenario, type TrafficSource } from './scenarios.js';
import { ensureNginx, nginxVersion } from './nginx.js';
import { runStrategy, VARIANTS, type StrategyRun } from './strategy-cost.js';
import { readingOf } from './reading.js';

interface Options {
  runs: number;
  only: string[] | null;
  quick: boolean;
  monit: boolean;
  /** Re-render BENCHMARKS.md from a results file (no new measurement). */
  render: string | null;
  /** With --render: write BENCHMARKS.md even from partial results. */
  publish: boolean;
  /** Where results (and a full run's BENCHMARKS.md) go instead of the repository. */
  out: string | null;
  /** The guard's traffic sources to run every scenario with. */
  sources: TrafficSource[];
}

function parseArgs(argv: string[]): Options {
  const options: Options = { runs: 3, only: null, quick: false, monit: true, render: null, publish: false, out: null, sources: [...SOURCES] };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--runs') options.runs = Number(argv[++i]);
    else if (arg.startsWith('--runs=')) options.runs = Number(arg.slice(7));
    else if (arg === '--only') options.only = (argv[++i] ?? '').split(',').filter(Boolean);
    else if (arg.startsWith('--only=')) options.only = arg.slice(7).split(',').filter(Boolean);
    else if (arg === '--quick') options.quick = true;
    else if (arg === '--no-monit') options.monit = false;
    else if (arg === '--sources' || arg.startsWith('--sources=')) {
      const list = (arg === '--sources' ? (argv[++i] ?? '') : arg.slice(10)).split(',').filter(Boolean);
      for (const source of list) if (!SOURCES.includes(source as TrafficSource)) throw new Error(`unknown traffic source "${source}"; known: ${SOURCES.join(', ')}`);
      options.sources = list as TrafficSource[];
    }
    else if (arg === '--render') options.render = argv[++i] ?? null;
    else if (arg === '--publish') options.publish = true;
    else if (arg === '--out') options.out = argv[++i] ?? '';
    else if (arg.startsWith('--out=')) options.out = arg.slice(6);
    else if (arg === '--help' || arg === '-h') {
      console.log('usage: npm run bench -- [--runs N] [--only scenario,...|cost|strategy] [--sources scrape,access_log] [--quick] [--no-monit] [--out DIR] | [--render bench/results/FILE.json[,FILE.json] [--publish] [--out DIR]]');
      process.exit(0);
    } else throw new Error(`unknown option ${arg}`);
  }
  if (!Number.isInteger(options.runs) || options.runs < 1 || options.runs > 20) throw new Error('--runs must be 1..20');
  if (options.out === '') throw new Error('--out needs a directory');
  if (options.sources.length === 0) throw new Error('--sources needs at least one of scrape, access_log');
  if (options.quick && !argv.some((a) => a.startsWith('--runs'))) options.runs = 1;
  return options;
}

/** Only a full run (every scenario on every source, cost and strategy) may stand for the bench in BENCHMARKS.md. */
const isFull = (options: { only: string[] | null; quick: boolean; sources?: readonly string[] }) =>
  !options.only && !options.quick && (options.sources ?? SOURCES).length === SOURCES.length;

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

/** BENCHMARKS.md for a full run's results (or with --publish), its tables printed for any other. */
async function writeReport(results: BenchResults, jsonPaths: string, out: string | null, publish = false): Promise<void> {
  const { benchmarksMd } = outputs(out);
  // The links to the results files, relative to where BENCHMARKS.md is (or would be).
  const links = jsonPaths.split(',').map((p) => path.relative(path.dirname(benchmarksMd), p));
  const markdown = renderMarkdown(results, links, readingOf(results));
  if (isFull(results.options) || publish) {
    await mkdir(path.dirname(benchmarksMd), { recursive: true });
    // The Calibration section belongs to `npm run calibrate`: keep it as it is.
    const before = await readFile(benchmarksMd, 'utf8').catch(() => '');
    const calibration = /<!-- calibration:start -->[\s\S]*?<!-- calibration:end -->/.exec(before)?.[0];
    await writeFile(benchmarksMd, calibration ? `${markdown.trimEnd()}\n\n${calibration}\n` : markdown);
    log(`${shown(benchmarksMd)} written from ${jsonPaths.split(',').map(shown).join(', ')}`);
  } else {
    console.log(`\n${markdown}`);
    log(`printed from ${jsonPaths.split(',').map(shown).join(', ')}`);
  }
}

const QUICK = ['crash-loop', '5xx', 'one-failed-probe'];
const t0 = Date.now();
const log = (message: string) => console.log(`[bench +${((Date.now() - t0) / 1000).toFixed(0)}s] ${message}`);
const secs = (ms: number | null) => (ms === null ? '–' : `${(ms / 1000).toFixed(2)}s`);

/**
 * Writes BENCHMARKS.md again from a results file: for changes to the report, never to the numbers.
 * Several files (comma-separated; e.g. a long scenario measured by its own invocation) are shown
 * as one: their runs side by side, the first file's date and setup, the machine's load over all.
 * `--publish` writes BENCHMARKS.md even for partial results (it says which scenarios were run).
 */
async function render(files: string, out: string | null, publish: boolean): Promise<number> {
  const paths = files.split(',').filter(Boolean).map((f) => path.resolve(PROJECT_ROOT, f));
  const all = (await Promise.all(paths.map(async (p) => JSON.parse(await readFile(p, 'utf8')) as BenchResults))).sort((a, b) => Date.parse(a.date) - Date.parse(b.date));
  const results = all[0]!;
  if (all.length > 1) results.invocations = all.map((r) => ({ command: r.command, date: r.date, durationSeconds: r.durationSeconds, ...(r.revision ? { revision: r.revision } : {}) }));
  for (const more of all.slice(1)) {
    results.runs.push(...more.runs);
    for (const s of more.scenarios) if (!results.scenarios.some((x) => x.id === s.id)) results.scenarios.push(s);
    results.cost ??= more.cost;
    results.strategies.push(...more.strategies);
    results.durationSeconds = Math.max(results.durationSeconds, Math.round((Date.parse(more.date) + more.durationSeconds * 1000 - Date.parse(results.date)) / 1000));
    results.command = `${results.command}; ${more.command}`;
    // Partial if any part was: the scenarios of both, quick if either was.
    results.options.only = results.options.only || more.options.only ? [...(results.options.only ?? []), ...(more.options.only ?? [])] : null;
    results.options.quick = results.options.quick || more.options.quick;
    const lo = [results.loadAverage, more.loadAverage];
    results.loadAverage = { n: lo[0]!.n + lo[1]!.n, median: Math.max(lo[0]!.median ?? 0, lo[1]!.median ?? 0), min: Math.min(lo[0]!.min ?? Infinity, lo[1]!.min ?? Infinity), max: Math.max(lo[0]!.max ?? 0, lo[1]!.max ?? 0) };
    results.machine.monit ??= more.machine.monit;
    results.machine.mariadb ??= more.machine.mariadb;
  }
  if (!results.revision && process.env.BENCH_REVISION) results.revision = process.env.BENCH_REVISION;
  // Scenario definitions the file may predate (e.g. faultOutcomes), by id; the measurements are the file's.
  const defs = new Map(scenarios().map((s) => [s.id, s]));
  results.scenarios = results.scenarios.map((s) => ({ ...defs.get(s.id), ...s, faultOutcomes: s.faultOutcomes ?? defs.get(s.id)?.faultOutcomes ?? [] }));
  // In the order the bench defines them, whichever file they came from.
  const order = [...defs.keys()];
  results.scenarios.sort((a, b) => order.indexOf(a.id) - order.indexOf(b.id));
  // Older results ran the scrape source only.
  for (const r of results.runs) if (r.tool === 'release-guard' && !r.source) r.source = 'scrape';
  if (all.length > 1) results.loadAverageNote = 'the largest median and the full range of the merged runs';
  await writeReport(results, paths.join(','), out, publish);
  return 0;
}

async function main(): Promise<number> {
  const options = parseArgs(process.argv.slice(2));
  if (options.render) return render(options.render, options.out, options.publish);
  const all = scenarios({ client: 'mariadb', appDefaultsFile: '' });
  const known = new Set([...all.map((s) => s.id), 'cost', 'strategy']);
  for (const id of options.only ?? []) if (!known.has(id)) throw new Error(`unknown scenario "${id}"; known: ${[...known].join(', ')}`);
  const wanted = (id: string) => (options.only ? options.only.includes(id) : options.quick ? QUICK.includes(id) || id === 'cost' || id === 'strategy' : true);
  const selectedIds = all.filter((s) => wanted(s.id)).map((s) => s.id);
  const doCost = wanted('cost');
  // The code measured is the code checked out now, not when the run ends (commits may land meanwhile).
  const revision = process.env.BENCH_REVISION ?? (await gitRevision());
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
    // nginx in front of the app in every run (the access_log source reads its log; the load goes
    // through it for every tool and source, so all see the same path). Without nginx (not root, no
    // apt) only the scrape source can run, and the load goes to the app directly.
    let nginxBin: string | null = null;
    if (list.length > 0) {
      nginxBin = await ensureNginx().catch((error: unknown) => {
        if (options.sources.includes('access_log')) throw error;
        log(`no nginx (${error instanceof Error ? error.message : String(error)}): the load goes to the app directly`);
        return null;
      });
    }
    const mariadbVersion = db ? (await runProgram(db.client, ['--version'])).stdout.trim().replace(/^.*Distrib\s+|,.*$/g, '') : null;
    const machine = { ...(await machineInfo(monitBin ? await monitVersion(monitBin) : null, mariadbVersion)), nginx: nginxBin ? await nginxVersion(nginxBin) : null };
    log(`machine: ${machine.cpuModel}, ${machine.cores} cores, ${machine.memoryGb} GB, ${machine.kernel}, Node ${machine.node}`);
    log(`${list.length} scenarios × ${options.runs} runs × sources ${options.sources.join(', ')}${monitBin ? ', with monit' : ''}${doCost ? ', cost' : ''}${doStrategy ? ', strategy cost' : ''}`);

    const ctx = { ...(db ? { db } : {}), instances: INSTANCES, nginx: nginxBin, log };
    const runs: RunResult[] = [];
    for (let run = 1; run <= options.runs; run++) {
      for (const scenario of list) {
        for (const source of options.sources) {
          const g = await runGuardScenario(scenario, run, ctx, source);
          runs.push(g);
          log(`${scenario.id} #${run} release-guard (${source}): ${describe(g)}`);
        }
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
    const full = isFull(options);
    const results: BenchResults = {
      date: new Date(t0).toISOString(),
      durationSeconds: Math.round((Date.now() - t0) / 1000),
      command: `npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`,
      ...(revision ? { revision } : {}),
      machine,
      loadAverage: summarize(loads),
      options: { runs: options.runs, only: options.only, quick: options.quick, sources: options.sources },
      setup: {
        rate: RATE,
        instances: ctx.instances,
        execMode: 'cluster',
        sources: options.sources,
        front: nginxBin ? 'nginx' : 'none',
        window: `${WINDOW_MS / 60_000} min`,
        baseLatencyMs: BASE_LATENCY_MS,
        interval: `${INTERVAL_MS / 1000} s`,
        fastInterval: `${FAST_INTERVAL_MS} ms`,
        fastFor: `${FAST_FOR_MS / 1000} s`,
        initialDelay: `${INITIAL_DELAY_MS / 1000} s`,
      },
      scenarios: list.map(({ id, title, kind, targetText, monit, targets, observeMs, faultOutcomes, faultForMs, injectAfterMs }) => ({
        id,
        title,
        kind,
        monit,
        faultOutcomes,
        injectAfterMs,
        ...(faultForMs !== undefined ? { faultForMs } : {}),
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
  if (r.rolledBackBeforeFault) return `ROLLED BACK BEFORE THE FAULT: ${r.trigger} (${r.reason})`;
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
