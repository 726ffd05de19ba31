/**
 * Parsing side of the scrape probe: the samples of one /metrics answer totalled per process
 * (requests, errors by status, latency buckets) into a Snapshot, as they stream in.
 */
import type { ScrapeProbeConfig } from '../config/schema.js';
import type { Bucket } from './histogram-quantile.js';
import { parseValue, type MetricSample, type ParsedMetrics } from './prometheus-text.js';

/** Cumulative totals read from one scrape (of one process). */
export interface Totals {
  requests: number;
  errors: number;
  /** Requests by status label value ('' for series without the label). */
  byStatus: Map<string, number>;
  /** Cumulative histogram buckets sorted by upper bound, summed over other labels; empty when absent. */
  buckets: Bucket[];
}

/** One scrape as the next one is compared with it. */
export interface Snapshot {
  /**
   * Totals per process. The key is the series' identity labels as written in the exposition
   * (`worker="1"`); '' for series that carry none, whose process only the connection tells.
   */
  byProcess: Map<string, Totals>;
  /** identity_metric's value(s) per process key, when the metric is configured and present. */
  identity: Map<string, string>;
  /** Which connection carried the scrape (0: unknown). */
  connection: number;
}

/**
 * Pure: which process a series comes from, by the identity labels it carries, as written in the
 * exposition (`instance="a",worker="1"`); '' when it carries none of them.
 */
export function processKey(labels: Readonly<Record<string, string>>, identityLabels: readonly string[]): string {
  const parts: string[] = [];
  for (const label of identityLabels) {
    const value = labels[label];
    if (value !== undefined && value !== '') parts.push(`${label}=${JSON.stringify(value)}`);
  }
  return parts.join(',');
}

type SnapshotConfig = Pick<ScrapeProbeConfig, 'requests_metric' | 'status_label' | 'duration_metric' | 'identity_labels' | 'identity_metric'>;

/** Pure: one scrape per process; null when the requests metric is missing entirely. */
export function snapshotOf(parsed: ParsedMetrics, config: SnapshotConfig, errorStatus: RegExp, connection: number): Snapshot | null {
  const builder = new SnapshotBuilder(config, errorStatus);
  for (const s of parsed.samples) builder.add(s);
  return builder.finish(Object.hasOwn(parsed.types, config.requests_metric), connection);
}

/**
 * Pure: a snapshot totalled sample by sample as they are read, so no sample is kept. Its size
 * grows with the processes and statuses seen, which the series cap bounds.
 */
export class SnapshotBuilder {
  private readonly byProcess = new Map<string, Totals>();
  private readonly bucketsByProcess = new Map<string, Map<number, number>>();
  private readonly identityValues = new Map<string, number[]>();
  private readonly bucketName: string;
  private seen = false;

  constructor(
    private readonly config: SnapshotConfig,
    private readonly errorStatus: RegExp,
  ) {
    this.bucketName = `${config.duration_metric}_bucket`;
  }

  add(s: MetricSample): void {
    const { config } = this;
    if (s.name === config.requests_metric) {
      this.seen = true;
      if (!Number.isFinite(s.value)) return;
      const totals = this.totalsFor(processKey(s.labels, config.identity_labels));
      const status = s.labels[config.status_label] ?? '';
      totals.requests += s.value;
      totals.byStatus.set(status, (totals.byStatus.get(status) ?? 0) + s.value);
      if (status !== '' && this.errorStatus.test(status)) totals.errors += s.value;
    } else if (s.name === this.bucketName) {
      const le = parseValue(s.labels.le ?? '');
      if (le === null || Number.isNaN(le) || !Number.isFinite(s.value)) return;
      const key = processKey(s.labels, config.identity_labels);
      this.totalsFor(key);
      let byLe = this.bucketsByProcess.get(key);
      if (byLe === undefined) this.bucketsByProcess.set(key, (byLe = new Map()));
      byLe.set(le, (byLe.get(le) ?? 0) + s.value);
    } else if (s.name === config.identity_metric) {
      const key = processKey(s.labels, config.identity_labels);
      const values = this.identityValues.get(key);
      if (values === undefined) this.identityValues.set(key, [s.value]);
      else values.push(s.value);
    }
  }

  /** The snapshot; null when the requests metric was neither declared (`# TYPE`) nor sampled. */
  finish(declared: boolean, connection: number): Snapshot | null {
    if (!this.seen && !declared) return null;
    // A declared metric with no series yet (a fresh app): zero requests, from whichever process answered.
    if (this.byProcess.size === 0) this.totalsFor('');
    for (const [key, byLe] of this.bucketsByProcess) {
      this.totalsFor(key).buckets = [...byLe].map(([le, count]) => ({ le, count })).sort((a, b) => a.le - b.le);
    }
    const identity = new Map([...this.identityValues].map(([key, values]) => [key, values.sort((a, b) => a - b).join(',')]));
    return { byProcess: this.byProcess, identity, connection };
  }

  private totalsFor(key: string): Totals {
    let totals = this.byProcess.get(key);
    if (totals === undefined) this.byProcess.set(key, (totals = { requests: 0, errors: 0, byStatus: new Map(), buckets: [] }));
    return totals;
  }
}
