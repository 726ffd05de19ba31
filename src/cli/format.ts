/**
 * What `release-guard status` and `history` print for humans. Pure: the views carry their own
 * `now`, so the same view always renders the same text (and the tests need no clock).
 * `--json` prints the views themselves; this text is for eyes, not scripts.
 */
import type { HistoryView, StatusView } from '../api/types.js';
import type { Outcome, Phase, RuleVerdict } from '../core/types.js';

export interface FormatOptions {
  /** Plain ANSI colours (the caller decides: a TTY and no NO_COLOR). */
  color: boolean;
}

const ANSI = { green: 32, red: 31, yellow: 33, grey: 90, bold: 1 } as const;
type Tint = keyof typeof ANSI;

const MARKS: Record<Outcome, { mark: string; tint: Tint }> = {
  pass: { mark: '✔', tint: 'green' },
  fail: { mark: '✖', tint: 'red' },
  inconclusive: { mark: '?', tint: 'yellow' },
  error: { mark: '!', tint: 'yellow' },
  skipped: { mark: '–', tint: 'grey' },
};

const PHASE_TINT: Record<Phase, Tint> = {
  stable: 'green',
  guarding: 'yellow',
  rolling_back: 'red',
  verifying: 'yellow',
  rolled_back: 'yellow',
  promoted: 'green',
  failed: 'red',
};

const STATUS_TINT: Record<string, Tint> = { success: 'green', failed: 'red', rolled_back: 'yellow' };

/** One row per rule: mark, rule, outcome, observed vs threshold. */
export function formatVerdicts(verdicts: readonly RuleVerdict[], opts: FormatOptions): string[] {
  const paint = painter(opts.color);
  if (verdicts.length === 0) return [`  ${paint('grey', 'no verdicts yet')}`];
  return table(
    verdicts.map((verdict) => {
      const { mark, tint } = MARKS[verdict.outcome] ?? { mark: '?', tint: 'yellow' as const };
      // Messages read `rule: observed vs threshold`; the rule already has its own column.
      const message = verdict.message.startsWith(`${verdict.rule}: `) ? verdict.message.slice(verdict.rule.length + 2) : verdict.message;
      return [paint(tint, mark), verdict.rule, paint(tint, verdict.outcome), message];
    }),
  );
}

/** The state, the release under guard with its window, every rule's latest verdict, the last rollback. */
export function formatStatus(view: StatusView, opts: FormatOptions): string {
  const paint = painter(opts.color);
  const now = Date.parse(view.now);
  const lines: string[] = [];

  const phase = paint(PHASE_TINT[view.phase] ?? 'bold', view.phase);
  lines.push(`${paint('bold', view.service)}: ${phase} for ${formatDuration(now - Date.parse(view.since))} (since ${formatTime(view.since)})`);

  const facts: string[][] = [
    ['stable', view.stable ?? paint('grey', 'none yet')],
    ['running', view.running ?? paint('grey', 'unknown')],
    ['paused', view.paused ? paint('yellow', 'yes: automatic rollback is off until resume') : 'no'],
  ];
  if (view.release) {
    const r = view.release;
    const from = r.previous === null ? '' : ` (from ${r.previous})`;
    let window = '';
    if (r.windowEndsAt !== null) {
      const left = Date.parse(r.windowEndsAt) - now;
      window = left > 0 ? `; window ends in ${formatDuration(left)}` : '; window ended';
    }
    facts.push(['release', `${paint('bold', r.version)}${from}, ${r.source} by ${r.deployedBy} at ${formatTime(r.startedAt)}${window}`]);
  }
  if (view.rollback) {
    const rb = view.rollback;
    facts.push([
      'rolling back',
      paint('red', `${rb.from} → ${rb.to}`) + ` (${rb.trigger}: ${rb.reason}), attempt ${rb.attempt}, started ${formatTime(rb.startedAt)}`,
    ]);
  }
  if (view.pendingRollback) {
    const left = Math.max(0, Date.parse(view.pendingRollback.at) - now);
    facts.push([
      'rolling back',
      paint('red', `to ${view.pendingRollback.to} in ${formatDuration(left)} unless vetoed (release-guard veto)`) + `: ${view.pendingRollback.reason}`,
    ]);
  }
  if (view.wouldRollBack !== null) facts.push(['would roll back', paint('yellow', view.wouldRollBack)]);
  if (view.failure !== null) facts.push(['failure', paint('red', view.failure)]);
  if (view.store && !view.store.up) facts.push(['store', paint('red', `${view.store.type} unreachable: observing, not acting (${view.store.error ?? 'no answer'})`)]);
  if (view.lease && view.lease.hostId !== null) {
    facts.push([
      'lease',
      view.lease.leader
        ? `this guard acts for ${view.lease.hostId}`
        : paint('yellow', `standing by for ${view.lease.hostId}; acting: ${view.lease.holder ?? 'nobody (lease free)'}`),
    ]);
  }
  if (view.fleet && view.fleet.waitingFor.length > 0) facts.push(['fleet', `waiting for ${view.fleet.waitingFor.join(', ')} to end their windows clean`]);
  lines.push(...table(facts));

  lines.push('', paint('bold', 'rules'), ...formatVerdicts(view.rules, opts));

  lines.push('');
  const last = view.lastRollback;
  lines.push(
    ...table([
      [
        paint('bold', 'last rollback'),
        last === null
          ? paint('grey', 'none')
          : `${last.from} → ${last.to} ${paint(STATUS_TINT[last.outcome] ?? 'bold', last.outcome)} at ${formatTime(last.finishedAt)} (${last.id})`,
      ],
    ], ''),
  );
  return `${lines.join('\n')}\n`;
}

/** Deployments (newest first) as an aligned table, then the rollbacks and the rollback candidates. */
export function formatHistory(view: HistoryView, opts: FormatOptions): string {
  const paint = painter(opts.color);
  const lines: string[] = [`${paint('bold', view.service)}: deployments, newest first`];
  const deployments = [...view.deployments].sort((a, b) => Date.parse(b.at) - Date.parse(a.at));
  if (deployments.length === 0) {
    lines.push(`  ${paint('grey', 'none recorded yet')}`);
  } else {
    lines.push(
      ...table([
        ['TIME', 'VERSION', 'STATUS', 'DEPLOYED BY', 'NOTE'].map((h) => paint('bold', h)),
        ...deployments.map((d) => [formatTime(d.at), d.version, paint(STATUS_TINT[d.status] ?? 'bold', d.status), d.deployedBy, d.note ?? '']),
      ]),
    );
  }

  lines.push('', paint('bold', 'rollbacks'));
  const rollbacks = [...view.rollbacks].sort((a, b) => Date.parse(b.finishedAt) - Date.parse(a.finishedAt));
  if (rollbacks.length === 0) {
    lines.push(`  ${paint('grey', 'none')}`);
  } else {
    lines.push(
      ...table([
        ['TIME', 'FROM', 'TO', 'OUTCOME', 'REASON', 'ID'].map((h) => paint('bold', h)),
        ...rollbacks.map((r) => [formatTime(r.finishedAt), r.from, r.to, paint(STATUS_TINT[r.outcome] ?? 'bold', r.outcome), r.reason, r.id]),
      ]),
    );
    if (view.next) lines.push(`older records: release-guard history --before ${view.next}`);
  }

  lines.push('');
  lines.push(
    ...table(
      [
        ['previous stable', view.previousStable ?? paint('grey', 'none')],
        ['rollback candidates', view.candidates.length === 0 ? paint('grey', 'none') : view.candidates.join(', ')],
      ],
      '',
    ),
  );
  return `${lines.join('\n')}\n`;
}

/** `8m12s`, `1h05m`, `45s`, `2d03h`: the two most significant units. */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms)) return '?';
  const s = Math.max(0, Math.floor(ms / 1000));
  const two = (n: number) => String(n).padStart(2, '0');
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${two(s % 60)}s`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h${two(Math.floor((s % 3600) / 60))}m`;
  return `${Math.floor(s / 86_400)}d${two(Math.floor((s % 86_400) / 3600))}h`;
}

/** ISO timestamps without the `T` and the milliseconds: `2024-05-01 12:00:00Z`. */
function formatTime(iso: string): string {
  const ms = Date.parse(iso);
  if (Number.isNaN(ms)) return iso;
  return new Date(ms).toISOString().replace('T', ' ').replace(/\.\d{3}Z$/, 'Z');
}

function painter(color: boolean): (tint: Tint, text: string) => string {
  return color ? (tint, text) => `\u001b[${ANSI[tint]}m${text}\u001b[0m` : (_tint, text) => text;
}

// eslint-disable-next-line no-control-regex
const ANSI_CODE = /\u001b\[[0-9;]*m/g;

function visibleWidth(text: string): number {
  return [...text.replace(ANSI_CODE, '')].length;
}

/**
 * Pads every column but the last to its widest cell (colour codes do not count), so the columns
 * line up; the last column is not padded, so no line ends in spaces.
 */
function table(rows: string[][], indent = '  ', gap = '  '): string[] {
  const widths: number[] = [];
  for (const row of rows) row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, visibleWidth(cell))));
  return rows.map(
    (row) =>
      indent +
      row
        .map((cell, i) => (i === row.length - 1 ? cell : cell + ' '.repeat((widths[i] ?? 0) - visibleWidth(cell))))
        .join(gap)
        .trimEnd(),
  );
}
