/**
 * The scenario matrix: each scenario is a release v2 of the demo app (built beside a good v1)
 * and what happens to it while it is guarded, under 50 req/s. Faults are switched on by
 * creating the release's fault file (the app sees it within 10 ms), so the bench knows the exact
 * injection time. Benign scenarios must not be rolled back.
 */
import type { ReleaseManifest } from '../test/fixtures/demo-app/releases.js';
import type { Outcome } from './traffic.js';

/** Every /api request of every version takes this long: a real API does some work, and the
 * latency rules need a baseline above their 50 ms floor to mean anything (p95 ≈ 24 ms). */
export const BASE_LATENCY_MS = 15;

/** The guard's schedule in the bench (see BENCHMARKS.md): fast probing for this long after a release starts. */
export const FAST_FOR_MS = 20_000;
export const INTERVAL_MS = 1000;
export const FAST_INTERVAL_MS = 250;
/** Resource rules skip this much of a new release (warm-up). */
export const INITIAL_DELAY_MS = 10_000;
/** The release window (the default): long enough for the fault that starts 5 minutes into it. */
export const WINDOW_MS = 10 * 60_000;
/** pm2 cluster mode with this many workers behind one port: the usual production shape. */
export const INSTANCES = 2;

/** Where the guard's traffic rules (error_rate, latency_ratio) read real traffic from. */
export type TrafficSource = 'scrape' | 'access_log';
export const SOURCES: readonly TrafficSource[] = ['scrape', 'access_log'];

export interface Targets {
  detectionMs?: number;
  recoveryMs?: number;
}

export interface Scenario {
  id: string;
  title: string;
  kind: 'fault' | 'benign';
  /** v2's release.json (the bench adds version and faultFile). */
  v2: ReleaseManifest;
  /** What switches the fault on: the fault file, a `pm2 restart` of the app, or the deploy itself. */
  trigger: 'file' | 'restart' | 'deploy';
  /** When, after the release window opened. */
  injectAfterMs: number;
  /** Benign: how long after the trigger nothing may happen. */
  observeMs?: number;
  /** The fault file is removed again this long after it was created (a blip, a bounded episode). */
  faultForMs?: number;
  /** Failures the fault itself causes (anything else during the switch is the switch's). */
  faultOutcomes: Outcome[];
  /** The slow database: needs the bench's MariaDB, and recovery includes the database being fast again. */
  needsDb?: boolean;
  /** monit: which of its checks can see it, or why it cannot. */
  monit: { sees: true; checks: string } | { sees: false; why: string };
  targets?: Targets;
  /** What the targets are, in words, for the report. */
  targetText?: string;
}

const LATE = FAST_FOR_MS + 2000;
const AFTER_WARMUP = INITIAL_DELAY_MS + 1000;
/** "Late in the window": 5 minutes in, long after fast probing ended (the 1 s interval). */
const FIVE_MINUTES = 5 * 60_000;

export function scenarios(db?: { client: string; appDefaultsFile: string }): Scenario[] {
  return [
    {
      id: 'crash-loop',
      title: 'crash loop',
      kind: 'fault',
      v2: { fault: 'crash' },
      trigger: 'file',
      injectAfterMs: 3000,
      faultOutcomes: ['conn', 'timeout', 'http'],
      monit: { sees: true, checks: 'process (pid file) does not exist; /health failed 3 cycles' },
      targets: { detectionMs: 300, recoveryMs: 1000 },
      targetText: 'detect ≤ 0.3 s, recover ≤ 1 s',
    },
    {
      id: '5xx',
      title: '100 % 5xx (early in the window)',
      kind: 'fault',
      v2: { fault: '5xx' },
      trigger: 'file',
      injectAfterMs: 3000,
      faultOutcomes: ['http'],
      monit: { sees: true, checks: '/health failed 3 cycles' },
      targets: { detectionMs: 1500, recoveryMs: 2000 },
      targetText: 'detect ≤ 1.5 s, recover ≤ 2 s',
    },
    {
      id: '5xx-late',
      title: '100 % 5xx (after fast probing)',
      kind: 'fault',
      v2: { fault: '5xx' },
      trigger: 'file',
      injectAfterMs: LATE,
      faultOutcomes: ['http'],
      monit: { sees: true, checks: '/health failed 3 cycles (monit has no window: same as early)' },
      targets: { detectionMs: 3 * INTERVAL_MS + 500 },
      targetText: 'detect ≤ interval × 3 + 0.5 s = 3.5 s',
    },
    {
      id: 'errors-10pct',
      title: '10 % 5xx on traffic',
      kind: 'fault',
      v2: { fault: 'error_ratio', errorRatio: 0.1 },
      trigger: 'file',
      injectAfterMs: 3000,
      faultOutcomes: ['http'],
      monit: { sees: false, why: 'monit checks /health, which stays 200; it has no view of traffic error rates' },
      targets: { detectionMs: 3000, recoveryMs: 6000 },
      targetText: 'detect ≤ 3 s, recover ≤ 6 s',
    },
    {
      id: 'errors-10pct-late',
      title: '10 % 5xx on traffic, starting 5 min into the window',
      kind: 'fault',
      v2: { fault: 'error_ratio', errorRatio: 0.1 },
      trigger: 'file',
      injectAfterMs: FIVE_MINUTES,
      faultOutcomes: ['http'],
      monit: { sees: false, why: 'monit checks /health, which stays 200; it has no view of traffic error rates' },
      targets: { detectionMs: 5000 },
      targetText: 'detect ≤ 5 s after it starts (1 s interval by then)',
    },
    {
      id: 'latency-4x',
      title: 'latency 4× baseline',
      kind: 'fault',
      v2: { fault: 'slow', slowMs: 3 * BASE_LATENCY_MS },
      trigger: 'file',
      injectAfterMs: 3000,
      faultOutcomes: [],
      monit: { sees: false, why: 'monit only has a fixed response timeout (1 s); 60 ms answers pass it' },
      targets: { recoveryMs: 6000 },
      targetText: 'recover ≤ 6 s',
    },
    {
      id: 'latency-400ms',
      title: 'latency +400 ms',
      kind: 'fault',
      v2: { fault: 'slow', slowMs: 400 },
      trigger: 'file',
      injectAfterMs: 3000,
      faultOutcomes: [],
      monit: { sees: false, why: 'monit only has a fixed response timeout (1 s); 415 ms answers pass it' },
      targets: { detectionMs: 1500 },
      targetText: 'detect ≤ 1.5 s',
    },
    {
      id: 'hang',
      title: 'hang (early in the window)',
      kind: 'fault',
      v2: { fault: 'hang' },
      trigger: 'file',
      injectAfterMs: 3000,
      faultOutcomes: ['timeout', 'conn'],
      monit: { sees: true, checks: '/health timeout 1 s, 3 cycles' },
      targets: { detectionMs: 1500, recoveryMs: 2000 },
      targetText: 'detect ≤ 1.5 s, recover ≤ 2 s',
    },
    {
      id: 'hang-late',
      title: 'hang (after fast probing)',
      kind: 'fault',
      v2: { fault: 'hang' },
      trigger: 'file',
      injectAfterMs: LATE,
      faultOutcomes: ['timeout', 'conn'],
      monit: { sees: true, checks: '/health timeout 1 s, 3 cycles (no window: same as early)' },
      targets: { detectionMs: 3 * INTERVAL_MS + 500 },
      targetText: 'detect ≤ interval × 3 + 0.5 s = 3.5 s',
    },
    {
      id: 'cpu-hog',
      title: `CPU hog (${15 * INSTANCES} ms of CPU per request ≈ 75 % of the app's ${INSTANCES} cores)`,
      kind: 'fault',
      // 50 req/s spread over the workers: 15 ms per request per worker keeps each worker at ≈ 75 % of its core.
      v2: { fault: 'cpu', cpuBurnMs: 15 * INSTANCES },
      trigger: 'file',
      injectAfterMs: AFTER_WARMUP,
      faultOutcomes: [],
      monit: { sees: true, checks: 'process cpu > 70 % for 3 cycles' },
    },
    {
      id: 'memory-growth',
      title: 'memory growth (heap +100 MB/s, capped at 1 GB)',
      kind: 'fault',
      v2: { fault: 'memory', memoryMbPerSec: 100, memoryMaxMb: 1024 },
      trigger: 'file',
      injectAfterMs: AFTER_WARMUP,
      faultOutcomes: [],
      monit: { sees: true, checks: 'process memory > 512 MB for 3 cycles' },
    },
    {
      id: 'slow-db',
      title: 'slow database (the release holds a table lock)',
      kind: 'fault',
      v2: db
        ? {
            fault: 'command',
            // The release's own database session locks the table its queries (and the probe) read.
            faultCommand: [db.client, `--defaults-extra-file=${db.appDefaultsFile}`, 'app'],
            faultCommandInput: 'LOCK TABLES items WRITE;\n',
          }
        : { fault: 'none' },
      trigger: 'file',
      injectAfterMs: 3000,
      faultOutcomes: [],
      needsDb: true,
      monit: { sees: true, checks: 'check program: the query within 1 s, status != 0 for 3 cycles' },
    },
    // ---- benign: none of these may roll back
    {
      id: 'one-failed-probe',
      title: 'one failed health check',
      kind: 'benign',
      v2: { fault: 'health_blip', blipCount: 1 },
      trigger: 'file',
      injectAfterMs: 3000,
      observeMs: 15_000,
      faultOutcomes: [],
      monit: { sees: false, why: 'benign' },
    },
    {
      id: 'errors-2pct',
      title: '2 % 5xx on traffic for 30 s',
      kind: 'benign',
      v2: { fault: 'error_ratio', errorRatio: 0.02 },
      trigger: 'file',
      injectAfterMs: 3000,
      faultForMs: 30_000,
      observeMs: 32_000,
      faultOutcomes: ['http'],
      monit: { sees: false, why: 'benign' },
    },
    {
      id: 'blip-100pct',
      title: '0.5 s blip of 100 % 5xx (every request, /health too)',
      kind: 'benign',
      v2: { fault: '5xx' },
      trigger: 'file',
      injectAfterMs: 3000,
      faultForMs: 500,
      observeMs: 15_000,
      faultOutcomes: ['http'],
      monit: { sees: false, why: 'benign' },
    },
    {
      id: 'latency-2x',
      title: 'latency 2× baseline',
      kind: 'benign',
      v2: { fault: 'slow', slowMs: BASE_LATENCY_MS },
      trigger: 'file',
      injectAfterMs: 3000,
      observeMs: 20_000,
      faultOutcomes: [],
      monit: { sees: false, why: 'benign' },
    },
    {
      id: 'warmup-cpu-spike',
      title: 'CPU spike during warm-up (5 s at ~75 % of a core after start)',
      kind: 'benign',
      v2: { warmupCpuMs: 5000 },
      trigger: 'deploy',
      injectAfterMs: 0,
      observeMs: 20_000,
      faultOutcomes: [],
      monit: { sees: false, why: 'benign' },
    },
    {
      id: 'restart-same-version',
      title: 'pm2 restart of the app at the same version',
      kind: 'benign',
      v2: {},
      trigger: 'restart',
      injectAfterMs: 3000,
      observeMs: 15_000,
      faultOutcomes: ['conn', 'timeout'],
      monit: { sees: false, why: 'benign' },
    },
  ];
}
