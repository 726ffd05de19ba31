import { describe, expect, it } from 'vitest';
import type { AlertmanagerAlert } from '../api/alertmanager-payload.js';
import { AlertIntake } from './alert-intake.js';

const alert = (over: Partial<AlertmanagerAlert> & { labels?: Record<string, string> } = {}): AlertmanagerAlert => ({
  status: 'firing',
  labels: { alertname: 'HighErrorRate', service: 'web', severity: 'critical' },
  startsAt: '2026-12-07T10:00:00Z',
  fingerprint: 'f1',
  ...over,
});

describe('AlertIntake', () => {
  it('matches exact labels and anchored regular expressions', () => {
    const intake = new AlertIntake({ match: { service: 'web' }, match_re: { severity: 'crit.*|page' } });
    expect(intake.matches(alert())).toBe(true);
    expect(intake.matches(alert({ labels: { alertname: 'X', service: 'web', severity: 'warning' } }))).toBe(false);
    expect(intake.matches(alert({ labels: { alertname: 'X', service: 'web', severity: 'xpage' } }))).toBe(false); // anchored
    expect(intake.matches(alert({ labels: { alertname: 'X', service: 'api', severity: 'page' } }))).toBe(false);
    expect(intake.matches(alert({ labels: { alertname: 'X', service: 'web' } }))).toBe(false); // a missing label is ""
  });

  it('hears a firing alert once however often Alertmanager repeats it, and its resolution once', () => {
    const intake = new AlertIntake({ match: { service: 'web' }, match_re: {} });
    const first = intake.receive([alert(), alert({ fingerprint: 'other', labels: { alertname: 'Y', service: 'api' } })], 100);
    expect(first.matched).toBe(1);
    expect(first.events).toEqual([
      { type: 'alertFiring', name: 'HighErrorRate', description: 'HighErrorRate{service="web",severity="critical"}', startsAt: Date.parse('2026-12-07T10:00:00Z'), at: 100 },
    ]);
    expect(intake.receive([alert()], 200).events).toEqual([]);
    expect(intake.receive([alert({ status: 'resolved' })], 300).events).toEqual([
      { type: 'alertResolved', name: 'HighErrorRate', description: 'HighErrorRate{service="web",severity="critical"}', at: 300 },
    ]);
    expect(intake.receive([alert({ status: 'resolved' })], 400).events).toEqual([]);
    // It fires again later: a new firing, heard again.
    expect(intake.receive([alert({ startsAt: '2026-12-07T11:00:00Z' })], 500).events).toHaveLength(1);
  });
});
