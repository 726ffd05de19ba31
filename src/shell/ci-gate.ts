/**
 * `release-guard check`: a one-shot evaluation of every rule for CI/CD gates. Runs the configured
 * probes for a while (as in the fast part of a release window), judges them once with the same
 * pure rules the daemon uses, and says pass, breach or inconclusive.
 */
import type { Config } from '../config/schema.js';
import { observe, verdictsOf, type ObservedBaselines } from '../core/observe.js';
import { insertionIndex } from '../core/rules.js';
import { windowLooks } from '../core/sequential.js';
import { probeIntervalMs } from '../core/schedule.js';
import { initialState } from '../core/transition.js';
import type { RuleVerdict, Sample } from '../core/types.js';
import type { Pm2Client } from '../pm2/client.js';
import { createProbes } from '../probes/index.js';
import { FileStore } from '../store/file-store.js';
import { openStore, type OpenedStore } from '../store/index.js';
import type { Clock } from './clock.js';

export type GateOutcome = 'pass' | 'fail' | 'inconclusive';

export interface GateResult {
  outcome: GateOutcome;
  verdicts: RuleVerdict[];
  /** Samples taken per probe. */
  samples: Record<string, number>;
  /** The version the baseline came from, when one was found in state_dir. */
  baselineVersion: string | null;
  durationMs: number;
}

/** pass: no rule failed and none lacked data; fail: any rule breached; else inconclusive. */
export function gateOutcome(verdicts: readonly RuleVerdict[]): GateOutcome {
  if (verdicts.some((v) => v.outcome === 'fail')) return 'fail';
  if (verdicts.some((v) => v.outcome === 'inconclusive' || v.outcome === 'error')) return 'inconclusive';
  return 'pass';
}

/** Baselines of the stable version recorded by a daemon using the same store, if any (read only). */
async function storedBaseline(config: Config): Promise<{ version: string | null; baselines: ObservedBaselines }> {
  let opened: OpenedStore | undefined;
  try {
    const store = config.store.type === 'redis' ? (opened = await openStore(config)).store : new FileStore(config.state_dir);
    const state = await store.loadState();
    const version = state?.stable ?? null;
    const baselines = version ? (await store.loadBaselines())[version] ?? {} : {};
    return { version, baselines: version ? { [version]: baselines } : {} };
  } catch {
    // No daemon state here (or unreadable): latency_ratio will say it has no baseline.
    return { version: null, baselines: {} };
  } finally {
    await opened?.close();
  }
}

export async function runCiGate(
  config: Config,
  options: { forMs: number; clock: Clock; pm2?: Pm2Client; onProgress?: (message: string) => void },
): Promise<GateResult> {
  const { clock } = options;
  const baseline = await storedBaseline(config);
  const probes = await createProbes(config.probes, { now: () => clock.now(), ...(options.pm2 ? { pm2: options.pm2 } : {}) });
  const samples = new Map<string, Sample[]>(probes.map((p) => [p.name, []]));
  const started = clock.now();
  const deadline = started + options.forMs;
  const abort = new AbortController();
  const pending = new Set<Promise<void>>();
  // Judged like the first minutes of a release window: fast probes, all launched on schedule.
  const window = { ...initialState(started), phase: 'guarding' as const, release: { id: 'check', version: 'check', previous: null, startedAt: started, deployedBy: 'check', source: 'manual' as const } };
  await Promise.all(
    probes.map(async (probe) => {
      let next = started;
      while (clock.now() < deadline) {
        const now = clock.now();
        if (now >= next) {
          next = now + probeIntervalMs(window, now, config.schedule, probe.type);
          // In launch order, as the rules expect: a slow check may complete after later ones.
          const run = probe.sample(now, abort.signal).then((sample) => {
            const list = samples.get(probe.name)!;
            list.splice(insertionIndex(list, sample.startedAt), 0, sample);
          });
          pending.add(run);
          void run.finally(() => pending.delete(run));
        }
        await clock.sleep(Math.max(1, Math.min(next, deadline) - clock.now()));
      }
    }),
  );
  // Let samples launched before the deadline finish (each is bounded by its probe's timeout).
  await Promise.allSettled([...pending]);
  await Promise.allSettled(probes.map((p) => p.close?.()));
  // Judged as the daemon judges the stable version: its samples since the check began, against
  // its baseline, with no initial delay (the check began after the deploy).
  const stable = { ...initialState(started), stable: baseline.version, running: baseline.version };
  const now = clock.now();
  const verdicts = verdictsOf(
    observe(stable, { type: 'evaluate', at: now, samples, baselines: baseline.baselines, runningSince: started }, {
      rules: config.rules,
      versionProbe: config.release.version_probe,
      verificationProbe: config.verification.probe,
      initialDelayMs: 0,
      probeTypes: new Map(config.probes.map((p) => [p.name, p.type])),
      // One look per sample the check could take at the fast interval: the budget holds for the run.
      looks: windowLooks({ windowMs: now - started, fastForMs: now - started, fastIntervalMs: config.schedule.fast_interval, intervalMs: config.schedule.interval }),
    }),
  );
  return {
    outcome: gateOutcome(verdicts),
    verdicts,
    samples: Object.fromEntries([...samples].map(([name, list]) => [name, list.length])),
    baselineVersion: baseline.version,
    durationMs: clock.now() - started,
  };
}
