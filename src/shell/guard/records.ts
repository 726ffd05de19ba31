/**
 * The writeRecord effect: a rollback's record (JSON, Markdown, timeline picture) with the app's
 * last log lines and, when a rule reads counted traffic, what the release cost its users.
 */
import { isTrafficSource } from '../../core/rules.js';
import { finishedRollbackRecord } from '../../core/transition.js';
import type { RollbackRecord } from '../../core/types.js';
import { errorMessage } from '../../errors.js';
import { redact, redactText } from '../../redact.js';
import { trafficImpact, type TrafficImpact } from '../../records/impact.js';
import { renderRecordMarkdown } from '../../records/markdown.js';
import { RecordWriter } from '../../records/record-writer.js';
import { renderTimelineSvg } from '../../records/timeline-svg.js';
import { windowTimeline } from '../../records/window-series.js';
import type { GuardContext } from './context.js';

export class RecordKeeper {
  /** The newest record this guard wrote or found (for /status). */
  last: RollbackRecord | null = null;
  private readonly writer: RecordWriter;

  constructor(private readonly ctx: GuardContext) {
    const { deps } = ctx;
    this.writer = new RecordWriter({ ...deps, attempts: deps.config.records.write_attempts, signal: ctx.stopping, giveUp: (message) => ctx.announce('record_not_written', 'critical', message) });
  }

  async write(record: RollbackRecord): Promise<void> {
    const { config, metrics, pm2 } = this.ctx.deps;
    metrics.rollbackFinished(record.breach.trigger, record.outcome, record.breach.decidedAt, record.finishedAt);
    this.last = record;
    let logs: string[] = [];
    if (pm2 && config.pm2) {
      logs = await pm2.logTail(config.pm2.app, config.records.log_lines, config.records.log_bytes).catch((error: unknown) => [`(pm2 logs unavailable: ${errorMessage(error)})`]);
    }
    const svg = renderTimelineSvg(windowTimeline(record, this.ctx.samples.lists, this.ctx.machine.observing.probeTypes, config.service));
    const impact = this.impactOf(record);
    const details = {
      service: config.service,
      verificationProbe: config.verification.probe,
      requiredPasses: config.verification.passes,
      logs,
      timeline: `${record.id}.svg`,
      ...(impact ? { impact } : {}),
    };
    // Retried in the background when it fails (records/record-writer.ts).
    await this.writer.write({ record: redact(record), markdown: redactText(renderRecordMarkdown(record, details)), extra: redact({ service: config.service, logs, ...(impact ? { impact } : {}) }), svg });
  }

  /**
   * A rollback's record is written just after its end (rolled_back / failed) is persisted; a crash
   * in between would lose it. On start, write it if the store does not have it yet.
   */
  async writeOwed(): Promise<void> {
    const { store, log } = this.ctx.deps;
    const owed = finishedRollbackRecord(this.ctx.machine.state);
    if (!owed) return;
    try {
      if (await store.readRecord(owed.id)) return;
    } catch (error) {
      log.warn('could not check for the record of the last rollback', { component: 'record', id: owed.id, error: errorMessage(error) });
      return;
    }
    log.warn('the last rollback ended without its record (the guard stopped in between); writing it now', { component: 'record', id: owed.id });
    await this.write(owed);
  }

  /** Requests and errors the release served until it was rolled back, when a rule reads counted traffic. */
  private impactOf(record: RollbackRecord): TrafficImpact | undefined {
    const { rules } = this.ctx.deps.config;
    const probeTypes = this.ctx.machine.observing.probeTypes;
    const probe = [rules.error_rate?.probe, rules.latency_ratio?.probe].find((name) => name !== undefined && isTrafficSource(probeTypes.get(name) ?? 'http'));
    if (probe === undefined) return undefined;
    return trafficImpact(this.ctx.samples.of(probe), probe, record.release.startedAt, record.finishedAt);
  }
}
