/**
 * Observation: what the guard's eyes (probe samples, the clock's ticks) mean to the machine. A pure
 * function of the state, the observation and the configuration: the daemon, `check` and the
 * simulated release windows of the tests all turn samples into events here, so the routing
 * (which samples feed which rule and which event) exists once.
 */
import type { RulesConfig } from '../config/schema.js';
import { evaluateRules, type RuleInput, type RuleMemo } from './rules.js';
import type { Event, GuardState, RuleVerdict, Sample } from './types.js';

/** The learnt baseline of each version's probes (the store's shape, read only). */
export type ObservedBaselines = Readonly<Record<string, Readonly<Record<string, { p95Ms: number; errorRatio?: number }>>>>;

/** What observation needs of the configuration; fixed for the life of a guard. */
export interface ObserveContext {
  rules: RulesConfig;
  /** The probe whose samples carry the running version (release.version_probe). */
  versionProbe: string;
  /** The probe whose samples prove a rollback (verification.probe). */
  verificationProbe: string;
  initialDelayMs: number;
  /** Each probe's type: the rules read the values the type produces. */
  probeTypes: ReadonlyMap<string, string>;
  /** The most samples a release window holds (the sequential rules' crossing level). */
  looks: number;
}

export type Observation =
  /** A probe sample came back (already kept in launch order by the caller). */
  | { type: 'sample'; probe: string; sample: Sample }
  /** The clock ticked: windows time out, vetoes expire. */
  | { type: 'tick'; at: number }
  /** Judge every rule on the samples kept so far. */
  | {
      type: 'evaluate';
      at: number;
      samples: ReadonlyMap<string, readonly Sample[]>;
      baselines: ObservedBaselines;
      /** When the running version last changed: samples before it belong to another version. */
      runningSince: number;
      /** Lets the sequential rules fold only the samples added since the last evaluation. */
      memo?: RuleMemo;
    };

/**
 * The events an observation means in `state`, in the order they must be applied. A sample's
 * events are judged on the state it arrives in: a version sample never changes whether a
 * verification sample counts (versionObserved leaves `verifying` unchanged).
 */
export function observe(state: GuardState, observation: Observation, ctx: ObserveContext): Event[] {
  switch (observation.type) {
    case 'sample':
      return sampleEvents(state, observation.probe, observation.sample, ctx);
    case 'tick':
      return [{ type: 'tick', at: observation.at }];
    case 'evaluate':
      return [{ type: 'evaluated', verdicts: evaluateRules(ctx.rules, ruleInput(state, observation, ctx)), at: observation.at }];
  }
}

/** The verdicts an `evaluated` event carries (none for any other event). */
export function verdictsOf(events: readonly Event[]): RuleVerdict[] {
  const evaluated = events.find((e) => e.type === 'evaluated');
  return evaluated?.type === 'evaluated' ? evaluated.verdicts : [];
}

/** The sample routing: the version probe reports the running version, the verification probe proves a rollback. */
function sampleEvents(state: GuardState, probe: string, sample: Sample, ctx: ObserveContext): Event[] {
  const events: Event[] = [];
  if (probe === ctx.versionProbe && sample.version) events.push({ type: 'versionObserved', version: sample.version, at: sample.startedAt });
  // Only samples launched after the plan ran can prove the rollback.
  if (probe === ctx.verificationProbe && state.phase === 'verifying' && sample.startedAt >= state.since) {
    events.push({ type: 'verifySample', ok: sample.ok, ...(sample.version ? { version: sample.version } : {}), at: sample.at, startedAt: sample.startedAt });
  }
  return events;
}

/**
 * What the rules judge: inside a window, the release's samples against the previous version's
 * baseline; otherwise the running version's samples against the stable version's baseline.
 */
function ruleInput(state: GuardState, o: Extract<Observation, { type: 'evaluate' }>, ctx: ObserveContext): RuleInput {
  const guarding = state.phase === 'guarding' ? state.release : null;
  const baselineVersion = guarding ? guarding.previous : state.stable;
  const baselineP95 = new Map<string, number>();
  const baselineErrorRatio = new Map<string, number>();
  for (const [probe, entry] of Object.entries((baselineVersion && o.baselines[baselineVersion]) || {})) {
    baselineP95.set(probe, entry.p95Ms);
    if (entry.errorRatio !== undefined) baselineErrorRatio.set(probe, entry.errorRatio);
  }
  return {
    samples: o.samples,
    now: o.at,
    since: guarding ? guarding.startedAt : o.runningSince,
    releaseStartedAt: guarding ? guarding.startedAt : null,
    initialDelayMs: ctx.initialDelayMs,
    baselineP95,
    baselineErrorRatio,
    probeTypes: ctx.probeTypes,
    looks: ctx.looks,
    ...(o.memo ? { memo: o.memo } : {}),
  };
}

/**
 * When the running version last changed, after `before` became `after` at `at`: a new running
 * version, or a rollback entering verification (the previous version is back), starts afresh.
 */
export function runningSinceAfter(before: GuardState, after: GuardState, at: number, runningSince: number): number {
  if (after.running !== before.running || (after.phase === 'verifying' && before.phase !== 'verifying')) return at;
  return runningSince;
}
