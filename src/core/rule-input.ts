/**
 * What the rules judge: the samples of each probe, the window, the baselines, and how each rule
 * reads its probe (the rule catalog). Shared by every rule.
 */
import { acceptedProbeTypes, readingOf, type SourceReading } from './rule-catalog.js';
import type { SequentialState } from './sequential.js';
import type { RuleName, RuleVerdict, Sample } from './types.js';
import { firstLaunchedFrom } from './samples.js';

export interface RuleInput {
  /**
   * Recent samples per probe name, each list ordered by launch time (`startedAt`, ties in arrival
   * order): the guard inserts each sample in place. Rules binary-search the window start and read
   * backwards from the newest, so an evaluation costs the same early and late in a window.
   */
  samples: ReadonlyMap<string, readonly Sample[]>;
  now: number;
  /**
   * Only samples launched at or after this are judged (null: all retained samples). Inside a
   * release window it is the window's start, so the old version's samples never count against
   * the new one; after a rollback it is when the old version came back.
   */
  since: number | null;
  /** Start of the release window, or null outside one (for initial_delay). */
  releaseStartedAt: number | null;
  initialDelayMs: number;
  /** Baseline p95 latency (ms) of the last stable version, per probe; absent when unknown. */
  baselineP95: ReadonlyMap<string, number>;
  /** Probe name → probe type, so a rule knows whether it reads checks or real traffic. */
  probeTypes: ReadonlyMap<string, string>;
  /**
   * The most looks (probe samples) the release window can hold: the sequential rules' crossing
   * level pays for each, so the false-rollback budget holds over the whole window.
   */
  looks: number;
  /** The previous version's learnt error ratio per traffic probe: a tolerance below it is raised to it. */
  baselineErrorRatio?: ReadonlyMap<string, number>;
  /**
   * A cache the caller keeps between evaluations so the sequential rules fold only new samples.
   * Results are the same without it (everything is folded again).
   */
  memo?: RuleMemo;
}

/** Per rule and probe: how far the sequential test has folded the probe's sample list. */
export type RuleMemo = Map<
  string,
  {
    list: readonly Sample[];
    since: number | null;
    paramsKey: string;
    last: Sample;
    lastIndex: number;
    /** Samples from the window start up to and including `last`. */
    folded: number;
    state: SequentialState;
    samples: number;
  }
>;

const NO_SAMPLES: readonly Sample[] = [];
export const listOf = (input: RuleInput, probe: string): readonly Sample[] => input.samples.get(probe) ?? NO_SAMPLES;

/** Samples launched at or after `since` that observed something, in launch order. */
export function samplesOf(input: RuleInput, probe: string, since: number): Sample[] {
  const list = listOf(input, probe);
  const out: Sample[] = [];
  for (let i = firstLaunchedFrom(list, since); i < list.length; i++) {
    const sample = list[i];
    if (sample && !sample.unavailable) out.push(sample);
  }
  return out;
}

/** The latest sample launched at or after `since`, when it could not observe. */
export function unavailableOf(input: RuleInput, probe: string, since: number): Sample | undefined {
  const last = listOf(input, probe).at(-1);
  return last && last.startedAt >= since && last.unavailable ? last : undefined;
}

export const windowStart = (input: RuleInput) => input.since ?? Number.NEGATIVE_INFINITY;

/**
 * How `rule` reads its probe (rule-catalog.ts), or an `error` verdict naming the probe's type and
 * the types the rule reads: the config check refuses such a probe, so this is a caller's mistake,
 * never a reason to guess.
 */
export function readingFor(rule: RuleName, probe: string, input: RuleInput, base: Pick<RuleVerdict, 'rule' | 'threshold' | 'unit'>): SourceReading | RuleVerdict {
  const type = input.probeTypes.get(probe);
  const reading = type === undefined ? null : readingOf(rule, type);
  if (reading) return reading;
  const seen = type === undefined ? 'of unknown type' : `of type ${type}`;
  return { ...base, outcome: 'error', observed: null, message: `${rule}: probe ${probe} is ${seen}; ${rule} reads ${acceptedProbeTypes(rule).join(', ')} probes` };
}

export const isReading = (found: SourceReading | RuleVerdict): found is SourceReading => 'kind' in found;

/** How many samples with data the rule needs before it judges: its min_samples, else the catalog's default for the source. */
export function minSamples(rule: { min_samples?: number | undefined }, reading: SourceReading): number {
  return rule.min_samples ?? reading.minSamples ?? 1;
}
