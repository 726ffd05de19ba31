/**
 * The rule catalog: for each rule, the probe types it judges, how it reads each one, the sample
 * values it reads (keys the probes write, typed by `SampleValueKey`) and how many samples it
 * needs before it judges. The config schema (which probe a rule may name, the key descriptions),
 * the rules themselves, the routing of samples to rules and the config docs all read it, so a
 * probe type or a value a rule reads is written down once.
 */
import type { ProbeConfig } from '../config/schema.js';
import type { RuleName } from './types.js';

export type ProbeType = ProbeConfig['type'];

/**
 * The sample values the built-in probes write (`Sample.values`), with their unit. A prometheus
 * probe writes one value per configured query, under the query's name: `error_ratio` and `p95_ms`
 * are the names the rules read.
 */
export const SAMPLE_VALUES = {
  latency_ms: 'ms: how long the check, query or scrape took',
  status: 'HTTP status of the check',
  error_ratio: '0..1: errors / requests of the interval (scrape, access_log), or the prometheus error_ratio query',
  p95_ms: 'ms: p95 latency of the interval\'s requests (scrape, access_log), or the prometheus p95_ms query',
  requests: 'requests counted in the interval',
  rps: 'requests per second of the interval',
  cpu: '0..1: CPU use (share of the cores the host or the app can use)',
  memory: '0..1: memory use (share of the host)',
  memory_bytes: 'bytes of memory the app uses',
  disk: '0..1: disk use',
  disk_io: '0..1: share of time the disks were busy',
  instances: 'instances of the pm2 app',
  online: 'instances of the pm2 app online',
  restarts: 'restarts of the pm2 app\'s instances',
  lines_unparsed: 'access-log lines of the interval that did not match the format',
  lines_skipped: 'access-log lines of the interval skipped (too long, binary)',
  bytes_behind: 'bytes of the access log not read yet',
} as const;

export type SampleValueKey = keyof typeof SAMPLE_VALUES;

/** Values written under the built-in names only: what every probe but prometheus writes. */
export type BuiltInSampleValues = { [K in SampleValueKey]?: number };

/**
 * How a rule reads one probe type:
 * - `checks`: each sample is one check (passed or not, and how long it took);
 * - `traffic`: each sample counts an interval of real requests (`Sample.traffic`), and its values;
 * - `aggregate`: each sample carries values already aggregated over a range (a Prometheus query);
 * - `readings`: each sample is a reading of the host, the app or a database.
 */
export type SourceKind = 'checks' | 'traffic' | 'aggregate' | 'readings';

export interface SourceReading {
  kind: SourceKind;
  /** The sample values the rule reads from this probe type (besides `ok` and `traffic`). */
  values: readonly SampleValueKey[];
  /** What the rule judges of it, in words (config docs and schema descriptions). */
  judges: string;
  /** Fewer samples with data in the window leave the rule inconclusive (rules with min_samples). */
  minSamples?: number;
}

export interface RuleEntry {
  /** The probe types the rule accepts, in the order the docs name them. Empty: not judged from probes. */
  sources: Partial<Record<ProbeType, SourceReading>>;
}

/** Default min_samples by source: http checks are cheap and frequent; a scrape or an access-log read covers an interval of traffic; one Prometheus query already aggregates a whole range. */
const CHECKS_NEEDED = 20;
const INTERVALS_NEEDED = 3;
const QUERIES_NEEDED = 1;

/**
 * What a latency rule reads: the latency of http checks, the traffic of scrape and access_log
 * probes (its p95_ms teaches the baseline), a prometheus p95_ms query.
 */
const latencySources = (checks: string, traffic: string): Partial<Record<ProbeType, SourceReading>> => ({
  http: { kind: 'checks', values: ['latency_ms'], judges: checks, minSamples: CHECKS_NEEDED },
  scrape: { kind: 'traffic', values: ['p95_ms'], judges: traffic, minSamples: INTERVALS_NEEDED },
  access_log: { kind: 'traffic', values: ['p95_ms'], judges: traffic, minSamples: INTERVALS_NEEDED },
  prometheus: { kind: 'aggregate', values: ['p95_ms'], judges: 'p95_ms query', minSamples: QUERIES_NEEDED },
});

export const RULE_CATALOG = {
  health: {
    sources: { http: { kind: 'checks', values: [], judges: 'consecutive failed checks' } },
  },
  error_rate: {
    sources: {
      http: { kind: 'checks', values: [], judges: 'failed checks', minSamples: CHECKS_NEEDED },
      scrape: { kind: 'traffic', values: [], judges: 'errors of real traffic', minSamples: INTERVALS_NEEDED },
      access_log: { kind: 'traffic', values: [], judges: 'errors of real traffic', minSamples: INTERVALS_NEEDED },
      prometheus: { kind: 'aggregate', values: ['error_ratio'], judges: 'error_ratio query', minSamples: QUERIES_NEEDED },
    },
  },
  // latency_ratio judges the latency buckets of the traffic; the baseline is learnt from p95_ms.
  latency_ratio: { sources: latencySources('latency of checks', 'latency buckets of real traffic') },
  latency_max: { sources: latencySources('p95 of checks', 'p95 of real traffic') },
  cpu: {
    sources: {
      system: { kind: 'readings', values: ['cpu'], judges: 'CPU of the host' },
      process: { kind: 'readings', values: ['cpu'], judges: 'CPU of the app' },
    },
  },
  memory: {
    sources: {
      system: { kind: 'readings', values: ['memory'], judges: 'memory of the host' },
      process: { kind: 'readings', values: ['memory'], judges: 'memory of the app' },
    },
  },
  db_latency: {
    sources: {
      // A failed query counts as slow.
      mysql: { kind: 'checks', values: ['latency_ms'], judges: 'query time' },
      redis: { kind: 'checks', values: ['latency_ms'], judges: 'PING time' },
    },
  },
  // Fired by Alertmanager (triggers.alertmanager), not judged from probe samples.
  alert: { sources: {} },
} as const satisfies Record<RuleName, RuleEntry>;

export const RULE_NAMES = Object.keys(RULE_CATALOG) as RuleName[];

/** The rules judged from probe samples, in the order they are evaluated. */
export type ProbeRuleName = Exclude<RuleName, 'alert'>;
export const PROBE_RULES = RULE_NAMES.filter((rule): rule is ProbeRuleName => acceptedProbeTypes(rule).length > 0);

/** The probe types `rule` accepts (empty for a rule not judged from probes). */
export function acceptedProbeTypes(rule: RuleName): ProbeType[] {
  return Object.keys(RULE_CATALOG[rule].sources) as ProbeType[];
}

/** How `rule` reads a probe of `probeType`, or null when it does not accept that type. */
export function readingOf(rule: RuleName, probeType: string): SourceReading | null {
  const sources: Partial<Record<string, SourceReading>> = RULE_CATALOG[rule].sources;
  return Object.hasOwn(sources, probeType) ? (sources[probeType] ?? null) : null;
}

/** Whether samples of a probe of `probeType` feed `rule` (routing). */
export function ruleReadsSample(rule: RuleName, probeType: string): boolean {
  return readingOf(rule, probeType) !== null;
}

/** Whether a probe type counts real traffic (requests and errors per interval) for any rule. */
export function isTrafficSource(probeType: string): boolean {
  return PROBE_RULES.some((rule) => readingOf(rule, probeType)?.kind === 'traffic');
}

/** The probe types in words, for a config description: `http probe (failed checks), … or prometheus probe (error_ratio query)`. */
export function describeSources(rule: RuleName): string {
  const parts = acceptedProbeTypes(rule).map((type) => `${type} probe (${readingOf(rule, type)?.judges ?? ''})`);
  return parts.length <= 1 ? (parts[0] ?? '') : `${parts.slice(0, -1).join(', ')} or ${parts.at(-1)}`;
}

/** The default min_samples in words, for a config description: `http 20, scrape 3, …`. */
export function describeMinSamples(rule: RuleName): string {
  return acceptedProbeTypes(rule)
    .map((type) => `${type} ${readingOf(rule, type)?.minSamples ?? 1}`)
    .join(', ');
}
