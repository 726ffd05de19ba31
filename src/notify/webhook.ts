/**
 * The webhook notifier: one POST per event, as generic JSON or as a Slack incoming-webhook
 * message, through the host's proxy settings (outbound-http.ts), with one deadline bounding the
 * exchange and only the first bytes of the answer read.
 *
 * The URL is a secret (anyone holding a Slack webhook URL can post to the channel), and so are
 * custom header values: no error message contains either. Messages name the notifier instead.
 */
import type { AxiosResponse } from 'axios';
import type { Readable } from 'node:stream';
import { formatDuration } from '../config/duration.js';
import { redactSecret } from '../config/secrets.js';
import { registerSecret } from '../redact.js';
import { errorMessage, GuardError } from '../errors.js';
import { outboundHttp, readCapped } from '../outbound-http.js';
import { readSecretUrl } from './secret-source.js';
import { describeNetworkError } from '../probes/http-fetch.js';
import type { WebhookNotifierConfig } from './schema.js';
import type { NotificationEvent, Notifier, Severity } from './types.js';

/** How much of a refusing receiver's answer is quoted in the error (Slack: "invalid_payload", …). */
const QUOTED_BYTES = 200;

/** A delivery that failed; `retryable: false` when trying again cannot help (e.g. 404, 400). */
export class NotifyError extends GuardError {
  constructor(
    message: string,
    code: string,
    readonly retryable: boolean,
    options?: ErrorOptions,
  ) {
    super(message, code, undefined, options);
  }
}

/** The generic JSON body: the event itself, its time as ISO 8601. */
export function jsonPayload(event: NotificationEvent): Record<string, unknown> {
  return {
    kind: event.kind,
    severity: event.severity,
    message: event.message,
    service: event.service,
    at: new Date(event.at).toISOString(),
    release: event.release ?? null,
  };
}

const SLACK_COLORS: Record<Severity, string> = { info: '#2eb886', warning: '#daa038', critical: '#a30200' };

/** Slack wants &, < and > escaped in message text. */
function slackEscape(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/**
 * A Slack incoming-webhook message: `text` (shown in notifications and as the fallback) and one
 * attachment coloured by severity, with service, kind, severity and release fields.
 */
export function slackPayload(event: NotificationEvent): Record<string, unknown> {
  const text = slackEscape(`[${event.severity}] ${event.service}: ${event.message}`);
  const fields = [
    { title: 'Service', value: slackEscape(event.service), short: true },
    { title: 'Kind', value: slackEscape(event.kind), short: true },
    { title: 'Severity', value: event.severity, short: true },
  ];
  if (event.release) {
    const previous = event.release.previous ?? 'none';
    fields.push({ title: 'Release', value: slackEscape(`${event.release.version} (previous: ${previous})`), short: true });
  }
  return {
    text,
    attachments: [
      {
        color: SLACK_COLORS[event.severity],
        fallback: text,
        text: slackEscape(event.message),
        fields,
        footer: 'release-guard',
        ts: Math.floor(event.at / 1000),
      },
    ],
  };
}

/**
 * The webhook URL from `url`, `url_file` (trimmed; must not be readable by group or others) or
 * `url_env`. Read once, when the notifier is created: a configured secret that cannot be read is
 * a misconfiguration and must stop start-up. Errors name the file or variable, never the value.
 */
export function readWebhookUrl(config: WebhookNotifierConfig, env: NodeJS.ProcessEnv = process.env): URL {
  const owner = `notifier "${config.name}"`;
  if (config.url === undefined) return readSecretUrl(owner, 'url', { file: config.url_file, env: config.url_env }, env);
  let url: URL | undefined;
  try {
    url = new URL(config.url);
  } catch {
    url = undefined;
  }
  if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:')) {
    throw new GuardError(`${owner}: url does not hold an http:// or https:// URL`, 'secret_invalid');
  }
  return url;
}

/**
 * Creates a webhook notifier (reads the URL now; throws a GuardError when it cannot). `send` makes
 * one attempt bounded by `config.timeout` and `signal`; 2xx is delivered. Failures reject with a
 * NotifyError: retryable for timeouts, network errors, 408, 425, 429 and 5xx; not for other
 * statuses (a 404 or 400 will not fix itself). Redirects are not followed.
 */
export function createWebhookNotifier(config: WebhookNotifierConfig, env: NodeJS.ProcessEnv = process.env): Notifier {
  const url = readWebhookUrl(config, env);
  const owner = `webhook "${config.name}"`;
  // Everything secret that a message could possibly echo: the URL and its parts, header values.
  // A receiver may echo one part alone ("unknown token XYZ"): long path segments and query values too.
  // So may a header's credential without its scheme ("Bearer <token>" -> "<token>").
  const parts = [
    ...url.pathname.split('/').filter((p) => p.length >= 12),
    ...[...url.searchParams.values()].filter((v) => v.length >= 8),
    ...Object.values(config.headers).map((v) => v.trim().split(/\s+/).pop() ?? '').filter((v) => v.length >= 8),
  ];
  const secrets = [url.href, `${url.pathname}${url.search}`, url.pathname, url.search, url.username, url.password, ...parts, ...Object.values(config.headers)]
    .filter((s) => s.length >= 4 && s !== '/')
    .sort((a, b) => b.length - a.length);
  // Every path out of the guard redacts them too (a step could echo the URL it was never given).
  for (const secret of secrets) registerSecret(secret);
  const scrub = (text: string) => secrets.reduce((out, secret) => redactSecret(out, secret), text);
  // No `cause` is attached: a driver error could carry the URL in its own fields.
  const fail = (message: string, code: string, retryable: boolean) => new NotifyError(scrub(`${owner}: ${message}`), code, retryable);

  return {
    name: config.name,
    async send(event, signal) {
      const body = JSON.stringify(config.format === 'slack' ? slackPayload(event) : jsonPayload(event));
      const headers: Record<string, string> = {
        'user-agent': 'release-guard',
        ...config.headers,
        'content-type': 'application/json; charset=utf-8',
        'content-length': String(Buffer.byteLength(body)),
      };
      if (signal.aborted) throw fail('aborted', 'notify_aborted', true);
      // One deadline bounds the whole exchange (axios' own timeout only watches an idle socket).
      const deadline = AbortSignal.timeout(config.timeout);
      let response: AxiosResponse<Readable>;
      try {
        response = await (await outboundHttp()).post<Readable>(url.href, body, { headers, signal: AbortSignal.any([signal, deadline]) });
      } catch (error) {
        if (signal.aborted) throw fail('aborted', 'notify_aborted', true);
        if (deadline.aborted) throw fail(`timeout after ${formatDuration(config.timeout)}`, 'notify_timeout', true);
        // e.g. a header value with a newline is refused before anything is sent.
        if ((error as { code?: string }).code === 'ERR_INVALID_CHAR') throw fail(`request could not be sent: ${errorMessage(error)}`, 'notify_invalid', false);
        throw fail(describeNetworkError((error as { cause?: unknown }).cause ?? error), 'notify_network', true);
      }
      const status = response.status;
      // The status is all that counts: a receiver that talks too much is not read further.
      const quotedBytes = await readCapped(response, QUOTED_BYTES);
      if (status >= 200 && status < 300) return;
      const quoted = quotedBytes.toString('utf8').replace(/\s+/g, ' ').trim();
      const retryable = status >= 500 || status === 408 || status === 425 || status === 429;
      const why = status >= 300 && status < 400 ? ' (redirects are not followed)' : '';
      throw fail(`receiver answered ${status}${why}${quoted ? `: ${quoted}` : ''}`, 'notify_rejected', retryable);
    },
  };
}
