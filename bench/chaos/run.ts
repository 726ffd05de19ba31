/**
 * `npm run chaos`: runs every chaos scenario against real processes (the built daemon, real
 * servers, real databases where a scenario needs them) and prints one table: the item, the
 * inputs tried and kill points, what was measured, the target and whether it was met. The table
 * goes to CHAOS.md in --out (the repository root by default), to be committed after a full run
 * like BENCHMARKS.md; a partial run (--only, --quick) writes CHAOS-partial.md instead, so it never
 * replaces the full table.
 *
 *   node build/bench/chaos/run.js [--only NAME[,NAME…]] [--out DIR] [--quick] [--keep]
 *
 * Each scenario is a module bench/chaos/<name>.ts exporting `run(ctx): Promise<ChaosRow[]>`
 * (types.ts), listed in SCENARIOS below. A scenario that throws becomes one missed row with its
 * error; the others still run. Exit code: 0 when every scenario ran (targets met or not, the
 * table says), 1 when one could not run, 2 on bad arguments.
 */
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { PROJECT_ROOT } from '../../test/fixtures/demo-app/releases.js';
import * as apiOnDemand from './api-on-demand.js';
import * as backupRace from './backup-race.js';
import * as hostileMetrics from './hostile-metrics.js';
import * as hostLimits from './host-limits.js';
import * as killPoints from './kill-points.js';
import * as secondGuard from './second-guard.js';
import * as secretsAndRecords from './secrets-and-records.js';
import * as sharedDir from './shared-dir.js';
import * as staleRestore from './stale-restore.js';
import * as storeBlip from './store-blip.js';
import * as storedState from './stored-state.js';
import type { ChaosContext, ChaosRow, ChaosScenario } from './types.js';

/** Every scenario, in the order the table lists them. */
const SCENARIOS: ChaosScenario[] = [
  { name: 'hostile-metrics', run: hostileMetrics.run },
  { name: 'second-guard', run: secondGuard.run },
  { name: 'kill-points', run: killPoints.run },
  { name: 'stale-restore', run: staleRestore.run },
  { name: 'backup-race', run: backupRace.run },
  { name: 'api-on-demand', run: apiOnDemand.run },
  { name: 'stored-state', run: storedState.run },
  { name: 'secrets-and-records', run: secretsAndRecords.run },
  { name: 'store-blip', run: storeBlip.run },
  { name: 'host-limits', run: hostLimits.run },
  { name: 'shared-dir', run: sharedDir.run },
];

const ROOT = PROJECT_ROOT;

interface Options {
  only: string[] | null;
  out: string;
  quick: boolean;
  keep: boolean;
}

function parseArgs(argv: string[]): Options {
  const options: Options = { only: null, out: ROOT, quick: false, keep: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const value = () => {
      const v = argv[++i];
      if (v === undefined || v.startsWith('--')) throw new UsageError(`${arg} needs a value`);
      return v;
    };
    if (arg === '--only') options.only = value().split(',').map((s) => s.trim()).filter(Boolean);
    else if (arg === '--out') options.out = path.resolve(value());
    else if (arg === '--quick') options.quick = true;
    else if (arg === '--keep') options.keep = true;
    else throw new UsageError(`unknown argument ${arg}; allowed: --only NAME[,NAME…], --out DIR, --quick, --keep`);
  }
  const names = SCENARIOS.map((s) => s.name);
  const unknown = (options.only ?? []).filter((n) => !names.includes(n));
  if (unknown.length > 0) throw new UsageError(`unknown scenario ${unknown.join(', ')}; known: ${names.join(', ')}`);
  return options;
}

class UsageError extends Error {}

/** The table as Markdown; `|` in cells escaped so a measured error text cannot break it. */
function renderTable(rows: readonly ChaosRow[]): string {
  const cell = (s: string) => s.replace(/\|/g, '\\|').replace(/\r?\n/g, ' ');
  const lines = ['| Item | Inputs tried / kill points | Measured | Target | Met |', '| --- | --- | --- | --- | --- |'];
  for (const r of rows) lines.push(`| ${cell(r.item)} | ${cell(r.input)} | ${cell(r.measured)} | ${cell(r.target)} | ${r.ok ? 'met' : '**missed**'} |`);
  return lines.join('\n');
}

function machine(): string {
  const [one, five, fifteen] = os.loadavg().map((n) => n.toFixed(2));
  let commit = 'unknown';
  try {
    commit = execFileSync('git', ['-C', ROOT, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    // not a git checkout
  }
  return `${os.cpus().length} cores, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}, load average ${one} / ${five} / ${fifteen} at the end; commit ${commit}`;
}

async function main(): Promise<number> {
  const options = parseArgs(process.argv.slice(2));
  const selected = SCENARIOS.filter((s) => options.only === null || options.only.includes(s.name));
  const log = (line: string) => process.stderr.write(`[chaos] ${line}\n`);
  const rows: ChaosRow[] = [];
  let broken = 0;
  const started = Date.now();
  for (const scenario of selected) {
    const workDir = await mkdtemp(path.join(os.tmpdir(), `rg-chaos-${scenario.name}-`));
    const ctx: ChaosContext = { root: ROOT, workDir, quick: options.quick, log };
    log(`${scenario.name}: started (work dir ${workDir})`);
    try {
      const got = await scenario.run(ctx);
      if (got.length === 0) throw new Error('the scenario measured nothing');
      rows.push(...got);
    } catch (error) {
      broken++;
      const message = error instanceof Error ? error.message : String(error);
      rows.push({ item: scenario.name, input: '(scenario did not finish)', measured: `error: ${message.split('\n')[0]}`, target: 'runs to the end', ok: false });
      log(`${scenario.name}: FAILED: ${message}`);
    } finally {
      if (options.keep) log(`${scenario.name}: kept ${workDir}`);
      else await rm(workDir, { recursive: true, force: true });
    }
  }
  const partial = options.only !== null || options.quick;
  const met = rows.filter((r) => r.ok).length;
  const text = [
    `# Chaos run${partial ? ' (partial)' : ''}`,
    '',
    `\`npm run chaos\`${options.only ? ` --only ${options.only.join(',')}` : ''}${options.quick ? ' --quick' : ''}, ${new Date(started).toISOString()}, ${Math.round((Date.now() - started) / 1000)} s. ${machine()}.`,
    '',
    renderTable(rows),
    '',
    `${met} of ${rows.length} targets met.`,
    '',
  ].join('\n');
  process.stdout.write(`${text}\n`);
  await mkdir(options.out, { recursive: true });
  const file = path.join(options.out, partial ? 'CHAOS-partial.md' : 'CHAOS.md');
  await writeFile(file, text);
  log(`table written to ${file}`);
  return broken > 0 ? 1 : 0;
}

/** Exits once stdout is flushed; a stray handle (a kept-alive socket) cannot hold the run open. */
function exit(code: number): void {
  process.exitCode = code;
  setTimeout(() => process.exit(code), 2000).unref();
}

main().then(
  (code) => exit(code),
  (error: unknown) => {
    if (error instanceof UsageError) {
      process.stderr.write(`chaos: ${error.message}\n`);
      exit(2);
      return;
    }
    process.stderr.write(`chaos: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    exit(1);
  },
);
