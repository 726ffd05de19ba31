/**
 * The bench's outputs: the machine-readable results (bench/results/*.json) and BENCHMARKS.md —
 * the machine, the date, how to rerun, release-guard and monit side by side from the same run
 * (median and range), the issue's targets each marked met or missed, cost and strategy cost.
 */
import { readFile } from 'node:fs/promises';
import os from 'node:os';
import type { CostResult } from './cost.js';
import { summarize, type RunResult, type Summary, type Tool } from './results.js';
import { scenarios as allScenarios, type Scenario } from './scenarios.js';
import type { StrategyRun } from './strategy-cost.js';

export interface Machine {
  cpuModel: string;
  cores: number;
  memoryGb: number;
  kernel: string;
  node: string;
  monit: string | null;
  mariadb: string | null;
  nginx?: string | null;
}

export interface BenchResults {
  date: string;
  durationSeconds: number;
  command: string;
  /** The release-guard code measured: git commit (and whether the tree had changes). */
  revision?: string;
  machine: Machine;
  /** 1-minute load average sampled through the run (other work on the machine shows here). */
  loadAverage: Summary;
  /** Set when several results files are shown as one: how loadAverage was combined. */
  loadAverageNote?: string;
  /** Set when several results files are shown as one: each bench invocation. */
  invocations?: { command: string; date: string; durationSeconds: number; revision?: string }[];
  options: { runs: number; only: string[] | null; quick: boolean; sources?: string[] };
  setup: Record<string, unknown>;
  scenarios: Pick<Scenario, 'id' | 'title' | 'kind' | 'targetText' | 'monit' | 'targets' | 'observeMs' | 'faultOutcomes' | 'faultForMs' | 'injectAfterMs'>[];
  runs: RunResult[];
  cost: CostResult | null;
  strategies: StrategyRun[];
}

export async function machineInfo(monit: string | null, mariadb: string | null): Promise<Machine> {
  const cpuinfo = await readFile('/proc/cpuinfo', 'utf8').catch(() => '');
  return {
    cpuModel: /model name\s*:\s*(.+)/.exec(cpuinfo)?.[1]?.trim() ?? os.cpus()[0]?.model ?? 'unknown',
    cores: os.availableParallelism(),
    memoryGb: Number((os.totalmem() / 1024 ** 3).toFixed(1)),
    kernel: `${os.type()} ${os.release()}`,
    node: process.version,
    monit,
    mariadb,
  };
}

// ---- formatting

const sec = (ms: number | null | undefined) => (ms === null || ms === undefined ? '–' : `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`);
const num = (n: number | null | undefined) => (n === null || n === undefined ? '–' : Number.isInteger(n) ? String(n) : n.toFixed(1));

function medRange(s: Summary, fmt: (n: number) => string): string {
  if (s.median === null) return '–';
  if (s.n === 1 || s.min === s.max) return fmt(s.median);
  return `${fmt(s.median)} (${fmt(s.min!)}–${fmt(s.max!)})`;
}
/** With `of` (runs that completed), says when only some runs produced the value. */
const partial = (s: Summary, of?: number) => (of !== undefined && s.n > 0 && s.n < of ? ` — ${s.n} of ${of} runs` : '');
const secRange = (s: Summary, of?: number) => medRange(s, (n) => sec(n).replace(' s', '')) + (s.median === null ? '' : ' s') + partial(s, of);
const numRange = (s: Summary, of?: number) => medRange(s, (n) => num(n)) + partial(s, of);
const done = (runs: RunResult[]) => runs.filter((r) => r.completed).length;

function runsOf(results: BenchResults, scenario: string, tool: Tool, source?: string): RunResult[] {
  return results.runs.filter((r) => r.scenario === scenario && r.tool === tool && (source === undefined || (r.source ?? 'scrape') === source));
}

/** The guard's traffic sources in these results, scrape first (older results: scrape only). */
export function sourcesOf(results: BenchResults): string[] {
  const seen = new Set(results.runs.filter((r) => r.tool === 'release-guard').map((r) => r.source ?? 'scrape'));
  return (['scrape', 'access_log'] as const).filter((x) => seen.has(x));
}

/** How a traffic source is named in the tables. */
export const sourceLabel = (source: string) => (source === 'access_log' ? 'access_log (nginx)' : 'scrape (/metrics)');

function stat(runs: RunResult[], pick: (r: RunResult) => number | null | undefined): Summary {
  return summarize(runs.filter((r) => r.completed).map(pick));
}

/** What fired: the trigger, or for older results that only say "rule", the rule names of the reason. */
export function triggerOf(r: RunResult): string {
  if (r.trigger && r.trigger !== 'rule') return r.trigger;
  const rules = (r.reason ?? '').split('; ').map((part) => /^([a-z_]+):/.exec(part)?.[1]).filter(Boolean);
  return rules.length ? rules.join('+') : (r.trigger ?? '?');
}

function triggers(runs: RunResult[]): string {
  const seen = new Map<string, number>();
  for (const r of runs) if (r.rolledBack) seen.set(triggerOf(r), (seen.get(triggerOf(r)) ?? 0) + 1);
  return [...seen].map(([t, n]) => (runs.length > 1 ? `${t} ×${n}` : t)).join(', ') || 'none';
}

const rolled = (runs: RunResult[]) => `${runs.filter((r) => r.rolledBack).length}/${runs.filter((r) => r.completed).length}`;

export interface TargetCheck {
  what: string;
  target: string;
  measured: string;
  met: boolean | null;
}

/** Every target of the issue that this run can judge. */
export function checkTargets(results: BenchResults): TargetCheck[] {
  const checks: TargetCheck[] = [];
  const byId = new Map(results.scenarios.map((s) => [s.id, s]));
  const monit = (id: string) => runsOf(results, id, 'monit');
  const sources = sourcesOf(results);
  for (const s of results.scenarios) {
    if (s.kind !== 'fault') continue;
    for (const source of sources) {
      const runs = runsOf(results, s.id, 'release-guard', source);
      if (runs.length === 0) continue;
      const label = `${s.title} [${source}]`;
      // A rollback before the fault was switched on is a false one: it detects nothing.
      const det = stat(runs, (r) => (r.rolledBackBeforeFault ? null : r.detectionMs));
      const rec = stat(runs, (r) => r.recoveryMs);
      if (s.targets?.detectionMs !== undefined) {
        checks.push({ what: `${label}: detection`, target: `≤ ${sec(s.targets.detectionMs)}`, measured: det.median === null ? 'not detected' : `${sec(det.median)} median${det.n < done(runs) ? ` (${det.n} of ${done(runs)} runs detected)` : ''}`, met: det.median !== null && det.median <= s.targets.detectionMs && det.n === done(runs) });
      }
      if (s.targets?.recoveryMs !== undefined) {
        checks.push({ what: `${label}: recovery`, target: `≤ ${sec(s.targets.recoveryMs)}`, measured: rec.median === null ? 'not recovered' : `${sec(rec.median)} median`, met: rec.median !== null && rec.median <= s.targets.recoveryMs });
      }
      const m = monit(s.id);
      if (['crash-loop', '5xx', 'hang'].includes(s.id) && m.length > 0) {
        const g = stat(runs, (r) => r.failedRequests).median;
        const mm = stat(m, (r) => r.failedRequests).median;
        if (g !== null && mm !== null) {
          checks.push({ what: `${label}: failed requests vs monit`, target: '≤ ⅓ of monit’s', measured: `${num(g)} vs ${num(mm)} (≤ ${num(mm / 3)} needed)`, met: g <= mm / 3 });
        }
      }
      const lag = stat(runs, (r) => r.verifiedLagMs);
      if (lag.median !== null && byId.get(s.id)?.targets?.recoveryMs !== undefined) {
        checks.push({ what: `${label}: guard's "verified" after users saw recovery`, target: '≤ 1 s', measured: `${sec(lag.median)} median`, met: lag.median <= 1000 });
      }
    }
  }
  for (const source of sources) {
    const mine = (r: RunResult) => r.tool === 'release-guard' && r.completed && (r.source ?? 'scrape') === source;
    const faults = results.runs.filter((r) => mine(r) && byId.get(r.scenario)?.kind === 'fault');
    if (faults.length > 0) {
      const missed = faults.filter((r) => !r.rolledBack || r.rolledBackBeforeFault);
      checks.push({ what: `every fault run rolled back after its fault [${source}]`, target: 'all', measured: `${faults.length - missed.length}/${faults.length}${missed.length ? ` (missed: ${[...new Set(missed.map((r) => r.scenario))].join(', ')})` : ''}`, met: missed.length === 0 });
      const early = faults.filter((r) => r.rolledBackBeforeFault);
      if (early.length > 0) {
        checks.push({ what: `fault runs rolled back before the fault was switched on (false rollbacks) [${source}]`, target: '0', measured: `${early.length}/${faults.length} (${[...new Set(early.map((r) => r.scenario))].join(', ')})`, met: false });
      }
    }
    const benign = results.runs.filter((r) => mine(r) && byId.get(r.scenario)?.kind === 'benign');
    if (benign.length > 0) {
      const wrong = benign.filter((r) => r.rolledBack);
      checks.push({ what: `benign runs rolled back [${source}]`, target: '0', measured: `${wrong.length}/${benign.length}${wrong.length ? ` (${[...new Set(wrong.map((r) => r.scenario))].join(', ')})` : ''}`, met: wrong.length === 0 });
    }
  }
  const cluster = results.strategies.filter((r) => r.strategy === 'releases' && r.execMode === 'cluster' && r.completed);
  if (cluster.length > 0) {
    const worst = Math.max(...cluster.map((r) => r.failedRequests));
    checks.push({ what: 'requests failed by the cluster-mode switch itself (releases + reload, both versions healthy)', target: '0', measured: `${worst} (worst of ${cluster.length} runs)`, met: worst === 0 });
  }
  const switchFailures = results.runs.filter((r) => r.tool === 'release-guard' && r.switchFailures !== null);
  if (switchFailures.length > 0) {
    const worst = Math.max(...switchFailures.map((r) => r.switchFailures!));
    checks.push({ what: 'requests failed by the switch during fault rollbacks (failures the fault does not cause)', target: '0', measured: `${worst} (worst of ${switchFailures.length} runs)`, met: worst === 0 });
  }
  const cost = results.cost;
  const stable = cost?.oneService[0];
  if (cost && stable) {
    const all = cost.oneService;
    const rss = Math.max(...all.map((w) => w.rssMaxMb));
    checks.push({ what: 'RSS guarding one service', target: '≤ 80 MB', measured: `${rss.toFixed(1)} MB max`, met: rss <= 80 });
    for (const w of all) checks.push({ what: `CPU, ${w.label}`, target: '≤ 2 % of one core', measured: `${(w.cpuShare * 100).toFixed(2)} %`, met: w.cpuShare <= 0.02 });
  }
  if (cost?.endpoints) {
    const e = cost.endpoints;
    checks.push({ what: `CPU, ${e.count} endpoints at 1 s`, target: '≤ 25 % of one core', measured: `${(e.cpuShare * 100).toFixed(1)} %`, met: e.cpuShare <= 0.25 });
    checks.push({ what: `p99 probe launch delay, ${e.count} endpoints`, target: '≤ 100 ms', measured: e.delayP99Ms === null ? '–' : `${e.delayP99Ms.toFixed(1)} ms`, met: e.delayP99Ms !== null && e.delayP99Ms <= 100 });
  }
  return checks;
}

export function renderMarkdown(results: BenchResults, jsonPaths: string | string[], reading: string[]): string {
  const links = typeof jsonPaths === 'string' ? [jsonPaths] : jsonPaths;
  const m = results.machine;
  const out: string[] = [];
  const line = (s = '') => out.push(s);
  const faults = results.scenarios.filter((s) => s.kind === 'fault');
  const benign = results.scenarios.filter((s) => s.kind === 'benign');
  const n = results.options.runs;
  const setup = results.setup as Record<string, string | number>;
  const sources = sourcesOf(results);
  const checks = checkTargets(results);

  line('# Benchmarks');
  line();
  line('Written by `npm run bench` (bench/); every number below comes from one run of it.');
  line(`Raw results: ${links.map((p) => `[\`${p}\`](${p})`).join(', ')}.`);
  line();
  line(`- **Date:** ${results.date} (${Math.round(results.durationSeconds / 60)} min)`);
  if (results.invocations && new Set(results.invocations.map((i) => i.revision)).size > 1) line(`- **Code measured:** ${results.invocations.map((i) => i.revision ?? '?').join('; ')} (one per invocation, below)`);
  else if (results.revision) line(`- **Code measured:** ${results.revision}`);
  line(`- **Machine:** ${m.cpuModel}, ${m.cores} cores, ${m.memoryGb} GB RAM, ${m.kernel}, Node ${m.node}; monit ${m.monit ?? 'not run'}; MariaDB ${m.mariadb ?? 'not run'}; nginx ${m.nginx ?? 'not run'}`);
  line(`- **Load:** 1-minute load average during the run ${medRange(results.loadAverage, (x) => x.toFixed(1))} (${results.loadAverageNote ?? 'median, range'}) on ${m.cores} cores — other work shared the machine; timings are from a busy box, not an idle one.`);
  line(`- **Runs:** ${n} per scenario, tool and traffic source (release-guard once with each of ${sources.map((x) => `\`${x}\``).join(' and ') || 'its sources'}; monit once), interleaved (run 1 of every scenario, then run 2, …). Tables show the median and (range).`);
  line(`- **Rerun:** \`${results.command}\` — options: \`--runs N\` (default 3), \`--only id,id\` (scenario ids below, or \`cost\`, \`strategy\`), \`--sources scrape,access_log\` (default both), \`--quick\` (1 run, a few scenarios, short cost: a smoke test), \`--no-monit\`, \`--out DIR\` (results there instead of bench/results), \`--render FILE\` (the tables of an earlier results file). \`npm test\` runs a smoke of it (5xx and one failed probe on the scrape source, once each, with monit).`);
  if (results.invocations && results.invocations.length > 1) {
    const spans = results.invocations.map((i) => ({ ...i, from: Date.parse(i.date), to: Date.parse(i.date) + i.durationSeconds * 1000 }));
    const overlap = spans.some((a, i) => spans.some((b, j) => i !== j && a.from < b.to && b.from < a.to));
    line(`- **Invocations:** ${spans.map((i) => `\`${i.command}\` (${i.date}, ${Math.round(i.durationSeconds / 60)} min${i.revision ? `, at ${i.revision.split(' ')[0]}` : ''})`).join('; ')}${overlap ? ' — **run at the same time**, to fit the time available: each also loaded the machine for the other' : ''}.`);
  }
  if (results.options.only || results.options.quick) {
    const ran = new Set(results.scenarios.map((x) => x.id));
    const notRun = [...allScenarios().map((x) => x.id).filter((id) => !ran.has(id)), ...(results.cost ? [] : ['cost']), ...(results.strategies.length ? [] : ['strategy'])];
    line(`- **Partial run:** ${results.options.quick ? '`--quick`' : `only ${results.options.only!.map((x) => `\`${x}\``).join(', ')}`} (what fits about an hour); not run this time: ${notRun.map((x) => `\`${x}\``).join(', ') || 'nothing'} — their last figures are in earlier results files under bench/results/, measured with one worker and the scrape source only.`);
  }
  line();
  line('## Setup');
  line();
  line(`- The demo app (\`test/fixtures/demo-app/server.cjs\`) under a private pm2 daemon in **cluster mode, ${setup.instances} instance(s)** behind one port, its own /metrics per worker with no worker label (the usual production shape); every /api request takes ${setup.baseLatencyMs} ms, so v1's traffic p95 is ≈ 24 ms: 4× and +400 ms land above the latency rule's 50 ms floor, 2× stays under 3×; releases in a Capistrano layout (\`releases/v1\`, \`releases/v2\`, \`current\` symlink). Both workers read the same fault file; a blip of health checks is counted for the app, not per worker.`);
  line(setup.front === 'nginx'
    ? `- **nginx** (the Debian package, a throwaway instance per run on a free loopback port) in front of the app: proxy_pass to the cluster's port, no upstream keep-alive (a new connection per request, which pm2 hands round-robin to the workers), access log in nginx's \`combined\` format with \`$request_time $upstream_addr\` appended (the access_log probe's default layout). **The load goes through nginx in every run** — both traffic sources and monit — so every tool sees the same path; the guard's health check and scrape go to the app's port directly, as they would on the app host.`
    : '- No nginx (not installed): the load goes to the app directly; only the scrape source ran.');
  line(`- **${setup.rate} req/s** of steady traffic to /api (keep-alive to nginx, 2 s timeout) throughout every run; a request fails on a non-200, a timeout or a connection error.`);
  line('- Each run: fresh pm2 + app + nginx + guard; the guard learns v1 (stable, traffic latency baseline); v2 is deployed as a deploy script does it (symlink + `pm2 reload`); the guard opens the release window by itself; the fault is switched on at a fixed time into the window by creating the release\'s fault file (the app sees it within 10 ms) and, for a bounded fault (the blip, 2 % for 30 s), removed again after its duration, so **detection = fault file created → rollback decided**; **recovery = fault → the load sees v1 answering every request from then on** (seen from outside). A rollback decided before the fault is counted as a false rollback, not a detection.');
  line(`- release-guard: \`node dist/cli/main.js start\` as a separate process, probes: http /health (1 s timeout), **the traffic source of the run** — \`scrape\` of the app's /metrics, or \`access_log\` following nginx's access log — pm2 process readings, the MariaDB query; interval ${setup.interval}, fast interval ${setup.fastInterval} for the first ${setup.fastFor} of a window (default 2 m; shortened so "later in the window" is reached in a bounded run), release window ${setup.window ?? '10 min'} (long enough for the fault 5 min in); rules: health 3 consecutive (evidence spanning ≥ 1 s, the default min_span), error_rate > 5 % and latency_ratio > 3× v1's p95 (floor 50 ms) on the traffic source, **judged by the product's sequential test with its defaults** (tolerance, false-rollback budget 0.1 % per window, min_span 1 s; no window or min_requests), cpu > 70 % of the app's cores for 10 s, memory > 512 MB (as a host share) for 10 s, db_latency > 100 ms for 10 s (defaults 60 s/60 s/10 s: shortened to keep runs bounded), initial_delay ${setup.initialDelay}; rollback: releases strategy (symlink + pm2 reload); verification: 3 passing checks reporting v1.`);
  line('- monit: the Debian package in the foreground (`monit -I`) with its own control file, `set daemon 1` (its shortest cycle); `check host` GET /health with a 1 s timeout failing **for 3 cycles**; `check process` on pm2\'s pid file of worker 0 (does not exist; cpu > 70 % for 3 cycles; memory > 512 MB for 3 cycles); `check program` running the same query with a 1 s limit (status != 0 for 3 cycles). Every check execs the same rollback script (symlink swap + `pm2 reload` with the pm2 CLI), which writes a timestamp first: **detection = fault → script started**. monit is started on the healthy v2 and runs 3 s before the fault. It has no traffic view, so it runs once per scenario, not per source.');
  line();

  line('## Fault scenarios: release-guard (per traffic source) and monit side by side');
  line();
  line('| scenario | tool, traffic source | detection | recovery | failed requests | rolled back | what fired | target |');
  line('| --- | --- | --- | --- | --- | --- | --- | --- |');
  const verdictOf = (title: string, source: string) => {
    const mine = checks.filter((c) => c.what.startsWith(`${title} [${source}]: detection`) || c.what.startsWith(`${title} [${source}]: recovery`));
    if (mine.length === 0) return '–';
    return mine.every((c) => c.met) ? 'met' : `**failing** (${mine.filter((c) => !c.met).map((c) => c.what.split(': ').at(-1)).join(', ')})`;
  };
  for (const s of faults) {
    const mo = runsOf(results, s.id, 'monit');
    let first = true;
    const title = () => (first ? ((first = false), s.title) : '″');
    for (const source of sources) {
      const g = runsOf(results, s.id, 'release-guard', source);
      if (g.length === 0) continue;
      const early = g.filter((r) => r.rolledBackBeforeFault).length;
      const det = stat(g, (r) => (r.rolledBackBeforeFault ? null : r.detectionMs));
      line(
        `| ${title()} | release-guard, ${sourceLabel(source)} | ${det.median === null ? `not rolled back after the fault (${rolled(g)})` : secRange(det, done(g))} | ${secRange(stat(g, (r) => r.recoveryMs), done(g))} | ${numRange(stat(g, (r) => r.failedRequests))} | ${rolled(g)}${early ? ` (${early} before the fault)` : ''} | ${triggers(g)} | ${s.targetText ? `${s.targetText}: ${verdictOf(s.title, source)}` : '–'} |`,
      );
    }
    if (!s.monit.sees) line(`| ${title()} | monit | cannot see it: ${s.monit.why} | – | – | – | – | – |`);
    else if (mo.length === 0) line(`| ${title()} | monit | not run | – | – | – | – | – |`);
    else {
      const md = stat(mo, (r) => r.detectionMs);
      line(`| ${title()} | monit | ${md.median === null ? `did not act within 45 s (${rolled(mo)})` : secRange(md, done(mo))} | ${secRange(stat(mo, (r) => r.recoveryMs), done(mo))} | ${numRange(stat(mo, (r) => r.failedRequests))} | ${rolled(mo)} | ${triggers(mo)} | – |`);
    }
  }
  line();
  line(`Failed requests count every request answered (or failed) from the fault on, at ${setup.rate} req/s. "–" in a range: no run produced that value (e.g. never recovered). "″": the same scenario.`);
  line();
  line('### release-guard: the switch and its own verification');
  line();
  line('| scenario | traffic source | decision → plan done (swap + reload) | switch failures¹ | guard "verified" after users saw v1² |');
  line('| --- | --- | --- | --- | --- |');
  for (const s of faults) {
    for (const source of sources) {
      const g = runsOf(results, s.id, 'release-guard', source);
      if (g.length === 0) continue;
      const sf = stat(g, (r) => r.switchFailures);
      line(`| ${s.title} | ${source} | ${secRange(stat(g, (r) => r.switchMs), done(g))} | ${sf.n === 0 ? (s.faultOutcomes.includes('conn') ? 'n/a (the fault itself resets connections)' : '–') : numRange(sf)} | ${secRange(stat(g, (r) => r.verifiedLagMs), done(g))} |`);
    }
  }
  line();
  line('¹ Failures after the decision of a kind the fault does not cause (connection refused/reset, timeouts during a 5xx or latency fault): the switch\'s own. ² The guard\'s verification (3 checks reporting v1, launched after the plan finished) against the moment the load saw v1 for good; for the slow database "recovered" also waits for the database to answer fast again (the guard verifies the app only), hence negative values.');
  line();

  line('## Benign scenarios (must not roll back)');
  line();
  line(`| scenario | ${sources.map((x) => `rolled back, ${x}`).join(' | ')} | failed requests while observed (all runs) | fault on for | observed for |`);
  line(`| --- | ${sources.map(() => '---').join(' | ')} | --- | --- | --- |`);
  for (const s of benign) {
    const all = runsOf(results, s.id, 'release-guard');
    if (all.length === 0) continue;
    const cells = sources.map((source) => {
      const g = runsOf(results, s.id, 'release-guard', source);
      if (g.length === 0) return 'not run';
      return `${rolled(g)}${g.some((r) => r.rolledBack) ? ` (**${triggers(g)}**)` : ''}`;
    });
    line(`| ${s.title} | ${cells.join(' | ')} | ${numRange(stat(all, (r) => r.failedRequests))} | ${s.faultForMs !== undefined ? sec(s.faultForMs) : '–'} | ${sec(s.observeMs ?? 15_000)} |`);
  }
  line();

  const cost = results.cost;
  if (cost) {
    line('## Cost (the guard process, from /proc)');
    line();
    line('| what | CPU (share of one core) | RSS median | RSS max | probe launch delay p50 / p99 / max |');
    line('| --- | --- | --- | --- | --- |');
    for (const w of cost.oneService) line(`| ${w.label}, ${w.seconds.toFixed(0)} s | ${(w.cpuShare * 100).toFixed(2)} % | ${w.rssMedianMb.toFixed(1)} MB | ${w.rssMaxMb.toFixed(1)} MB | – |`);
    if (cost.endpoints) {
      const e = cost.endpoints;
      line(`| ${e.label}, ${e.seconds.toFixed(0)} s (${e.launches} probe launches) | ${(e.cpuShare * 100).toFixed(1)} % | ${e.rssMedianMb.toFixed(1)} MB | ${e.rssMaxMb.toFixed(1)} MB | ${num(e.delayP50Ms)} / ${num(e.delayP99Ms)} / ${num(e.delayMaxMs)} ms |`);
    }
    for (const e of cost.errors) line(`| failed: ${e.replace(/\|/g, '/').split('\n')[0]} | | | | |`);
    line();
    line('Launch delay: how much later than scheduled each probe of an endpoint arrived (spacing of consecutive requests to one endpoint minus the 1 s interval), measured by the endpoint server, a separate process. Samples are kept 15 min, so RSS at 200 endpoints keeps growing past a short measurement.');
    line();
  }

  if (results.strategies.length > 0) {
    line('## Strategy cost: back to a verified old version');
    line();
    line('Manual rollback v2 → v1 through the guard\'s API under 50 req/s, both versions healthy: every failed request is the switch\'s.');
    line();
    line('| strategy | pm2 mode | run by | requested → plan done | requested → verified | requested → every request on v1 | failed requests |');
    line('| --- | --- | --- | --- | --- | --- | --- |');
    const keys = [...new Set(results.strategies.map((r) => `${r.strategy}|${r.execMode}|${r.instances}`))];
    for (const key of keys) {
      const runs = results.strategies.filter((r) => `${r.strategy}|${r.execMode}|${r.instances}` === key);
      const ok = runs.filter((r) => r.completed);
      const [strategy, mode, instances] = key.split('|');
      const label = strategy === 'releases' ? 'releases: symlink + pm2 reload' : 'git: checkout + npm ci + build + pm2 restart';
      const errors = runs.filter((r) => !r.completed).map((r) => r.error?.split('\n')[0]);
      line(
        `| ${label} | ${mode} × ${instances} | ${[...new Set(runs.map((r) => r.via))].join(', ')} | ${secRange(summarize(ok.map((r) => r.planMs)))} | ${secRange(summarize(ok.map((r) => r.verifiedMs)))} | ${secRange(summarize(ok.map((r) => r.servedMs)))} | ${numRange(summarize(ok.map((r) => r.failedRequests)))}${errors.length ? ` (${errors.length} run(s) failed: ${errors[0]})` : ''} |`,
      );
    }
    line();
    line('The git app has no dependencies and a copy-only build: its install and build times are a floor; a real `npm ci` + build adds tens of seconds to minutes.');
    line();
  }

  line('## Targets');
  line();
  line('| target | wanted | measured | |');
  line('| --- | --- | --- | --- |');
  for (const c of checks) line(`| ${c.what} | ${c.target} | ${c.measured} | ${c.met === null ? '–' : c.met ? 'met' : '**missed**'} |`);
  line();
  line('## Reading');
  line();
  for (const r of reading) line(`- ${r}`);
  line();
  const failedRuns = [...results.runs.filter((r) => !r.completed)];
  if (failedRuns.length > 0) {
    line('## Runs that broke');
    line();
    for (const r of failedRuns) line(`- ${r.tool} ${r.scenario} run ${r.run}: ${(r.error ?? '').split('\n')[0]}`);
    line();
  }
  return `${out.join('\n')}\n`;
}
