/**
 * The PagerDuty notifier against a local server that checks each event against the Events API v2
 * schema (https://developer.pagerduty.com/api-reference/368ae3d938c9e-send-an-event-to-pager-duty):
 * which kinds trigger and resolve, one dedup key per release, the routing key from a file or the
 * environment and never in an error.
 */
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startJsonReceiver, type JsonReceiver, type ReceivedRequest, type Reply } from '../../test/helpers/json-receiver.js';
import { NotificationDispatcher, routesFromConfig, type LogFn } from './dispatcher.js';
import { createPagerDutyNotifier } from './pagerduty.js';
import { notifiersSchema, type PagerDutyNotifierConfig } from './schema.js';
import type { NotificationEvent } from './types.js';
import { NotifyError } from './webhook.js';

const ROUTING_KEY = 'R0UT1NGkeySECRET0123456789abcdef'; // 32 characters, as PagerDuty's are

/** The Events API v2 rules, as documented: the problems of one event body, none when valid. */
function eventProblems(body: unknown): string[] {
  const problems: string[] = [];
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return ['body is not an object'];
  const event = body as Record<string, unknown>;
  const allowed = ['routing_key', 'event_action', 'dedup_key', 'payload', 'images', 'links', 'client', 'client_url'];
  for (const key of Object.keys(event)) if (!allowed.includes(key)) problems.push(`unknown field ${key}`);
  if (typeof event.routing_key !== 'string' || event.routing_key.length !== 32) problems.push('routing_key must be a 32-character string');
  if (!['trigger', 'acknowledge', 'resolve'].includes(event.event_action as string)) problems.push('event_action must be trigger, acknowledge or resolve');
  if (event.dedup_key !== undefined && (typeof event.dedup_key !== 'string' || event.dedup_key.length === 0 || event.dedup_key.length > 255)) problems.push('dedup_key must be 1-255 characters');
  if (event.event_action !== 'trigger' && event.dedup_key === undefined) problems.push('dedup_key is required to acknowledge or resolve');
  if (event.client !== undefined && typeof event.client !== 'string') problems.push('client must be a string');
  if (event.event_action === 'trigger') {
    const payload = event.payload as Record<string, unknown> | undefined;
    if (typeof payload !== 'object' || payload === null) return [...problems, 'payload is required to trigger'];
    const fields = ['summary', 'source', 'severity', 'timestamp', 'component', 'group', 'class', 'custom_details'];
    for (const key of Object.keys(payload)) if (!fields.includes(key)) problems.push(`unknown payload field ${key}`);
    if (typeof payload.summary !== 'string' || payload.summary.length === 0 || payload.summary.length > 1024) problems.push('payload.summary must be 1-1024 characters');
    if (typeof payload.source !== 'string' || payload.source.length === 0) problems.push('payload.source is required');
    if (!['critical', 'error', 'warning', 'info'].includes(payload.severity as string)) problems.push('payload.severity must be critical, error, warning or info');
    if (payload.timestamp !== undefined && (typeof payload.timestamp !== 'string' || !/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/.test(payload.timestamp))) problems.push('payload.timestamp must be ISO 8601');
    for (const key of ['component', 'group', 'class']) if (payload[key] !== undefined && typeof payload[key] !== 'string') problems.push(`payload.${key} must be a string`);
    if (payload.custom_details !== undefined && (typeof payload.custom_details !== 'object' || payload.custom_details === null)) problems.push('payload.custom_details must be an object');
  }
  return problems;
}

/** Answers as PagerDuty does: 202 for a valid event, 400 with the problems otherwise. */
let override: Reply[] = [];
function pagerDuty(request: ReceivedRequest): Reply {
  const forced = override.shift();
  if (forced) return forced;
  if (request.method !== 'POST' || request.url !== '/v2/enqueue') return { status: 404, body: { message: 'not found' } };
  if (!String(request.headers['content-type']).startsWith('application/json')) return { status: 400, body: { status: 'invalid event', message: 'not JSON' } };
  const problems = eventProblems(request.body);
  if (problems.length > 0) return { status: 400, body: { status: 'invalid event', message: 'Event object is invalid', errors: problems } };
  return { status: 202, body: { status: 'success', message: 'Event processed', dedup_key: (request.body as { dedup_key?: string }).dedup_key } };
}

let pd: JsonReceiver;
let dir: string;
beforeAll(async () => {
  pd = await startJsonReceiver(pagerDuty);
  dir = await mkdtemp(path.join(os.tmpdir(), 'rg-pagerduty-test-'));
});
afterAll(async () => {
  await pd.close();
  await rm(dir, { recursive: true, force: true });
});
beforeEach(() => {
  pd.received.length = 0;
  override = [];
});

const config = (extra: Record<string, unknown>) =>
  notifiersSchema.parse([{ type: 'pagerduty', name: 'pd', url: `${pd.base}/v2/enqueue`, ...extra }])[0] as PagerDutyNotifierConfig;
const at = Date.UTC(2026, 0, 24, 10, 0, 0);
const event = (kind: string, severity: NotificationEvent['severity'], message: string, version = 'v2'): NotificationEvent => ({
  kind, severity, message, service: 'web', at, release: { version, previous: 'v1' },
});

describe('pagerduty notifier', () => {
  it('triggers on a breach automation could not act on and on a failed rollback, resolves after a verified one, one dedup key per release', async () => {
    process.env.RG_TEST_PD_KEY = ROUTING_KEY;
    try {
      const lines: string[] = [];
      const log: LogFn = (level, message, fields) => lines.push(`${level} ${message} ${JSON.stringify(fields)}`);
      const routes = routesFromConfig(notifiersSchema.parse([{ type: 'pagerduty', name: 'pd', routing_key_env: 'RG_TEST_PD_KEY', url: `${pd.base}/v2/enqueue` }]));
      const dispatcher = new NotificationDispatcher(routes, { log, clock: { sleep: async () => {} } });
      dispatcher.publish(event('release_detected', 'info', 'release v2 (previous v1) guarded by ci'));
      dispatcher.publish(event('rule_breached', 'warning', 'error_rate 12 % > 5 %'));
      dispatcher.publish(event('would_roll_back', 'critical', `would roll back v2, but automation is paused: error_rate 12 % > 5 % ${'x'.repeat(3000)}`));
      dispatcher.publish(event('rollback_started', 'critical', 'rolling back v2 -> v1'));
      dispatcher.publish(event('rollback_finished', 'warning', 'rolled back v2 -> v1, verified 3/3'));
      dispatcher.publish(event('rollback_failed', 'critical', 'rollback v3 -> v1 failed: pm2 reload timed out; automation frozen until resume', 'v3'));
      dispatcher.publish(event('promoted', 'info', 'release v4 promoted', 'v4'));
      await dispatcher.close(5000);

      // What the assertions below read of each event (eventProblems checks the whole shape).
      type SentEvent = { event_action: string; dedup_key: string; payload: { severity: string; summary: string; custom_details: Record<string, unknown> } };
      const bodies = pd.received.map((r) => r.body as SentEvent);
      expect(bodies.map(eventProblems)).toEqual([[], [], []]);
      expect(pd.received.map((r) => r.headers['content-type'])).toEqual(Array(3).fill('application/json; charset=utf-8'));
      expect(bodies.map((b) => `${b.event_action} ${b.payload?.severity ?? '-'} ${b.dedup_key}`)).toEqual([
        'trigger error release-guard/web/v2',
        'resolve - release-guard/web/v2',
        'trigger critical release-guard/web/v3',
      ]);
      expect(bodies[0]?.payload).toMatchObject({ source: os.hostname(), component: 'web', group: 'release-guard', class: 'would_roll_back', timestamp: '2026-01-24T10:00:00.000Z' });
      expect(bodies[0]?.payload.summary).toHaveLength(1024);
      expect(bodies[0]?.payload.summary).toMatch(/^web: would roll back v2, but automation is paused/);
      expect(bodies[2]?.payload.custom_details).toMatchObject({ kind: 'rollback_failed', version: 'v3', previous: 'v1' });
      expect(lines.filter((l) => !l.startsWith('debug'))).toEqual([]);
      expect(lines.join('\n')).not.toContain(ROUTING_KEY);
    } finally {
      delete process.env.RG_TEST_PD_KEY;
    }
  });

  it('reads the routing key from a file or the environment and refuses unsafe or missing ones without showing them', async () => {
    const file = path.join(dir, 'routing-key');
    await writeFile(file, `${ROUTING_KEY}\n`, { mode: 0o600 });
    await createPagerDutyNotifier(config({ routing_key_file: file })).send(event('rollback_failed', 'critical', 'failed'), new AbortController().signal);
    expect((pd.received[0]?.body as { routing_key: string }).routing_key).toBe(ROUTING_KEY);

    await chmod(file, 0o644);
    expect(() => createPagerDutyNotifier(config({ routing_key_file: file }))).toThrow(`notifier "pd": routing_key_file ${file} is readable by its group or by everyone; run: chmod go-r ${file}`);
    expect(() => createPagerDutyNotifier(config({ routing_key_env: 'RG_TEST_NOT_SET' }), {})).toThrow('notifier "pd": environment variable RG_TEST_NOT_SET (routing_key_env) is not set');

    const problems = (input: unknown) => notifiersSchema.safeParse(input).error?.issues.map((i) => `${i.path.join('.')}: ${i.message}`) ?? [];
    expect(problems([{ type: 'pagerduty', name: 'pd' }])).toEqual(['0.routing_key_file: set exactly one of routing_key_file or routing_key_env']);
    expect(problems([{ type: 'pagerduty', name: 'pd', routing_key_env: 'K', routing_key: 'inline' }]).join()).toMatch(/routing_key/);
    expect(() => routesFromConfig(notifiersSchema.parse([{ type: 'pagerduty', name: 'pd', routing_key_env: 'K', events: ['promoted'] }]), { K: ROUTING_KEY })).toThrow(
      'notifier "pd": a pagerduty notifier sends none of the events listed; it sends rollback_failed, would_roll_back, rollback_finished',
    );
    expect(notifiersSchema.parse([{ type: 'pagerduty', name: 'pd', routing_key_env: 'K' }])[0]).toMatchObject({ url: 'https://events.pagerduty.com/v2/enqueue' });
  });

  it('never shows the routing key in errors, and says whether a retry can help', async () => {
    const notifier = createPagerDutyNotifier(config({ routing_key_env: 'K', timeout: '300ms' }), { K: ROUTING_KEY });
    const attempt = async () => (await notifier.send(event('rollback_failed', 'critical', 'failed'), new AbortController().signal).then(() => undefined, (e: unknown) => e)) as NotifyError;
    // A careless receiver echoes what it got.
    override = [{ status: 400, body: { status: 'invalid event', message: `bad routing_key ${ROUTING_KEY}` } }];
    const refused = await attempt();
    expect(refused).toBeInstanceOf(NotifyError);
    expect(refused).toMatchObject({ retryable: false, message: 'pagerduty "pd": PagerDuty answered 400: {"status":"invalid event","message":"bad routing_key ***"}' });
    override = [{ status: 429, body: { status: 'throttle event', message: ROUTING_KEY } }];
    expect(await attempt()).toMatchObject({ retryable: true });
    override = [{ status: 503, body: 'unavailable' }];
    expect(await attempt()).toMatchObject({ retryable: true });
    for (const error of [refused]) expect(`${error.message} ${JSON.stringify(error)} ${String(error.cause)}`).not.toContain(ROUTING_KEY);
  });
});
