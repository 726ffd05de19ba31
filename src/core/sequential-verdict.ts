/**
 * The sequential rules' machinery: folding a probe's samples into the sequential test (with a memo
 * so each evaluation folds only new samples), and the verdict it gives, worded when first read.
 */
import { advance, evidenceOf, INITIAL_STATE, type SequentialEvidence, type SequentialParams, type SequentialState } from './sequential.js';
import { firstLaunchedFrom, pct, round } from './samples.js';
import { listOf, windowStart, type RuleInput } from './rule-input.js';
import type { Outcome, RuleName, RuleVerdict, Sample } from './types.js';

/**
 * What a sequential rule counts in one sample: `n` trials, `k` bad ones. Null when the sample
 * counted nothing (no data, never zero).
 */
export type TrialCounter = (sample: Sample) => { n: number; k: number } | null;

/**
 * Folds the probe's samples of the window into the sequential test, in launch order. With a memo
 * (a cache the caller keeps between evaluations) only the samples added since the last call are
 * folded; any other change to the list (a sample inserted out of order, old ones dropped inside the
 * window) folds it again from the start, so the result is the same with or without the memo.
 */
export function foldSequential(
  input: RuleInput,
  key: string,
  probe: string,
  params: SequentialParams,
  paramsKey: string,
  count: TrialCounter,
): { state: SequentialState; samples: number } {
  const list = listOf(input, probe);
  const from = firstLaunchedFrom(list, windowStart(input));
  const memo = input.memo;
  const cached = memo?.get(key);
  let state = INITIAL_STATE;
  let next = from;
  let samples = 0;
  if (cached && cached.list === list && cached.since === input.since && cached.paramsKey === paramsKey) {
    // Where the last folded sample is now: old samples may have been dropped before it.
    let i = Math.min(cached.lastIndex, list.length - 1);
    while (i >= from && list[i] !== cached.last) i--;
    if (i >= from && i - from + 1 === cached.folded) {
      state = cached.state;
      next = i + 1;
      samples = cached.samples;
    }
  }
  let folded = next - from;
  for (let i = next; i < list.length; i++, folded++) {
    const s = list[i];
    if (!s || s.unavailable) continue;
    const trials = count(s);
    if (!trials) continue;
    samples++;
    // The batch covers the time since the probe's previous sample answered (a scrape's interval,
    // the gap between two checks); the first one, a nominal fast interval.
    const previous = list[i - 1];
    const spanMs = previous ? Math.max(0, s.at - previous.at) : DEFAULT_BATCH_SPAN_MS;
    state = advance(state, params, { n: trials.n, k: trials.k, at: s.at, spanMs });
  }
  const last = list.at(-1);
  if (memo && last && list.length > from) {
    memo.set(key, { list, since: input.since, paramsKey, last, lastIndex: list.length - 1, folded, state, samples });
  }
  return { state, samples };
}

const DEFAULT_BATCH_SPAN_MS = 250;

/** The words and numbers every sequential verdict carries. */
export function sequentialVerdict(
  base: Pick<RuleVerdict, 'rule' | 'threshold' | 'unit'>,
  params: SequentialParams,
  state: SequentialState,
  describe: () => { what: string; trials: string; rate: (k: number, n: number) => string; detail?: string },
): RuleVerdict {
  const evidence = evidenceOf(state, params);
  const ex = state.excursion;
  // Observed: the bad share of the evidence under way (or of the whole window when there is none).
  const [k, n] = ex ? [ex.k, ex.n] : [state.k, state.n];
  return new SequentialVerdict(base, evidence, n > 0 ? round(k / n, 4) : 0, evidence.crossed && ex ? ex.from : undefined, () => {
    const text = describe();
    const counts = ex
      ? `${text.rate(ex.k, ex.n)} (${fmtCount(ex.k)}/${ex.n} ${text.trials} since the evidence began)`
      : `${text.rate(state.k, state.n)} (${fmtCount(state.k)}/${state.n} ${text.trials} in window)`;
    const stat = `evidence ${evidence.statistic} ${evidence.crossed ? '>=' : '<'} ${evidence.needed} (budget ${pct(params.budget)}, tolerance ${pct(params.p0)})`;
    const detail = text.detail ? `; ${text.detail}` : '';
    return `${text.what}: ${counts} ${evidence.crossed ? '>' : 'not proven >'} ${pct(params.threshold)}: ${stat}${detail}`;
  });
}

/**
 * A sequential rule's verdict. Rules are evaluated after every sample and the sentence is read far
 * less often, so it is written when first read; JSON (state, records, the API) carries it as a
 * plain field.
 */
class SequentialVerdict implements RuleVerdict {
  readonly rule: RuleName;
  readonly outcome: Outcome;
  readonly observed: number;
  readonly threshold: number;
  readonly unit: RuleVerdict['unit'];
  readonly since?: number;
  readonly evidence: SequentialEvidence;
  #message: string | undefined;
  readonly #describe: () => string;

  constructor(base: Pick<RuleVerdict, 'rule' | 'threshold' | 'unit'>, evidence: SequentialEvidence, observed: number, since: number | undefined, describe: () => string) {
    this.rule = base.rule;
    this.outcome = evidence.crossed ? 'fail' : 'pass';
    this.observed = observed;
    this.threshold = base.threshold;
    this.unit = base.unit;
    if (since !== undefined) this.since = since;
    this.evidence = evidence;
    this.#describe = describe;
  }

  get message(): string {
    this.#message ??= this.#describe();
    return this.#message;
  }

  toJSON(): RuleVerdict {
    return {
      rule: this.rule,
      outcome: this.outcome,
      observed: this.observed,
      threshold: this.threshold,
      unit: this.unit,
      message: this.message,
      ...(this.since !== undefined ? { since: this.since } : {}),
      evidence: this.evidence,
    };
  }
}

const fmtCount = (k: number) => (Number.isInteger(k) ? String(k) : k.toFixed(1));

/**
 * The tolerance of a rule, raised to what the previous version already did — but never by more
 * than to 80 % of the threshold: a release as bad as its predecessor is not rolled back, and a
 * predecessor near the threshold does not make the rule blind. A configured tolerance stands.
 */
export function toleranceOf(configured: number, threshold: number, learnt: number | undefined): number {
  if (learnt === undefined || learnt <= configured) return configured;
  return Math.max(configured, Math.min(learnt, threshold * MAX_TOLERANCE_SHARE));
}

/** A tolerance this close to the threshold would need far too many requests to tell them apart. */
const MAX_TOLERANCE_SHARE = 0.8;
