/**
 * GitHub Deployments (https://docs.github.com/en/rest/deployments): the release shows on the
 * repository's environment page as a deployment whose status follows the guard's verdict.
 *
 * - `release_detected`: the deployment of ref = the version (found, or created) gets `in_progress`;
 * - `promoted`: it gets `success` (auto_inactive: earlier successful deployments become inactive);
 * - `rollback_finished`: it gets `failure`, and the previous version — running again — gets a
 *   deployment of its own with `success`, whose auto_inactive marks the others inactive;
 * - `rollback_failed`: it gets `error`.
 * Other kinds are not sent (`GITHUB_DEPLOYMENT_KINDS`). Every released version must be a ref of the
 * repository (a tag, a branch or a SHA): GitHub refuses a deployment of an unknown ref (422).
 *
 * Each attempt may be repeated by the dispatcher, so every step is idempotent: a deployment is
 * looked up before one is created, and a repeated status only adds the same state again. A version
 * released again (after a rollback) gets a deployment of its own.
 * The token is a secret: never in an error message or a log line.
 */
import { exchange, notifyFailure, rejected } from './exchange.js';
import type { GitHubDeploymentsNotifierConfig } from './schema.js';
import { readNotifierSecret, secretFragments } from './secret-source.js';
import type { NotificationEvent, Notifier } from './types.js';

export const GITHUB_DEPLOYMENT_KINDS = ['release_detected', 'promoted', 'rollback_finished', 'rollback_failed'];

/** GitHub's limit for a status description. */
const DESCRIPTION_MAX = 140;
/** A page of deployments is a few KB each; 10 of them fit well within this. */
const LIST_ANSWER_MAX = 512 * 1024;

type DeploymentState = 'error' | 'failure' | 'inactive' | 'in_progress' | 'queued' | 'pending' | 'success';

function cut(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

export function createGitHubDeploymentsNotifier(config: GitHubDeploymentsNotifierConfig, env: NodeJS.ProcessEnv = process.env): Notifier {
  const token = readNotifierSecret(`notifier "${config.name}"`, 'token', { file: config.token_file, env: config.token_env }, env);
  const fail = notifyFailure(`github_deployments "${config.name}"`, secretFragments(token));
  const base = `${config.api_url.replace(/\/+$/, '')}/repos/${config.repository}`;
  const headers = {
    accept: 'application/vnd.github+json',
    'x-github-api-version': '2022-11-28',
    authorization: `Bearer ${token}`,
  };
  const github = new DeploymentsApi(config, base, headers, fail);
  return { name: config.name, kinds: GITHUB_DEPLOYMENT_KINDS, send: (event, signal) => report(github, event, signal) };
}

/** The deployments API of one repository, as the notifier uses it. */
class DeploymentsApi {
  constructor(
    private readonly config: GitHubDeploymentsNotifierConfig,
    private readonly base: string,
    private readonly headers: Record<string, string>,
    private readonly fail: ReturnType<typeof notifyFailure>,
  ) {}

  private async call(method: 'GET' | 'POST', path: string, signal: AbortSignal, body?: unknown, expected = [200, 201]): Promise<unknown> {
    const answer = await exchange({ method, url: `${this.base}${path}`, headers: this.headers, body, timeoutMs: this.config.timeout, signal, maxAnswerBytes: LIST_ANSWER_MAX }, this.fail);
    if (!expected.includes(answer.status)) throw rejected(answer, this.fail, `GitHub (${method} ${path.split('?')[0]})`);
    try {
      return JSON.parse(answer.text) as unknown;
    } catch {
      throw this.fail(`GitHub answered ${answer.status} with a body that is not JSON (or longer than ${LIST_ANSWER_MAX} bytes)`, 'notify_invalid_answer', true);
    }
  }

  /** The newest deployment to the environment (of `ref` when given) newer than `after` (an id), if any. */
  private async newest(ref: string | undefined, signal: AbortSignal, after = 0): Promise<{ id: number; ref: unknown } | null> {
    const query = new URLSearchParams({ ...(ref === undefined ? {} : { ref }), environment: this.config.environment, per_page: '10' });
    const list = await this.call('GET', `/deployments?${query}`, signal);
    if (!Array.isArray(list)) throw this.fail('GitHub answered the deployments list with something else than a list', 'notify_invalid_answer', true);
    const found = (list as { id?: unknown; ref?: unknown }[]).filter((d): d is { id: number; ref: unknown } => typeof d.id === 'number' && d.id > after);
    return found.reduce<{ id: number; ref: unknown } | null>((best, d) => (best === null || d.id > best.id ? d : best), null);
  }

  /**
   * The deployment to report on: with `fresh`, a release window opening, the environment's newest
   * deployment when it is of `ref` (an attempt repeated) — a version released again after a
   * rollback gets a new one; otherwise the newest of `ref` newer than `after`. Created when none.
   */
  async findOrCreate(ref: string, description: string, signal: AbortSignal, after = 0, fresh = false): Promise<number> {
    const found = fresh ? await this.newest(undefined, signal) : await this.newest(ref, signal, after);
    if (found !== null && found.ref === ref) return found.id;
    const created = await this.call('POST', '/deployments', signal, {
      ref,
      task: 'deploy',
      environment: this.config.environment,
      description: cut(description, DESCRIPTION_MAX),
      // The release is already running: it must not wait for commit checks or merge anything.
      auto_merge: false,
      required_contexts: [],
      payload: { guard: 'release-guard' },
    }, [201]);
    const id = (created as { id?: unknown }).id;
    if (typeof id !== 'number') throw this.fail('GitHub created a deployment without an id', 'notify_invalid_answer', true);
    return id;
  }

  async status(id: number, state: DeploymentState, description: string, signal: AbortSignal, autoInactive: boolean): Promise<void> {
    await this.call('POST', `/deployments/${id}/statuses`, signal, {
      state,
      description: cut(description, DESCRIPTION_MAX),
      environment: this.config.environment,
      auto_inactive: autoInactive,
    }, [201]);
  }
}

/** One event as deployment statuses: in_progress when guarded, success when promoted, failure/error on rollback. */
async function report(github: DeploymentsApi, event: NotificationEvent, signal: AbortSignal): Promise<void> {
  const release = event.release;
  if (!release) return;
  const version = release.version;
  switch (event.kind) {
    case 'release_detected': {
      const id = await github.findOrCreate(version, `release-guard: guarding ${version}`, signal, 0, true);
      await github.status(id, 'in_progress', `release-guard: guarding ${version} (previous ${release.previous ?? 'none'})`, signal, false);
      return;
    }
    case 'promoted': {
      const id = await github.findOrCreate(version, `release-guard: ${version}`, signal);
      await github.status(id, 'success', event.message, signal, true);
      return;
    }
    case 'rollback_finished': {
      const id = await github.findOrCreate(version, `release-guard: ${version}`, signal);
      await github.status(id, 'failure', event.message, signal, false);
      if (release.previous) {
        // The previous version runs again: a deployment newer than the failed one says so.
        const back = await github.findOrCreate(release.previous, `release-guard: rollback of ${version} to ${release.previous}`, signal, id);
        await github.status(back, 'success', `rolled back from ${version}`, signal, true);
      }
      return;
    }
    case 'rollback_failed': {
      const id = await github.findOrCreate(version, `release-guard: ${version}`, signal);
      await github.status(id, 'error', event.message, signal, false);
      return;
    }
    default:
      return;
  }
}
