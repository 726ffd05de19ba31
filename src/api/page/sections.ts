/**
 * The page's live sections as HTML, rendered on the server: the state, the rules' verdicts, the
 * window's chart and the history. The same strings make the first page (readable with JavaScript
 * off) and the updates the page's script swaps in. Pure: data in, HTML out. Every text that comes
 * from the app or the guard (versions, reasons, messages, log lines) goes through `escapeXml`.
 */
import { formatDuration } from '../../config/duration.js';
import type { RuleVerdict } from '../../core/types.js';
import { formatValue, escapeXml as esc, renderTimelineSvg, type TimelineInput } from '../../records/timeline-svg.js';
import type { DrillRecord } from '../../shell/drill.js';
import type { HistoryView, PreflightView, StatusView } from '../types.js';

/** A rollback record on the page: its summary, and its Markdown as HTML for the newest few. */
export interface PageRecord {
  id: string;
  from: string;
  to: string;
  outcome: string;
  finishedAt: string;
  reason: string;
  html: string | null;
}

export interface PageData {
  status: StatusView;
  history: HistoryView;
  timeline: TimelineInput;
  records: PageRecord[];
  lastDrill: DrillRecord | null;
  lastPreflight: PreflightView | null;
}

export interface Section {
  id: string;
  html: string;
}

const PHASE_TEXT: Record<StatusView['phase'], string> = {
  stable: 'stable',
  guarding: 'guarding',
  rolling_back: 'rolling back',
  verifying: 'verifying',
  rolled_back: 'rolled back',
  promoted: 'promoted',
  failed: 'failed',
};

const time = (iso: string | null | undefined) => (iso ? `<time datetime="${esc(iso)}">${esc(iso.replace('T', ' ').replace(/\.\d+Z$/, 'Z'))}</time>` : '—');
const text = (value: string | number | null | undefined) => (value === null || value === undefined || value === '' ? '—' : esc(String(value)));
const row = (label: string, value: string) => `<tr><th scope="row">${label}</th><td>${value}</td></tr>`;

/** The banners that change what the guard does: paused, frozen after a failed rollback, a pending rollback, standby. */
function banners(s: StatusView): string[] {
  const out: string[] = [];
  if (s.paused) out.push(`<p class="banner paused" data-banner="paused">Paused: automation does not act (rules are still evaluated); resume to let it act again.</p>`);
  if (s.phase === 'failed') out.push(`<p class="banner frozen" data-banner="frozen">Frozen: a rollback failed (${text(s.failure)}); automation does nothing until resume.</p>`);
  if (s.pendingRollback) out.push(`<p class="banner pending" data-banner="pending">Rollback to ${text(s.pendingRollback.to)} decided (${text(s.pendingRollback.reason)}); it starts at ${time(s.pendingRollback.at)} unless vetoed.</p>`);
  if (s.wouldRollBack) out.push(`<p class="banner would" data-banner="would">Would roll back, but automation cannot act: ${text(s.wouldRollBack)}</p>`);
  if (s.store && !s.store.up) out.push(`<p class="banner frozen" data-banner="store">The state store (${text(s.store.type)}) does not answer: the guard observes and does not act (${text(s.store.error)}).</p>`);
  if (s.lease && !s.lease.leader) out.push(`<p class="banner would" data-banner="standby">Standby: ${text(s.lease.holder ?? 'no guard')} holds the lease and acts.</p>`);
  return out;
}

function stateSection(s: StatusView): string {
  const now = Date.parse(s.now);
  const release = s.release;
  const left = release?.windowEndsAt ? Math.max(0, Date.parse(release.windowEndsAt) - now) : null;
  const rows = [
    row('running', `<span class="version">${text(s.running)}</span>`),
    row('stable', `<span class="version">${text(s.stable)}</span>`),
    row(
      'release under guard',
      release
        ? `<span class="version" data-field="release">${text(release.version)}</span> (previous <span class="version">${text(release.previous)}</span>), ${text(release.source)} at ${time(release.startedAt)} by ${text(release.deployedBy)}`
        : 'none',
    ),
  ];
  if (left !== null) rows.push(row('window', `ends ${time(release!.windowEndsAt)}, <strong data-field="window-left">${esc(formatDuration(Math.ceil(left / 1000) * 1000))} left</strong>`));
  if (s.rollback) {
    rows.push(row('rollback', `<span class="version">${text(s.rollback.from)}</span> → <span class="version">${text(s.rollback.to)}</span> (${text(s.rollback.trigger)}, attempt ${s.rollback.attempt}) since ${time(s.rollback.startedAt)}: ${text(s.rollback.reason)}`));
  }
  if (s.lastRollback) rows.push(row('last rollback', `${text(s.lastRollback.from)} → ${text(s.lastRollback.to)}, ${text(s.lastRollback.outcome)} at ${time(s.lastRollback.finishedAt)}`));
  if (s.fleet) rows.push(row('fleet', `host ${text(s.fleet.hostId)}${s.fleet.waitingFor.length ? `, waiting for ${text(s.fleet.waitingFor.join(', '))}` : ''}`));
  const attrs = `data-phase="${esc(s.phase)}" data-paused="${s.paused}" data-pending="${s.pendingRollback !== null}" data-running="${esc(s.running ?? '')}"`;
  return [
    `<section id="state" ${attrs}>`,
    `<h2><span class="service">${text(s.service)}</span> <span class="phase phase-${esc(s.phase)}" id="phase">${PHASE_TEXT[s.phase] ?? esc(s.phase)}</span> <small>since ${time(s.since)}</small></h2>`,
    ...banners(s),
    `<table class="facts">${rows.join('')}</table>`,
    `</section>`,
  ].join('\n');
}

const observed = (v: RuleVerdict) => (v.observed === null ? '—' : esc(v.unit === 'ratio' ? formatValue(v.observed, 'ratio') : v.unit === 'failures' ? String(v.observed) : formatValue(v.observed, v.unit)));
const threshold = (v: RuleVerdict) => esc(v.unit === 'ratio' ? formatValue(v.threshold, 'ratio') : v.unit === 'failures' ? `${v.threshold} failures` : formatValue(v.threshold, v.unit));

/** The sequential test's evidence, as the verdict reports it (as in the record's table). */
function evidence(v: RuleVerdict): string {
  const e = v.evidence;
  if (!e) return '';
  const ex = e.excursion;
  const share = Math.min(1, e.needed > 0 ? e.statistic / e.needed : 0);
  return [
    `<div class="evidence">`,
    `<meter min="0" max="1" value="${share.toFixed(3)}" title="statistic / needed"></meter> statistic <strong>${e.statistic}</strong> of ${e.needed} needed`,
    ` · evidence ${ex ? `since ${time(new Date(ex.from).toISOString())}: ${ex.k} bad / ${ex.n} trials` : 'none under way'}`,
    ` · window ${e.k} bad / ${e.n} trials · tolerance ${esc(formatValue(e.tolerance, 'ratio'))} · budget ${e.budget} per window · min span ${esc(formatDuration(e.minSpanMs))}`,
    `</div>`,
  ].join('');
}

function rulesSection(rules: readonly RuleVerdict[]): string {
  const body = rules.length === 0
    ? '<p class="muted">No verdict yet (rules are evaluated once probes report).</p>'
    : [
        '<table class="rules"><thead><tr><th>rule</th><th>verdict</th><th>observed</th><th>threshold</th><th>detail</th></tr></thead><tbody>',
        ...rules.map(
          (v) =>
            `<tr data-rule="${esc(v.rule)}" class="outcome-${esc(v.outcome)}"><td>${esc(v.rule)}</td><td class="outcome">${esc(v.outcome)}</td><td>${observed(v)}</td><td>${threshold(v)}</td><td>${esc(v.message)}${evidence(v)}</td></tr>`,
        ),
        '</tbody></table>',
      ].join('\n');
  return `<section id="rules"><h2>Rules</h2>\n${body}\n</section>`;
}

function chartSection(timeline: TimelineInput): string {
  return `<section id="chart"><h2>Window</h2>\n<div class="chart">${renderTimelineSvg(timeline)}</div>\n</section>`;
}

function drillBlock(drill: DrillRecord | null): string {
  if (!drill) return '<p class="muted">No drill recorded (<code>release-guard drill</code>).</p>';
  const legs = drill.legs.map((l) => `<li>${text(l.from)} → ${text(l.to)}: ${l.ok ? 'ok' : `FAILED (${text(l.error)})`}, plan ${esc(formatDuration(l.planMs))}, verified after ${esc(formatDuration(l.verifyMs))}</li>`);
  return `<p><strong>${drill.ok ? 'passed' : 'FAILED'}</strong> at ${time(new Date(drill.finishedAt).toISOString())} by ${text(drill.by)}</p><ul>${legs.join('')}</ul>`;
}

function preflightBlock(view: PreflightView | null): string {
  if (!view) return '<p class="muted">No preflight since the guard started (one runs as each window opens; <code>release-guard preflight</code>, or the button with the token).</p>';
  const problems = [...view.problems, ...view.steps.flatMap((s) => s.problems.map((p) => `step ${s.index + 1} (${s.type}): ${p}`))];
  return [
    `<p><strong data-field="preflight">${view.ready ? 'ready' : 'NOT ready'}</strong> to roll back ${text(view.from)} → ${text(view.to)}, checked ${time(view.checkedAt)}</p>`,
    problems.length ? `<ul class="problems">${problems.map((p) => `<li>${esc(p)}</li>`).join('')}</ul>` : '',
  ].join('');
}

function historySection(data: PageData): string {
  const deployments = [...data.history.deployments].reverse();
  const out = ['<section id="history"><h2>History</h2>', '<h3>Releases</h3>'];
  if (deployments.length === 0) out.push('<p class="muted">No release yet.</p>');
  else {
    out.push('<table class="deployments"><thead><tr><th>version</th><th>at</th><th>outcome</th><th>by</th><th>note</th></tr></thead><tbody>');
    for (const d of deployments) out.push(`<tr class="status-${esc(d.status)}"><td class="version">${text(d.version)}</td><td>${time(d.at)}</td><td>${esc(d.status)}</td><td>${text(d.deployedBy)}</td><td>${text(d.note)}</td></tr>`);
    out.push('</tbody></table>');
  }
  out.push('<h3>Rollback records</h3>');
  if (data.records.length === 0) out.push('<p class="muted">No rollback recorded.</p>');
  data.records.forEach((r, i) => {
    const summary = `${time(r.finishedAt)} <span class="version">${text(r.from)}</span> → <span class="version">${text(r.to)}</span> <strong>${text(r.outcome)}</strong>: ${text(r.reason)}`;
    const body = r.html ?? '<p class="muted">The full record is on the guard host (<code>release-guard history</code>).</p>';
    out.push(`<details class="record" id="record-${esc(r.id)}"${i === 0 ? ' open' : ''}><summary>${summary}</summary><div class="markdown">${body}</div></details>`);
  });
  out.push('<h3>Last drill</h3>', drillBlock(data.lastDrill), '<h3>Last preflight</h3>', preflightBlock(data.lastPreflight), '</section>');
  return out.join('\n');
}

/** Every live section, in page order. */
export function renderSections(data: PageData): Section[] {
  return [
    { id: 'state', html: stateSection(data.status) },
    { id: 'rules', html: rulesSection(data.status.rules) },
    { id: 'chart', html: chartSection(data.timeline) },
    { id: 'history', html: historySection(data) },
  ];
}
