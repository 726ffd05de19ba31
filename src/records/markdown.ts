/**
 * The rollback record as Markdown (seed §4.3): date, from → to, why with observed values vs
 * thresholds, method, each step with its duration, the timeline, and the app's recent logs.
 * Pure: everything it shows is in its arguments.
 */
import { formatDuration } from '../config/duration.js';
import type { RollbackRecord } from '../core/types.js';
import type { TrafficImpact } from './impact.js';

export interface RecordDetails {
  service: string;
  verificationProbe: string;
  requiredPasses: number;
  logs: string[];
  /** File name of the timeline SVG written beside the record, if any. */
  timeline?: string;
  /** What the release served until the previous version was verified, from the traffic source. */
  impact?: TrafficImpact;
}

const iso = (ms: number | null | undefined) => (ms ? new Date(ms).toISOString() : '—');
const since = (from: number, to: number | null | undefined) => (to ? `+${formatDuration(to - from)}` : '—');
/**
 * A fenced code block that its content cannot close: the fence is one backtick longer than the
 * longest backtick run inside (CommonMark: a closing fence is at least as long as the opening).
 */
export function codeBlock(lines: readonly string[]): string[] {
  const longest = Math.max(0, ...lines.map((line) => Math.max(0, ...(line.match(/`+/g) ?? []).map((run) => run.length))));
  const fence = '`'.repeat(Math.max(3, longest + 1));
  return [fence, ...lines, fence];
}

const cell = (text: string) => text.replace(/\|/g, '\\|').replace(/\n/g, ' ');

export function renderRecordMarkdown(record: RollbackRecord, details: RecordDetails): string {
  const { breach, release } = record;
  const fault = breach.faultAt;
  const lines: string[] = [];
  const title = record.outcome === 'rolled_back' ? 'Rollback' : 'Failed rollback';
  lines.push(`# ${title}: ${details.service} ${record.from} → ${record.to}`, '');
  lines.push(`- **Date:** ${iso(record.startedAt)}`);
  lines.push(`- **Outcome:** ${record.outcome === 'rolled_back' ? 'rolled back and verified' : `FAILED — ${record.failure ?? 'unknown'}`}`);
  lines.push(`- **Trigger:** ${breach.trigger}${breach.rules.length ? ` (${breach.rules.join(', ')})` : ''}`);
  lines.push(`- **Reason:** ${breach.reason}`);
  lines.push(`- **Release:** ${release.version} (previous ${release.previous ?? 'none'}), ${release.source} at ${iso(release.startedAt)}, deployed by ${release.deployedBy}`);
  lines.push(`- **Method:** ${record.steps.map((s) => s.type).join(' → ') || 'none ran'}`);
  lines.push(`- **Attempts:** ${record.attempts}`);
  if (details.impact) {
    const { impact } = details;
    const share = impact.requests > 0 ? ` (${((impact.errors / impact.requests) * 100).toFixed(1)}%)` : '';
    const gaps = impact.uncounted > 0 ? `; ${impact.uncounted} interval(s) could not be counted` : '';
    lines.push(
      `- **Impact:** ${impact.requests} requests served, ${impact.errors} failed${share}, from the release start to ${record.outcome === 'rolled_back' ? 'the verified rollback' : 'the failure'} (${formatDuration(impact.to - impact.from)}), as counted by probe \`${impact.probe}\`${gaps}`,
    );
  }
  lines.push('');
  lines.push('## Timeline', '');
  lines.push('| event | time | since fault |', '| --- | --- | --- |');
  lines.push(`| release started | ${iso(release.startedAt)} | ${release.startedAt <= fault ? `-${formatDuration(fault - release.startedAt)}` : '—'} |`);
  lines.push(`| fault began | ${iso(fault)} | 0 |`);
  lines.push(`| rollback decided | ${iso(breach.decidedAt)} | ${since(fault, breach.decidedAt)} |`);
  lines.push(`| plan finished | ${iso(record.executedAt)} | ${since(fault, record.executedAt)} |`);
  lines.push(`| ${record.outcome === 'rolled_back' ? 'verified' : 'failed'} | ${iso(record.finishedAt)} | ${since(fault, record.finishedAt)} |`);
  lines.push('', `Release window length until the decision: ${formatDuration(breach.decidedAt - release.startedAt)}.`, '');
  if (details.timeline) lines.push(`![release window timeline](${details.timeline})`, '');
  if (breach.verdicts.length > 0) lines.push(...ruleSection(breach.verdicts));
  lines.push(...stepSection(record.steps));
  lines.push('', '## Verification', '');
  lines.push(`Health probe \`${details.verificationProbe}\`: ${record.verification.healthPasses}/${details.requiredPasses} consecutive passes reporting ${record.to}.`);
  if (record.verification.checks.length > 0) {
    lines.push('', '| check | type | result | detail | duration |', '| --- | --- | --- | --- | --- |');
    for (const c of record.verification.checks) {
      lines.push(`| ${cell(c.name)} | ${c.type} | ${c.ok ? 'pass' : 'FAIL'} | ${cell(c.detail)} | ${formatDuration(c.durationMs)} |`);
    }
  }
  if (details.logs.length > 0) {
    lines.push('', '## Application logs (last lines)', '', ...codeBlock(details.logs));
  }
  lines.push('');
  return lines.join('\n');
}

/** The rules' verdicts at the decision, and the sequential evidence of those that carry it. */
function ruleSection(verdicts: RollbackRecord['breach']['verdicts']): string[] {
  const lines: string[] = [];
  lines.push('## Rules at the decision', '');
  lines.push('| rule | outcome | observed | threshold | detail |', '| --- | --- | --- | --- | --- |');
  for (const v of verdicts) {
    lines.push(`| ${v.rule} | ${v.outcome} | ${v.observed ?? '—'} | ${v.threshold} ${v.unit} | ${cell(v.message)} |`);
  }
  lines.push('');
  const sequential = verdicts.filter((v) => v.evidence);
  if (sequential.length > 0) {
    lines.push('Sequential evidence (the statistic must reach ln(looks / budget); a release at the tolerance crosses with probability at most the budget per window):', '');
    lines.push('| rule | statistic | needed | evidence since | bad / trials (evidence) | bad / trials (window) | tolerance | threshold | budget | min span |', '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |');
    for (const v of sequential) {
      const e = v.evidence!;
      const ex = e.excursion;
      lines.push(
        `| ${v.rule} | ${e.statistic} | ${e.needed} | ${ex ? iso(ex.from) : '—'} | ${ex ? `${ex.k} / ${ex.n}` : '—'} | ${e.k} / ${e.n} | ${e.tolerance} | ${e.threshold} | ${e.budget} | ${formatDuration(e.minSpanMs)} |`,
      );
    }
    lines.push('');
  }
  return lines;
}

/** Each step with its result and duration, where a resumed plan was interrupted, and what steps printed. */
function stepSection(steps: RollbackRecord['steps']): string[] {
  const lines: string[] = [];
  lines.push('## Steps', '');
  if (steps.length === 0) lines.push('No step ran.');
  else {
    lines.push('| # | step | result | duration | attempt |', '| --- | --- | --- | --- | --- |');
    for (const [i, s] of steps.entries()) {
      // A step of a later attempt than the one before it: the plan stopped in between (the guard
      // restarted, or the store or the lease was lost) and was resumed. Say so, with the gap.
      const before = steps[i - 1];
      if (before && s.attempt > before.attempt) {
        const gap = before.finishedAt ? ` for ${formatDuration(Math.max(0, s.startedAt - before.finishedAt))}` : '';
        lines.push(`| — | plan interrupted${gap} after step ${before.index + 1}, resumed (attempt ${s.attempt}) | — | — | — |`);
      }
      const result = s.ok === undefined ? 'interrupted' : s.ok ? 'ok' : `failed: ${cell(s.error ?? '')}`;
      const duration = s.finishedAt ? formatDuration(s.finishedAt - s.startedAt) : '—';
      lines.push(`| ${s.index + 1} | ${cell(s.description)} | ${result} | ${duration} | ${s.attempt} |`);
    }
    for (const s of steps.filter((step) => step.output.length > 0)) {
      lines.push('', `Step ${s.index + 1} output:`, '', ...codeBlock(s.output));
    }
  }
  return lines;
}
