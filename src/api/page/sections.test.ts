import { describe, expect, it } from 'vitest';
import type { StatusView } from '../types.js';
import { renderSections, type PageData } from './sections.js';
import { recordHtml } from './markdown-html.js';

const status: StatusView = {
  service: 'web',
  phase: 'guarding',
  paused: false,
  since: '2026-01-01T12:00:00.000Z',
  stable: 'v1',
  running: 'v2',
  release: { version: 'v2', previous: 'v1', startedAt: '2026-01-01T12:00:00.000Z', deployedBy: 'ci', source: 'manual', windowEndsAt: '2026-01-01T12:10:00.000Z' },
  rollback: null,
  wouldRollBack: null,
  pendingRollback: null,
  failure: null,
  rules: [{ rule: 'health', outcome: 'fail', observed: 3, threshold: 3, unit: 'failures', message: 'health: 3 consecutive failures >= 3' }],
  lastRollback: null,
  now: '2026-01-01T12:07:30.400Z',
};

const data = (patch: Partial<StatusView> = {}): PageData => ({
  status: { ...status, ...patch },
  history: { service: 'web', deployments: [], candidates: [], previousStable: 'v1', rollbacks: [] },
  timeline: { series: [], events: [], from: 0, to: 1000, title: 'web' },
  records: [],
  lastDrill: null,
  lastPreflight: null,
});

const section = (d: PageData, id: string) => renderSections(d).find((s) => s.id === id)!.html;
const banners = (d: PageData) => [...section(d, 'state').matchAll(/data-banner="(\w+)"/g)].map((m) => m[1]);

describe('the page sections', () => {
  it('shows the release under guard, its previous version and the time its window has left', () => {
    const html = section(data(), 'state');
    expect(html).toContain('data-phase="guarding"');
    expect(html).toContain('<span class="version" data-field="release">v2</span> (previous <span class="version">v1</span>)');
    expect(html).toContain('<strong data-field="window-left">2.5m left</strong>');
  });

  it.each([
    ['nothing unusual', {}, []],
    ['paused', { paused: true }, ['paused']],
    ['frozen after a failed rollback', { phase: 'failed' as const, failure: 'verification timed out' }, ['frozen']],
    ['a rollback waiting out the veto window', { pendingRollback: { to: 'v1', reason: 'health', at: '2026-01-01T12:08:00.000Z' } }, ['pending']],
    ['the store down on a standby', { store: { type: 'redis' as const, up: false, error: 'ECONNREFUSED' }, lease: { leader: false, holder: 'host-b', token: 3, hostId: 'host-a' } }, ['store', 'standby']],
  ])('banners: %s', (_name, patch, expected) => {
    expect(banners(data(patch))).toEqual(expected);
  });

  it('shows every rule with observed against threshold', () => {
    expect(section(data(), 'rules')).toContain('<tr data-rule="health" class="outcome-fail"><td>health</td><td class="outcome">fail</td><td>3</td><td>3 failures</td><td>health: 3 consecutive failures &gt;= 3</td></tr>');
  });

  it('escapes what comes from the app everywhere', () => {
    const hostile = '<img src=x onerror=alert(1)>';
    const d = data({ running: hostile, failure: hostile, phase: 'failed' });
    d.history.deployments.push({ version: hostile, at: '2026-01-01T12:00:00.000Z', status: 'rolled_back', deployedBy: 'ci', note: hostile });
    d.records.push({ id: 'r1', from: hostile, to: 'v1', outcome: 'rolled_back', finishedAt: '2026-01-01T12:01:00.000Z', reason: hostile, html: null });
    const html = renderSections(d).map((s) => s.html).join('\n');
    expect(html).not.toContain('<img src=x');
    // running (text and attribute), the failure, the release's version and note, the record's from and reason.
    expect(html.split('&lt;img src=x onerror=alert(1)&gt;').length - 1).toBe(7);
  });
});

describe('a record as HTML', () => {
  it('escapes raw HTML, refuses javascript: links, renders the tables and points its timeline at the page route', () => {
    const html = recordHtml(
      ['# Rollback', '', '<script>alert(1)</script>', '', '[x](javascript:alert(1))', '', '| a | b |', '| --- | --- |', '| 1 | 2 |', '', '![timeline](r1.svg)', '', '![elsewhere](https://example.com/x.png)'].join('\n'),
      { name: 'r1.svg', url: 'page/record.svg?id=r1' },
    );
    expect(html).toContain('&lt;script&gt;alert(1)&lt;/script&gt;');
    expect(html).not.toContain('href="javascript:');
    expect(html).toContain('<table>');
    expect(html).toContain('<img class="timeline" src="page/record.svg?id=r1" alt="timeline" width="900" loading="lazy">');
    expect(html).toContain('<span class="image-alt">[elsewhere]</span>');
    expect(html).not.toContain('example.com');
  });
});
