/**
 * Alertmanager as an input: which alerts of a webhook message match triggers.alertmanager, and
 * which of them are news. Alertmanager repeats a firing alert on every group_interval and
 * repeat_interval; the state machine hears each firing alert once, and its resolution once.
 */
import type { AlertmanagerAlert } from '../api/alertmanager-payload.js';
import type { Event } from '../core/types.js';

export interface AlertMatcher {
  match: Record<string, string>;
  match_re: Record<string, string>;
}

/** Firing alerts remembered at most; beyond, the oldest is forgotten (and may be heard again). */
const MAX_ACTIVE = 1000;

export class AlertIntake {
  private readonly patterns: [string, RegExp][];
  /** Firing matching alerts by identity, in arrival order. */
  private readonly active = new Map<string, string>();

  constructor(private readonly matcher: AlertMatcher) {
    // Anchored, as Alertmanager's own matchers are.
    this.patterns = Object.entries(matcher.match_re).map(([label, re]) => [label, new RegExp(`^(?:${re})$`)]);
  }

  matches(alert: AlertmanagerAlert): boolean {
    return (
      Object.entries(this.matcher.match).every(([label, value]) => alert.labels[label] === value) &&
      this.patterns.every(([label, re]) => re.test(alert.labels[label] ?? ''))
    );
  }

  /** The events one message brings: a firing alert not heard yet, a resolution of one that was. */
  receive(alerts: readonly AlertmanagerAlert[], at: number): { events: Event[]; matched: number } {
    const events: Event[] = [];
    let matched = 0;
    for (const alert of alerts) {
      if (!this.matches(alert)) continue;
      matched++;
      const id = identity(alert);
      const name = alert.labels.alertname ?? 'unnamed';
      const description = describe(alert);
      if (alert.status === 'firing') {
        if (this.active.has(id)) continue;
        this.active.set(id, description);
        if (this.active.size > MAX_ACTIVE) this.active.delete(this.active.keys().next().value!);
        events.push({ type: 'alertFiring', name, description, startsAt: Date.parse(alert.startsAt), at });
      } else if (this.active.delete(id)) {
        events.push({ type: 'alertResolved', name, description, at });
      }
    }
    return { events, matched };
  }
}

/** Alertmanager's fingerprint, or the label set (with startsAt: a new firing of the same alert is news). */
function identity(alert: AlertmanagerAlert): string {
  return `${alert.fingerprint ?? JSON.stringify(Object.entries(alert.labels).sort())}@${alert.startsAt}`;
}

/** `HighErrorRate{service="web",severity="critical"}`: its name and labels, as PromQL writes them. */
function describe(alert: AlertmanagerAlert): string {
  const { alertname, ...rest } = alert.labels;
  const labels = Object.entries(rest)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, v]) => `${k}=${JSON.stringify(v)}`)
    .join(',');
  return `${alertname ?? 'unnamed'}{${labels}}`.slice(0, 300);
}
