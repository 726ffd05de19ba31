/**
 * The GitHub Deployments notifier against a local stand-in for the REST API
 * (https://docs.github.com/en/rest/deployments/deployments, …/statuses) that checks headers, the
 * token, request bodies (required fields, types, enum values, the 140-character description) and
 * keeps deployments and statuses with auto_inactive as GitHub documents it: a `success` status
 * marks the environment's other deployments whose latest status is `success` as `inactive`.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startJsonReceiver, type JsonReceiver, type ReceivedRequest, type Reply } from '../../test/helpers/json-receiver.js';
import { NotificationDispatcher, routesFromConfig, type LogFn } from './dispatcher.js';
import { createGitHubDeploymentsNotifier } from './github-deployments.js';
import { notifiersSchema, type GitHubDeploymentsNotifierConfig } from './schema.js';
import type { NotificationEvent } from './types.js';
import { NotifyError } from './webhook.js';

const TOKEN = 'ghp_SECRETtoken0123456789abcdefghijklmn';
const REFS = new Set(['v1', 'v2', 'v3']);
const STATES = ['error', 'failure', 'inactive', 'in_progress', 'queued', 'pending', 'success'];

interface Deployment {
  id: number;
  ref: string;
  environment: string;
  statuses: string[];
}
let deployments: Deployment[] = [];
let nextId = 100;
/** Answers forced before the API's own, e.g. a 502 once. */
let override: Reply[] = [];
let intercept: ((request: ReceivedRequest) => Reply | undefined) | undefined;

function problemsOf(body: Record<string, unknown>, allowed: Record<string, (v: unknown) => boolean>, required: string[]): string[] {
  const problems: string[] = [];
  for (const key of required) if (body[key] === undefined) problems.push(`${key} is required`);
  for (const [key, value] of Object.entries(body)) {
    const check = allowed[key];
    if (!check) problems.push(`unknown field ${key}`);
    else if (!check(value)) problems.push(`invalid ${key}`);
  }
  return problems;
}
const isString = (v: unknown) => typeof v === 'string';
const isBool = (v: unknown) => typeof v === 'boolean';

function github(request: ReceivedRequest): Reply {
  const forced = override.shift() ?? intercept?.(request);
  if (forced) return forced;
  if (request.headers.authorization !== `Bearer ${TOKEN}`) return { status: 401, body: { message: `Bad credentials: ${String(request.headers.authorization)}` } };
  if (request.headers.accept !== 'application/vnd.github+json' || request.headers['x-github-api-version'] !== '2022-11-28') return { status: 400, body: { message: 'missing API headers' } };
  const url = new URL(request.url, 'http://x');
  const prefix = '/api/v3/repos/acme/shop/deployments';
  if (!url.pathname.startsWith(prefix)) return { status: 404, body: { message: 'Not Found' } };
  const rest = url.pathname.slice(prefix.length);
  const body = (request.body ?? {}) as Record<string, unknown>;
  if (request.method === 'GET' && rest === '') {
    const ref = url.searchParams.get('ref');
    const environment = url.searchParams.get('environment');
    const list = deployments.filter((d) => (ref === null || d.ref === ref) && (environment === null || d.environment === environment));
    return { status: 200, body: list.reverse().map((d) => ({ id: d.id, ref: d.ref, environment: d.environment, task: 'deploy', creator: { login: 'bot' } })) };
  }
  if (request.method === 'POST' && rest === '') {
    const problems = problemsOf(body, {
      ref: (v) => isString(v) && v !== '', task: isString, auto_merge: isBool,
      required_contexts: (v) => Array.isArray(v) && v.every(isString), payload: (v) => isString(v) || (typeof v === 'object' && v !== null),
      environment: isString, description: (v) => v === null || isString(v), transient_environment: isBool, production_environment: isBool,
    }, ['ref']);
    if (problems.length > 0) return { status: 422, body: { message: 'Validation Failed', errors: problems } };
    if (!REFS.has(body.ref as string)) return { status: 422, body: { message: `No ref found for: ${String(body.ref)}` } };
    const deployment = { id: nextId++, ref: body.ref as string, environment: (body.environment as string) ?? 'production', statuses: [] };
    deployments.push(deployment);
    return { status: 201, body: { id: deployment.id, ref: deployment.ref, environment: deployment.environment } };
  }
  const match = /^\/(\d+)\/statuses$/.exec(rest);
  if (request.method === 'POST' && match) {
    const deployment = deployments.find((d) => d.id === Number(match[1]));
    if (!deployment) return { status: 404, body: { message: 'Not Found' } };
    const problems = problemsOf(body, {
      state: (v) => STATES.includes(v as string), target_url: isString, log_url: isString,
      description: (v) => isString(v) && (v as string).length <= 140, environment: isString, environment_url: isString, auto_inactive: isBool,
    }, ['state']);
    if (problems.length > 0) return { status: 422, body: { message: 'Validation Failed', errors: problems } };
    deployment.statuses.push(body.state as string);
    if (body.state === 'success' && body.auto_inactive !== false) {
      for (const other of deployments) {
        if (other !== deployment && other.environment === deployment.environment && other.statuses.at(-1) === 'success') other.statuses.push('inactive');
      }
    }
    return { status: 201, body: { id: nextId++, state: body.state } };
  }
  return { status: 404, body: { message: 'Not Found' } };
}

let api: JsonReceiver;
beforeAll(async () => {
  api = await startJsonReceiver(github);
});
afterAll(() => api.close());
beforeEach(() => {
  api.received.length = 0;
  deployments = [];
  override = [];
  intercept = undefined;
  nextId = 100;
});

const config = (extra: Record<string, unknown> = {}) =>
  notifiersSchema.parse([{ type: 'github_deployments', name: 'gh', token_env: 'GH_TOKEN', repository: 'acme/shop', api_url: `${api.base}/api/v3/`, ...extra }])[0] as GitHubDeploymentsNotifierConfig;
const event = (kind: string, message: string, version: string, previous: string | null): NotificationEvent => ({
  kind, severity: 'info', message, service: 'shop', at: Date.UTC(2026, 0, 24), release: { version, previous },
});

describe('github deployments notifier', () => {
  it('follows releases: in_progress, success when promoted, failure and the previous version active again when rolled back, error when the rollback failed', async () => {
    const lines: string[] = [];
    const log: LogFn = (level, message, fields) => lines.push(`${level} ${message} ${JSON.stringify(fields)}`);
    const routes = routesFromConfig([config()], { GH_TOKEN: TOKEN });
    const dispatcher = new NotificationDispatcher(routes, { log, clock: { sleep: async () => {} } });
    dispatcher.publish(event('release_detected', 'release v1 guarded', 'v1', null));
    dispatcher.publish(event('promoted', 'release v1 promoted (window ended clean)', 'v1', null));
    dispatcher.publish(event('release_detected', 'release v2 guarded', 'v2', 'v1'));
    dispatcher.publish(event('rule_breached', 'error_rate 12 % > 5 %', 'v2', 'v1'));
    dispatcher.publish(event('rollback_started', 'rolling back v2 -> v1', 'v2', 'v1'));
    dispatcher.publish(event('rollback_finished', `rolled back v2 -> v1, verified 3/3 ${'x'.repeat(300)}`, 'v2', 'v1'));
    dispatcher.publish(event('release_detected', 'release v3 guarded', 'v3', 'v1'));
    dispatcher.publish(event('rollback_failed', 'rollback v3 -> v1 failed: pm2 reload timed out', 'v3', 'v1'));
    // v2 released again after its rollback: a deployment of its own, the failed one stays failed.
    dispatcher.publish(event('release_detected', 'release v2 guarded', 'v2', 'v1'));
    dispatcher.publish(event('promoted', 'release v2 promoted (window ended clean)', 'v2', 'v1'));
    await dispatcher.close(10_000);

    expect(lines.filter((l) => !l.startsWith('debug'))).toEqual([]);
    expect(deployments.map((d) => `${d.ref} ${d.environment} ${d.statuses.join(',')}`)).toEqual([
      'v1 production in_progress,success,inactive',
      'v2 production in_progress,failure',
      'v1 production success,inactive',
      'v3 production in_progress,error',
      'v2 production in_progress,success',
    ]);
    expect(api.received.every((r) => r.headers.authorization === `Bearer ${TOKEN}`)).toBe(true);
  });

  it('repeats nothing when an attempt is retried: the deployment is looked up before one is created', async () => {
    const routes = routesFromConfig([config({ environment: 'staging' })], { GH_TOKEN: TOKEN });
    const lines: string[] = [];
    const dispatcher = new NotificationDispatcher(routes, { log: (l, m, f) => lines.push(`${l} ${m} ${JSON.stringify(f)}`), clock: { sleep: async () => {} } });
    // The deployment is created, then the status call fails once.
    let failedOnce = false;
    intercept = (request) => (!failedOnce && request.url.endsWith('/statuses') ? ((failedOnce = true), { status: 502, body: { message: 'Server Error' } }) : undefined);
    dispatcher.publish(event('release_detected', 'release v2 guarded', 'v2', 'v1'));
    await dispatcher.close(10_000);
    expect(deployments.map((d) => `${d.ref} ${d.environment} ${d.statuses.join(',')}`)).toEqual(['v2 staging in_progress']);
    expect(lines.filter((l) => l.startsWith('warn')).join()).toMatch(/GitHub \(POST \/deployments\/100\/statuses\) answered 502/);
  });

  it('never shows the token in errors; a ref GitHub does not know is not retried', async () => {
    const bad = createGitHubDeploymentsNotifier(config(), { GH_TOKEN: `${TOKEN}x` });
    const unauthorized = (await bad.send(event('promoted', 'promoted', 'v2', 'v1'), new AbortController().signal).then(() => undefined, (e: unknown) => e)) as NotifyError;
    expect(unauthorized).toBeInstanceOf(NotifyError);
    expect(unauthorized.retryable).toBe(false);
    expect(`${unauthorized.message} ${JSON.stringify(unauthorized)}`).not.toContain(TOKEN);
    expect(unauthorized.message).toMatch(/^github_deployments "gh": GitHub \(GET \/deployments\) answered 401: .*Bad credentials: Bearer \*\*\*/);

    const good = createGitHubDeploymentsNotifier(config(), { GH_TOKEN: TOKEN });
    const unknown = (await good.send(event('release_detected', 'guarded', 'v9', 'v1'), new AbortController().signal).then(() => undefined, (e: unknown) => e)) as NotifyError;
    expect(unknown).toMatchObject({ retryable: false, message: 'github_deployments "gh": GitHub (POST /deployments) answered 422: {"message":"No ref found for: v9"}' });
    expect(() => createGitHubDeploymentsNotifier(config({ token_env: 'UNSET' }), {})).toThrow('notifier "gh": environment variable UNSET (token_env) is not set');
  });
});
