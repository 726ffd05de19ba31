/**
 * `npm run bench:core`: the CPU the pure core spends per probe sample, in-process, where the
 * daemon's cost benchmark (cost.ts) cannot tell it from HTTP and the event loop. The daemon judges
 * every rule on every sample, so this is paid 10 times a second by one service in a release window
 * and 200 times a second by 200 endpoints. The release window is 2.5 min old (600 samples per
 * probe at 250 ms), healthy, with the documented rules on an http health check, a scrape of the
 * app's traffic and pm2's process readings.
 *
 * Printed: µs of CPU per evaluation of each rule alone, and per sample for the whole path (the
 * sample's observation, the evaluation of all rules, the machine's transitions); medians of
 * `rounds` rounds. A structural change that makes a rule slower shows here first (one did: a
 * spread-built parameter object made the cpu and memory rules 2.5× slower).
 *
 *   npm run bench:core                    # 7 rounds of 20,000 evaluations
 *   npm run bench:core -- --rounds 3 --iterations 2000 --json
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { validateConfig } from '../src/config/load.js';
import type { Config } from '../src/config/schema.js';
import { observe, type ObservedBaselines, type ObserveContext } from '../src/core/observe.js';
import { evaluateRules, type RuleMemo } from '../src/core/rules.js';
import { policyFrom } from '../src/core/schedule.js';
import { windowLooks } from '../src/core/sequential.js';
import { initialState, transition } from '../src/core/transition.js';
import type { GuardState, LatencyBucket, RuleVerdict, Sample } from '../src/core/types.js';

const WINDOW_OPENED_AT = 500_000;
const SAMPLES_PER_PROBE = 600;
const STEP_MS = 250;

const CONFIG = {
  service: 'web',
  state_dir: '/var/lib/release-guard',
  probes: [
    { name: 'health', type: 'http', url: 'http://127.0.0.1:3000/health', version_path: 'version' },
    { name: 'traffic', type: 'scrape', url: 'http://127.0.0.1:3000/metrics' },
    { name: 'app', type: 'process', pm2_app: 'web' },
  ],
  release: { version_probe: 'health', window: '10m' },
  rules: {
    health: { probe: 'health' },
    error_rate: { probe: 'traffic' },
    latency_ratio: { probe: 'traffic' },
    latency_max: { probe: 'health', threshold: '500ms' },
    cpu: { probe: 'app' },
    memory: { probe: 'app', threshold: 0.8 },
  },
  rollback: { steps: [{ type: 'releases', dir: '/srv/web', pm2_app: 'web' }] },
  verification: { probe: 'health', passes: 3 },
};

const BASELINES: ObservedBaselines = { v1: { traffic: { p95Ms: 22, errorRatio: 0.001 }, health: { p95Ms: 8 } } };

export interface CoreCost {
  /** µs of CPU per evaluation of each rule alone (median of the rounds). */
  perRule: Record<string, number>;
  /** µs of CPU per sample for the whole path: observation, every rule, transitions. */
  perSample: number;
  /** The verdicts of the last evaluation: a healthy window passes every rule. */
  outcomes: Record<string, RuleVerdict['outcome']>;
  rounds: number;
  iterations: number;
}

function latencyBuckets(slow: number): LatencyBucket[] {
  return [
    { le: 10, count: 5 },
    { le: 25, count: 10 },
    { le: 50, count: 11 - slow },
    { le: 100, count: 12 - slow },
    { le: Number.POSITIVE_INFINITY, count: 12 },
  ];
}

/** A healthy window's samples: fast checks, 0.1 % errors in the traffic, the app at 20 % CPU. */
function windowSamples(): Map<string, Sample[]> {
  const lists = new Map<string, Sample[]>([['health', []], ['traffic', []], ['app', []]]);
  for (let i = 0; i < SAMPLES_PER_PROBE; i++) {
    const at = WINDOW_OPENED_AT + i * STEP_MS;
    lists.get('health')!.push({ probe: 'health', ok: true, startedAt: at, at: at + 5, values: { latency_ms: 5 + (i % 7) }, version: 'v2' });
    lists.get('traffic')!.push({
      probe: 'traffic',
      ok: true,
      startedAt: at,
      at: at + 3,
      values: { p95_ms: 20 + (i % 5), error_ratio: 0.001 },
      traffic: { requests: 12, errors: i % 80 === 0 ? 1 : 0, latency: latencyBuckets(0) },
    });
    lists.get('app')!.push({ probe: 'app', ok: true, startedAt: at, at: at + 1, values: { cpu: 0.2, memory: 0.3 } });
  }
  return lists;
}

/** The machine guarding v2, the release that replaced the stable v1. */
function guardingState(config: Config): GuardState {
  const policy = policyFrom(config);
  let state: GuardState = initialState(0);
  state = transition(state, { type: 'versionObserved', version: 'v1', at: 1_000 }, policy).state;
  state = transition(state, { type: 'tick', at: WINDOW_OPENED_AT - 100_000 }, policy).state;
  state = transition(state, { type: 'versionObserved', version: 'v2', at: WINDOW_OPENED_AT }, policy).state;
  if (state.phase !== 'guarding') throw new Error(`the bench's release did not open a window (phase ${state.phase})`);
  return state;
}

function cpuMicros(work: () => void): number {
  const before = process.cpuUsage();
  work();
  const spent = process.cpuUsage(before);
  return spent.user + spent.system;
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

export function measureCoreCost(options: { rounds: number; iterations: number }): CoreCost {
  const config = validateConfig(CONFIG, 'bench config');
  const policy = policyFrom(config);
  const samples = windowSamples();
  const probeTypes = new Map(config.probes.map((p) => [p.name, p.type]));
  const looks = windowLooks({ windowMs: config.release.window, fastForMs: config.schedule.fast_for, fastIntervalMs: config.schedule.fast_interval, intervalMs: config.schedule.interval });
  const observing: ObserveContext = { rules: config.rules, versionProbe: 'health', verificationProbe: 'health', initialDelayMs: config.release.initial_delay, probeTypes, looks };
  const start = guardingState(config);
  const lastAt = WINDOW_OPENED_AT + SAMPLES_PER_PROBE * STEP_MS;
  const enabled = Object.entries(config.rules).filter(([, rule]) => (rule as { enabled?: boolean } | undefined)?.enabled).map(([name]) => name);

  const perRuleRounds: Record<string, number[]> = Object.fromEntries(enabled.map((name) => [name, []]));
  const perSampleRounds: number[] = [];
  let outcomes: CoreCost['outcomes'] = {};
  for (let round = 0; round < options.rounds; round++) {
    for (const name of enabled) {
      // The rule alone: every other rule disabled, its own memo as the daemon keeps one.
      const only = Object.fromEntries(Object.entries(config.rules).map(([key, rule]) => [key, key === name || !rule ? rule : { ...rule, enabled: false }])) as Config['rules'];
      const memo: RuleMemo = new Map();
      // The evaluation that follows the newest sample, as in the daemon (time stands still here,
      // so windows keep their samples however many iterations run).
      const input = () => ({ samples, now: lastAt, since: WINDOW_OPENED_AT, releaseStartedAt: WINDOW_OPENED_AT, initialDelayMs: config.release.initial_delay, baselineP95: new Map([['traffic', 22], ['health', 8]]), baselineErrorRatio: new Map([['traffic', 0.001]]), probeTypes, looks, memo });
      evaluateRules(only, input());
      perRuleRounds[name]!.push(cpuMicros(() => {
        for (let i = 0; i < options.iterations; i++) evaluateRules(only, input());
      }) / options.iterations);
    }
    const memo: RuleMemo = new Map();
    let state = start;
    const newest = samples.get('traffic')!.at(-1)!;
    perSampleRounds.push(cpuMicros(() => {
      for (let i = 0; i < options.iterations; i++) {
        for (const event of observe(state, { type: 'sample', probe: 'traffic', sample: newest }, observing)) state = transition(state, event, policy).state;
        for (const event of observe(state, { type: 'evaluate', at: lastAt, samples, baselines: BASELINES, runningSince: WINDOW_OPENED_AT, memo }, observing)) {
          if (event.type === 'evaluated') outcomes = Object.fromEntries(event.verdicts.map((v) => [v.rule, v.outcome]));
          state = transition(state, event, policy).state;
        }
      }
    }) / options.iterations);
  }
  return {
    perRule: Object.fromEntries(Object.entries(perRuleRounds).map(([name, values]) => [name, Math.round(median(values) * 100) / 100])),
    perSample: Math.round(median(perSampleRounds) * 100) / 100,
    outcomes,
    rounds: options.rounds,
    iterations: options.iterations,
  };
}

function parseArgs(argv: string[]): { rounds: number; iterations: number; json: boolean } {
  const options = { rounds: 7, iterations: 20_000, json: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--rounds') options.rounds = Number(argv[++i]);
    else if (arg === '--iterations') options.iterations = Number(argv[++i]);
    else if (arg === '--json') options.json = true;
    else throw new Error(`unknown option ${arg}; allowed: --rounds N (1..50), --iterations N (1..1000000), --json`);
  }
  if (!Number.isInteger(options.rounds) || options.rounds < 1 || options.rounds > 50) throw new Error('--rounds must be an integer 1..50');
  if (!Number.isInteger(options.iterations) || options.iterations < 1 || options.iterations > 1_000_000) throw new Error('--iterations must be an integer 1..1000000');
  return options;
}

async function main(): Promise<void> {
  let options: ReturnType<typeof parseArgs>;
  try {
    options = parseArgs(process.argv.slice(2));
  } catch (error) {
    console.error(`bench:core: ${(error as Error).message}`);
    process.exit(2);
  }
  const result = measureCoreCost(options);
  if (options.json) {
    console.log(JSON.stringify(result));
    return;
  }
  console.log(`CPU per evaluation, µs (median of ${result.rounds} rounds of ${result.iterations}; a 2.5 min old window, ${SAMPLES_PER_PROBE} samples per probe)`);
  for (const [name, micros] of Object.entries(result.perRule)) console.log(`  ${name.padEnd(14)} ${micros.toFixed(2).padStart(8)}  (${result.outcomes[name] ?? '?'})`);
  console.log(`  ${'per sample'.padEnd(14)} ${result.perSample.toFixed(2).padStart(8)}  (observe + every rule + transitions)`);
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) await main();
