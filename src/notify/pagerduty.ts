/**
 * PagerDuty Events API v2 (https://developer.pagerduty.com/docs/events-api-v2/trigger-events/):
 * the guard pages only when a human must act, and closes the page itself when it no longer must.
 *
 * - `rollback_failed` (a rollback or its verification failed; automation is frozen) triggers a
 *   `critical` alert;
 * - `would_roll_back` (a breach automation did not act on: paused, vetoed, rate limit, automatic
 *   rollback disabled) triggers an `error` alert;
 * - `rollback_finished` (a rollback finished and was verified) resolves it.
 * Every other kind is not sent (see `PAGERDUTY_KINDS`). The dedup key is the release's — service and
 * version — so the alerts of one release are one incident and a verified rollback resolves it.
 *
 * The routing key is a secret (whoever holds it opens incidents): from a file or the environment,
 * never in an error message or a log line.
 */
import { createHash } from 'node:crypto';
import os from 'node:os';
import { exchange, notifyFailure, rejected } from './exchange.js';
import type { PagerDutyNotifierConfig } from './schema.js';
import { readNotifierSecret, secretFragments } from './secret-source.js';
import type { NotificationEvent, Notifier } from './types.js';

type PagerDutySeverity = 'critical' | 'error' | 'warning' | 'info';

/** The kinds sent, and what each does to the release's alert. */
export const PAGERDUTY_ACTIONS: Record<string, { action: 'trigger'; severity: PagerDutySeverity } | { action: 'resolve' }> = {
  rollback_failed: { action: 'trigger', severity: 'critical' },
  would_roll_back: { action: 'trigger', severity: 'error' },
  rollback_finished: { action: 'resolve' },
};
export const PAGERDUTY_KINDS = Object.keys(PAGERDUTY_ACTIONS);

/** Documented limits: summary 1024 characters, dedup_key 255. */
const SUMMARY_MAX = 1024;
const DEDUP_KEY_MAX = 255;

function cut(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

/** One key per release: `release-guard/<service>/<version>` (hashed in the rare case it is too long). */
export function dedupKey(event: NotificationEvent): string {
  const key = `release-guard/${event.service}/${event.release?.version ?? 'no-release'}`;
  if (key.length <= DEDUP_KEY_MAX) return key;
  return `release-guard/${createHash('sha256').update(key).digest('hex')}`;
}

/** The Events API v2 body for `event`, or null when this kind is not sent. */
export function pagerDutyPayload(event: NotificationEvent, routingKey: string, source = os.hostname()): Record<string, unknown> | null {
  const plan = PAGERDUTY_ACTIONS[event.kind];
  if (!plan) return null;
  const dedup_key = dedupKey(event);
  if (plan.action === 'resolve') return { routing_key: routingKey, event_action: 'resolve', dedup_key };
  return {
    routing_key: routingKey,
    event_action: 'trigger',
    dedup_key,
    client: 'release-guard',
    payload: {
      summary: cut(`${event.service}: ${event.message}`, SUMMARY_MAX),
      source,
      severity: plan.severity,
      timestamp: new Date(event.at).toISOString(),
      component: event.service,
      group: 'release-guard',
      class: event.kind,
      custom_details: {
        kind: event.kind,
        message: event.message,
        version: event.release?.version ?? null,
        previous: event.release?.previous ?? null,
      },
    },
  };
}

/**
 * Creates a PagerDuty notifier (reads the routing key now; throws a GuardError when it cannot).
 * 202 is accepted; 429 and 5xx are retried by the dispatcher, 400 (an invalid event or key) is not.
 */
export function createPagerDutyNotifier(config: PagerDutyNotifierConfig, env: NodeJS.ProcessEnv = process.env): Notifier {
  const owner = `pagerduty "${config.name}"`;
  const routingKey = readNotifierSecret(`notifier "${config.name}"`, 'routing_key', { file: config.routing_key_file, env: config.routing_key_env }, env);
  const fail = notifyFailure(owner, secretFragments(routingKey));
  return {
    name: config.name,
    kinds: PAGERDUTY_KINDS,
    async send(event, signal) {
      const body = pagerDutyPayload(event, routingKey);
      if (body === null) return;
      const answer = await exchange({ method: 'POST', url: config.url, body, timeoutMs: config.timeout, signal }, fail);
      if (answer.status >= 200 && answer.status < 300) return;
      throw rejected(answer, fail, 'PagerDuty');
    },
  };
}
