/**
 * The dispatcher with scripted notifiers: publish never waits, a hung notifier delays nobody,
 * retries follow the backoff schedule (fake sleep), full queues drop their oldest event, close()
 * keeps its deadline.
 */
import { describe, expect, it, vi } from 'vitest';
import { backoffDelay, DEFAULT_BACKOFF, NotificationDispatcher, type LogFn, type NotifierRoute } from './dispatcher.js';
import type { NotificationEvent, Notifier, Severity } from './types.js';

const event = (kind: string, severity: Severity = 'critical', at = 1): NotificationEvent => ({
  kind,
  severity,
  message: `${kind} happened`,
  service: 'web',
  at,
});

function recorder() {
  const lines: { level: string; message: string; fields: Record<string, unknown> }[] = [];
  const log: LogFn = (level, message, fields) => lines.push({ level, message, fields });
  return { lines, log };
}

/** Resolves immediately, recording each requested delay. */
function fakeSleep() {
  const delays: number[] = [];
  return { delays, clock: { sleep: async (ms: number) => void delays.push(ms) } };
}

const realClock = {
  sleep: (ms: number, signal?: AbortSignal) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      signal?.addEventListener('abort', () => (clearTimeout(timer), resolve()), { once: true });
    }),
};

/** A notifier that records what it got and answers as `behave` says. */
function notifier(name: string, behave: (event: NotificationEvent, call: number, signal: AbortSignal) => Promise<void> = async () => undefined) {
  const received: string[] = [];
  let calls = 0;
  const n: Notifier & { received: string[]; calls: () => number } = {
    name,
    received,
    calls: () => calls,
    send(e, signal) {
      calls += 1;
      return behave(e, calls, signal).then(() => void received.push(e.kind));
    },
  };
  return n;
}

const route = (n: Notifier, extra: Partial<NotifierRoute> = {}): NotifierRoute => ({ notifier: n, minSeverity: 'info', timeoutMs: 5000, retries: 3, ...extra });

async function until(condition: () => boolean, timeoutMs = 2000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

describe('backoffDelay', () => {
  it('doubles from 0.5s, caps, and spreads by the jitter', () => {
    expect([1, 2, 3, 4].map((retry) => backoffDelay(retry, 0.5))).toEqual([500, 1000, 2000, 4000]);
    expect(backoffDelay(12, 0.5)).toBe(DEFAULT_BACKOFF.maxMs);
    expect(backoffDelay(12, 0.999)).toBe(DEFAULT_BACKOFF.maxMs);
    expect(backoffDelay(1, 0)).toBe(400);
    expect(backoffDelay(1, 1)).toBe(600);
    expect(backoffDelay(3, 0.25, { initialMs: 100, maxMs: 1000, jitter: 0 })).toBe(400);
  });
});

describe('NotificationDispatcher: hung and slow notifiers', () => {
  it('a notifier that hangs forever blocks neither publish() nor another notifier, and close() keeps its deadline', async () => {
    const { lines, log } = recorder();
    const hung = notifier('hung', () => new Promise<void>(() => undefined)); // ignores its signal too
    const fine = notifier('fine');
    const dispatcher = new NotificationDispatcher([route(hung, { timeoutMs: 60_000 }), route(fine)], { log, clock: realClock });

    dispatcher.publish(event('rollback_started'));
    dispatcher.publish(event('rollback_finished'));
    // publish() returned without running any notifier code: it only queued.
    expect(hung.calls()).toBe(0);

    await until(() => fine.received.length === 2, 500);
    expect(fine.received).toEqual(['rollback_started', 'rollback_finished']);
    expect(hung.calls()).toBe(1);
    expect(dispatcher.pending()).toEqual({ hung: 2, fine: 0 });

    // close() keeps its deadline, on (fake) timers: not a moment sooner (that would drop the queue
    // early), and then it gives up on the hung notifier.
    vi.useFakeTimers();
    let closed = false;
    try {
      const closing = dispatcher.close(100).then(() => (closed = true));
      await vi.advanceTimersByTimeAsync(99);
      expect(closed).toBe(false);
      await vi.advanceTimersByTimeAsync(1);
      await closing;
    } finally {
      vi.useRealTimers();
    }
    expect(closed).toBe(true);
    expect(lines).toContainEqual({
      level: 'warn',
      message: 'notifications not delivered: shutting down',
      fields: { notifier: 'hung', undelivered: 2, kinds: ['rollback_started', 'rollback_finished'] },
    });
    expect(dispatcher.pending()).toEqual({ hung: 0, fine: 0 });

    dispatcher.publish(event('promoted'));
    expect(lines.at(-1)).toEqual({ level: 'warn', message: 'notification dropped: the dispatcher is closed', fields: { kind: 'promoted', severity: 'critical' } });
  });

  it('bounds each attempt by its timeout even when the notifier ignores its signal', async () => {
    const { lines, log } = recorder();
    const { delays, clock } = fakeSleep();
    let aborted = 0;
    const hung = notifier('hung', (_e, _call, signal) => {
      signal.addEventListener('abort', () => (aborted += 1));
      return new Promise<void>(() => undefined);
    });
    const dispatcher = new NotificationDispatcher([route(hung, { timeoutMs: 50, retries: 1 })], { log, clock, random: () => 0.5 });
    dispatcher.publish(event('crash'));
    await until(() => lines.some((l) => l.level === 'error'), 1000);
    expect(hung.calls()).toBe(2);
    expect(aborted).toBe(2); // the notifier was told to stop each time
    expect(delays).toEqual([500]);
    expect(lines.find((l) => l.level === 'error')).toEqual({
      level: 'error',
      message: 'notification not delivered',
      fields: { notifier: 'hung', kind: 'crash', attempts: 2, error: 'no answer within 50ms' },
    });
    await dispatcher.close(10);
  });
});

describe('NotificationDispatcher: retries and backoff', () => {
  it('retries with exponential backoff and jitter, then delivers', async () => {
    const { lines, log } = recorder();
    const { delays, clock } = fakeSleep();
    const flaky = notifier('flaky', async (_e, call) => {
      if (call <= 3) throw new Error(`HTTP 503 (call ${call})`);
    });
    const dispatcher = new NotificationDispatcher([route(flaky, { retries: 3 })], { log, clock, random: () => 0.5 });
    dispatcher.publish(event('rollback_failed'));
    await until(() => flaky.received.length === 1);
    expect(delays).toEqual([500, 1000, 2000]);
    expect(lines.map((l) => `${l.level} ${l.message} ${String(l.fields.attempt ?? '')}`)).toEqual([
      'warn notification attempt failed: retrying 1',
      'warn notification attempt failed: retrying 2',
      'warn notification attempt failed: retrying 3',
      'debug notification delivered 4',
    ]);
    expect(lines[0]?.fields).toMatchObject({ retry_in_ms: 500, error: 'HTTP 503 (call 1)' });
    await dispatcher.close(10);
  });

  it('gives up after the retries, spreads the delays by the jitter, and never retries a non-retryable error', async () => {
    const { lines, log } = recorder();
    const { delays, clock } = fakeSleep();
    const down = notifier('down', async () => {
      throw new Error('connection refused');
    });
    const gone = notifier('gone', async () => {
      throw Object.assign(new Error('receiver answered 404'), { retryable: false });
    });
    const randoms = [0, 1, 0.25];
    const dispatcher = new NotificationDispatcher([route(down, { retries: 3 }), route(gone)], { log, clock, random: () => randoms.shift() ?? 0.5 });
    dispatcher.publish(event('rule_breached'));
    await until(() => lines.filter((l) => l.level === 'error').length === 2);
    expect(down.calls()).toBe(4);
    expect(delays).toEqual([400, 1200, 1800]);
    expect(gone.calls()).toBe(1);
    expect(lines.filter((l) => l.level === 'error').map((l) => l.fields)).toEqual(
      expect.arrayContaining([
        { notifier: 'down', kind: 'rule_breached', attempts: 4, error: 'connection refused' },
        { notifier: 'gone', kind: 'rule_breached', attempts: 1, error: 'receiver answered 404', retryable: false },
      ]),
    );
    await dispatcher.close(10);
  });
});

describe('NotificationDispatcher: queues, filters and closing', () => {
  it('drops the oldest queued event with a warning when a queue is full, and keeps order', async () => {
    const { lines, log } = recorder();
    let open: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => (open = resolve));
    const slow = notifier('slow', () => gate);
    const dispatcher = new NotificationDispatcher([route(slow)], { log, clock: realClock, queueLimit: 3 });
    dispatcher.publish(event('e1', 'critical', 1));
    await until(() => slow.calls() === 1); // e1 is being delivered, the queue is empty
    for (let i = 2; i <= 6; i += 1) dispatcher.publish(event(`e${i}`, 'critical', i));
    expect(dispatcher.pending()).toEqual({ slow: 4 });
    expect(lines).toEqual([
      { level: 'warn', message: 'notification queue full: oldest event dropped', fields: { notifier: 'slow', dropped_kind: 'e2', dropped_at: 2, queue_limit: 3 } },
      { level: 'warn', message: 'notification queue full: oldest event dropped', fields: { notifier: 'slow', dropped_kind: 'e3', dropped_at: 3, queue_limit: 3 } },
    ]);
    open();
    await until(() => slow.received.length === 4);
    expect(slow.received).toEqual(['e1', 'e4', 'e5', 'e6']);
    await dispatcher.close(100);
    expect(lines.filter((l) => l.message.startsWith('notifications not delivered'))).toEqual([]);
  });

  it('filters by kind and minimum severity, and survives a notifier that throws synchronously', async () => {
    const { log } = recorder();
    const pager = notifier('pager');
    const chat = notifier('chat');
    const broken: Notifier = {
      name: 'broken',
      send() {
        throw new Error('bug');
      },
    };
    const dispatcher = new NotificationDispatcher(
      [route(pager, { minSeverity: 'critical' }), route(chat, { events: ['rollback_started', 'promoted'] }), route(broken, { retries: 0 })],
      { log, clock: realClock },
    );
    expect(() => dispatcher.publish(event('rollback_started', 'critical'))).not.toThrow();
    dispatcher.publish(event('promoted', 'info'));
    dispatcher.publish(event('rule_breached', 'warning'));
    dispatcher.publish(event('crash', 'critical'));
    await until(() => pager.received.length === 2 && chat.received.length === 2);
    expect(pager.received).toEqual(['rollback_started', 'crash']);
    expect(chat.received).toEqual(['rollback_started', 'promoted']);
    await dispatcher.close(1000);
  });

  it('flushes what is queued when closing within the deadline', async () => {
    const { lines, log } = recorder();
    const slowish = notifier('slowish', () => new Promise((resolve) => setTimeout(resolve, 20)));
    const dispatcher = new NotificationDispatcher([route(slowish)], { log, clock: realClock });
    for (const kind of ['a', 'b', 'c']) dispatcher.publish(event(kind));
    await dispatcher.close(2000);
    expect(slowish.received).toEqual(['a', 'b', 'c']);
    expect(lines.filter((l) => l.level !== 'debug')).toEqual([]);
    // Closing twice, or with nothing queued, returns at once: no time passes on the (fake) timers.
    vi.useFakeTimers();
    try {
      let closed = 0;
      void dispatcher.close(5000).then(() => (closed += 1));
      void new NotificationDispatcher([], { log, clock: realClock }).close(5000).then(() => (closed += 1));
      await vi.advanceTimersByTimeAsync(0);
      expect(closed).toBe(2);
    } finally {
      vi.useRealTimers();
    }
  });
});
