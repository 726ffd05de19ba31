/**
 * Notifications (seed §4.2 通知相关方, DESIGN §6): what is sent, and the one interface every
 * channel implements. Delivery policy (queues, retries, timeouts, filters) is the dispatcher's.
 */

export type Severity = 'info' | 'warning' | 'critical';

export const SEVERITIES: readonly Severity[] = ['info', 'warning', 'critical'];

export interface NotificationEvent {
  /** What happened, e.g. `rollback_started` (core/types.ts `NotifyKind`). */
  kind: string;
  severity: Severity;
  /** One readable sentence with the facts (observed vs threshold, versions). */
  message: string;
  /** The guarded service. */
  service: string;
  /** Epoch milliseconds. */
  at: number;
  /** The release concerned, when there is one. */
  release?: { version: string; previous: string | null };
}

/**
 * One notification channel. `send` makes a single delivery attempt: it resolves once the event
 * was accepted, rejects otherwise (an error with `retryable: false` means trying again cannot
 * help, e.g. a 404 webhook), and stops at once when `signal` aborts. Error messages must not
 * contain secrets (webhook URLs, header values): they are logged.
 */
export interface Notifier {
  /** From the config; used in logs. */
  readonly name: string;
  /**
   * The kinds this channel speaks about (a preset such as PagerDuty pages on a few); others are
   * never handed to it. Undefined: every kind.
   */
  readonly kinds?: readonly string[];
  send(event: NotificationEvent, signal: AbortSignal): Promise<void>;
}
