/**
 * Delivers notifications without ever delaying the guard: `publish` only queues. Each notifier has
 * its own bounded queue and its own worker, so a slow or hung receiver delays nobody but itself;
 * every attempt is bounded by a timeout, failed attempts are retried with exponential backoff and
 * jitter, and a full queue drops its oldest event (with a warning) rather than grow without end.
 */
import { formatDuration } from '../config/duration.js';
import { errorMessage, GuardError } from '../errors.js';
import type { NotifierConfig } from './schema.js';
import type { NotificationEvent, Notifier, Severity } from './types.js';
import { createGitHubDeploymentsNotifier } from './github-deployments.js';
import { createPagerDutyNotifier } from './pagerduty.js';
import { createTeamsNotifier } from './teams.js';
import { createWebhookNotifier } from './webhook.js';
import { redact } from '../redact.js';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
/** Fixed message text, facts as fields (the caller's logger redacts secret-looking fields). */
export type LogFn = (level: LogLevel, message: string, fields: Record<string, unknown>) => void;

/** One notifier with its delivery policy. */
export interface NotifierRoute {
  notifier: Notifier;
  /** Kinds delivered; undefined = all. */
  events?: readonly string[] | undefined;
  /** Less severe events are not delivered. */
  minSeverity: Severity;
  /** Bounds each attempt, whether or not the notifier honours its signal. */
  timeoutMs: number;
  /** Further attempts after a failed one. */
  retries: number;
}

export interface BackoffPolicy {
  /** Delay before the first retry; doubles for each further one. */
  initialMs: number;
  maxMs: number;
  /** Each delay is spread by ±jitter (a fraction), so receivers are not hit in lockstep. */
  jitter: number;
}

export interface DispatcherOptions {
  log: LogFn;
  /**
   * Waits between retries (the shell's Clock fits). Attempt and close timeouts use real timers
   * on purpose: they are safety bounds, and a test clock must not be able to make them hang.
   */
  clock: { sleep(ms: number, signal?: AbortSignal): Promise<void> };
  /** Jitter source in [0, 1); default Math.random. */
  random?: () => number;
  /** Events waiting per notifier (the one being delivered not counted); default 100. */
  queueLimit?: number;
  backoff?: Partial<BackoffPolicy>;
}

export const DEFAULT_BACKOFF: BackoffPolicy = { initialMs: 500, maxMs: 30_000, jitter: 0.2 };
export const DEFAULT_QUEUE_LIMIT = 100;

const SEVERITY_RANK: Record<Severity, number> = { info: 0, warning: 1, critical: 2 };

/**
 * The wait before retry `retry` (1 = the first retry): initialMs × 2^(retry-1), capped at maxMs,
 * spread by ±jitter and capped again. With the defaults and no jitter: 0.5s, 1s, 2s, 4s, … 30s.
 */
export function backoffDelay(retry: number, random: number, policy: BackoffPolicy = DEFAULT_BACKOFF): number {
  const base = Math.min(policy.maxMs, policy.initialMs * 2 ** Math.max(0, retry - 1));
  const spread = 1 - policy.jitter + 2 * policy.jitter * Math.min(Math.max(random, 0), 1);
  return Math.round(Math.min(policy.maxMs, base * spread));
}

/** The notifier factories, keyed by the config's `type`. */
export const notifierFactories = {
  webhook: createWebhookNotifier,
  pagerduty: createPagerDutyNotifier,
  teams: createTeamsNotifier,
  github_deployments: createGitHubDeploymentsNotifier,
} satisfies { [K in NotifierConfig['type']]: (config: Extract<NotifierConfig, { type: K }>, env: NodeJS.ProcessEnv) => Notifier };

/** Builds every configured notifier with its policy; throws (a GuardError) when a secret cannot be read. */
export function routesFromConfig(configs: readonly NotifierConfig[], env: NodeJS.ProcessEnv = process.env): NotifierRoute[] {
  return configs.map((config) => {
    const notifier = (notifierFactories[config.type] as (c: NotifierConfig, e: NodeJS.ProcessEnv) => Notifier)(config, env);
    // A preset that speaks about a few kinds (PagerDuty, GitHub) is handed only those.
    const events = notifier.kinds === undefined ? config.events : (config.events ?? notifier.kinds).filter((kind) => notifier.kinds!.includes(kind));
    if (events?.length === 0) {
      throw new GuardError(`notifier "${config.name}": a ${config.type} notifier sends none of the events listed; it sends ${notifier.kinds!.join(', ')}`, 'config_invalid');
    }
    return { notifier, events, minSeverity: config.min_severity, timeoutMs: config.timeout, retries: config.retries };
  });
}

interface Lane {
  route: NotifierRoute;
  queue: NotificationEvent[];
  /** The event being delivered (attempts and waits between them). */
  current: NotificationEvent | null;
  /** The worker, while one runs. */
  worker: Promise<void> | null;
}

export class NotificationDispatcher {
  private readonly lanes: Lane[];
  private readonly log: LogFn;
  private readonly clock: DispatcherOptions['clock'];
  private readonly random: () => number;
  private readonly queueLimit: number;
  private readonly backoff: BackoffPolicy;
  /** Aborted when close() gives up: ends attempts and waits at once. */
  private readonly stop = new AbortController();
  private closing = false;

  constructor(routes: readonly NotifierRoute[], options: DispatcherOptions) {
    this.lanes = routes.map((route) => ({ route, queue: [], current: null, worker: null }));
    this.log = options.log;
    this.clock = options.clock;
    this.random = options.random ?? Math.random;
    this.queueLimit = Math.max(1, options.queueLimit ?? DEFAULT_QUEUE_LIMIT);
    this.backoff = { ...DEFAULT_BACKOFF, ...options.backoff };
  }

  /**
   * Queues `event` for every notifier whose filters accept it and returns at once: no notifier
   * code runs before this returns, and it never throws. After close() events are dropped.
   */
  publish(raw: NotificationEvent): void {
    // A message may quote a step's output or error: it leaves through the one redaction.
    const event = redact(raw);
    if (this.closing) {
      this.log('warn', 'notification dropped: the dispatcher is closed', { kind: event.kind, severity: event.severity });
      return;
    }
    for (const lane of this.lanes) {
      const { route } = lane;
      if (route.events !== undefined && !route.events.includes(event.kind)) continue;
      if (SEVERITY_RANK[event.severity] < SEVERITY_RANK[route.minSeverity]) continue;
      if (lane.queue.length >= this.queueLimit) {
        const dropped = lane.queue.shift();
        this.log('warn', 'notification queue full: oldest event dropped', {
          notifier: route.notifier.name,
          dropped_kind: dropped?.kind,
          dropped_at: dropped?.at,
          queue_limit: this.queueLimit,
        });
      }
      lane.queue.push(event);
      if (lane.worker === null) {
        // Started on a microtask, so publish() has returned before any notifier code runs.
        lane.worker = Promise.resolve().then(() => this.drain(lane));
      }
    }
  }

  /**
   * Stops accepting events, lets the queues drain for up to `timeoutMs`, then gives up: attempts
   * in flight are aborted and what is left is logged as not delivered. Resolves within
   * `timeoutMs` (plus a tick), whatever the notifiers do. Idempotent.
   */
  async close(timeoutMs: number): Promise<void> {
    this.closing = true;
    const workers = this.lanes.flatMap((lane) => (lane.worker ? [lane.worker] : []));
    if (workers.length > 0 && !this.stop.signal.aborted) {
      let timer: NodeJS.Timeout | undefined;
      const deadline = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, timeoutMs);
      });
      await Promise.race([Promise.all(workers), deadline]);
      clearTimeout(timer);
    }
    for (const lane of this.lanes) {
      const left = lane.queue.length + (lane.current ? 1 : 0);
      if (left === 0) continue;
      this.log('warn', 'notifications not delivered: shutting down', {
        notifier: lane.route.notifier.name,
        undelivered: left,
        kinds: [...(lane.current ? [lane.current] : []), ...lane.queue].map((e) => e.kind),
      });
      lane.queue.length = 0;
      lane.current = null;
    }
    this.stop.abort();
  }

  /** Events queued or being delivered, per notifier name (for status and tests). */
  pending(): Record<string, number> {
    return Object.fromEntries(this.lanes.map((lane) => [lane.route.notifier.name, lane.queue.length + (lane.current ? 1 : 0)]));
  }

  private async drain(lane: Lane): Promise<void> {
    try {
      // No await between the last shift() and `worker = null`: a publish() in between would
      // otherwise find a worker that is about to stop.
      for (let event = lane.queue.shift(); event !== undefined; event = lane.queue.shift()) {
        if (this.stop.signal.aborted) break;
        lane.current = event;
        await this.deliver(lane.route, event);
        lane.current = null;
      }
    } finally {
      lane.current = null;
      lane.worker = null;
    }
  }

  private async deliver(route: NotifierRoute, event: NotificationEvent): Promise<void> {
    const notifier = route.notifier.name;
    const attempts = 1 + Math.max(0, route.retries);
    for (let attempt = 1; ; attempt += 1) {
      const error = await this.attempt(route, event);
      if (error === undefined) {
        this.log('debug', 'notification delivered', { notifier, kind: event.kind, attempt });
        return;
      }
      // Given up by close(), which reports what was left undelivered.
      if (this.stop.signal.aborted) return;
      const retryable = (error as { retryable?: unknown }).retryable !== false;
      if (!retryable || attempt >= attempts) {
        this.log('error', 'notification not delivered', {
          notifier,
          kind: event.kind,
          attempts: attempt,
          error: errorMessage(error),
          ...(retryable ? {} : { retryable: false }),
        });
        return;
      }
      const delay = backoffDelay(attempt, this.random(), this.backoff);
      this.log('warn', 'notification attempt failed: retrying', { notifier, kind: event.kind, attempt, retry_in_ms: delay, error: errorMessage(error) });
      await this.clock.sleep(delay, this.stop.signal);
      if (this.stop.signal.aborted) return;
    }
  }

  /** One attempt; resolves to undefined on success or the error, within timeoutMs, never rejects. */
  private async attempt(route: NotifierRoute, event: NotificationEvent): Promise<Error | undefined> {
    if (this.stop.signal.aborted) return new Error('dispatcher closed');
    const controller = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    let onStop: (() => void) | undefined;
    const bounded = new Promise<Error>((resolve) => {
      timer = setTimeout(() => resolve(new Error(`no answer within ${formatDuration(route.timeoutMs)}`)), route.timeoutMs);
      onStop = () => resolve(new Error('dispatcher closed'));
      this.stop.signal.addEventListener('abort', onStop, { once: true });
    });
    // Called on a later tick and wrapped, so a notifier that throws synchronously is just a failure.
    const sending = Promise.resolve()
      .then(() => route.notifier.send(event, controller.signal))
      .then(
        () => undefined,
        (error: unknown) => (error instanceof Error ? error : new Error(String(error))),
      );
    const outcome = await Promise.race([sending, bounded]);
    clearTimeout(timer);
    if (onStop) this.stop.signal.removeEventListener('abort', onStop);
    // Timed out or closed: tell the notifier to stop; its late result is ignored.
    if (outcome !== undefined) controller.abort();
    return outcome;
  }
}
