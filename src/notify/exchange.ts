/**
 * One bounded JSON exchange with a provider's API, shared by the notifier presets (PagerDuty,
 * Teams, GitHub Deployments): through the host's proxy settings (outbound-http.ts), one deadline
 * bounding the whole exchange, the answer read up to a cap, and every error message scrubbed of the
 * secrets the caller names (no `cause` attached: a driver error could carry them in its own fields).
 * Failures are NotifyErrors saying whether the dispatcher's retry can help, as webhook.ts does.
 */
import type { AxiosResponse } from 'axios';
import type { Readable } from 'node:stream';
import { formatDuration } from '../config/duration.js';
import { redactSecret } from '../config/secrets.js';
import { errorMessage } from '../errors.js';
import { outboundHttp, readCapped } from '../outbound-http.js';
import { describeNetworkError } from '../probes/http-fetch.js';
import { NotifyError } from './webhook.js';

export interface ExchangeRequest {
  method: 'GET' | 'POST';
  url: string;
  body?: unknown;
  headers?: Record<string, string>;
  /** Bounds connect, request and answer together. */
  timeoutMs: number;
  signal: AbortSignal;
  /** How much of the answer is read; what an API answers beyond it is not needed. */
  maxAnswerBytes?: number;
}

export interface ExchangeAnswer {
  status: number;
  /** The answer's body, at most maxAnswerBytes. */
  text: string;
}

/** Statuses worth another attempt: the receiver is busy or broken, not the request. */
export function retryableStatus(status: number): boolean {
  return status >= 500 || status === 408 || status === 425 || status === 429;
}

/** Builds the NotifyError of one notifier, with every secret replaced by *** in its message. */
export function notifyFailure(owner: string, secrets: readonly string[]): (message: string, code: string, retryable: boolean) => NotifyError {
  return (message, code, retryable) =>
    new NotifyError(
      secrets.reduce((out, secret) => redactSecret(out, secret), `${owner}: ${message}`),
      code,
      retryable,
    );
}

/**
 * Sends one request; resolves with any status (the caller judges it), rejects with a retryable
 * NotifyError on timeout, abort or network failure, and a non-retryable one when the request
 * cannot even be sent (e.g. a header with a newline).
 */
export async function exchange(request: ExchangeRequest, fail: ReturnType<typeof notifyFailure>): Promise<ExchangeAnswer> {
  const body = request.body === undefined ? undefined : JSON.stringify(request.body);
  const headers: Record<string, string> = { 'user-agent': 'release-guard', ...request.headers };
  if (body !== undefined) {
    headers['content-type'] = 'application/json; charset=utf-8';
    headers['content-length'] = String(Buffer.byteLength(body));
  }
  if (request.signal.aborted) throw fail('aborted', 'notify_aborted', true);
  // One deadline bounds the whole exchange (axios' own timeout only watches an idle socket).
  const deadline = AbortSignal.timeout(request.timeoutMs);
  let response: AxiosResponse<Readable>;
  try {
    response = await (await outboundHttp()).request<Readable>({
      method: request.method,
      url: request.url,
      data: body,
      headers,
      signal: AbortSignal.any([request.signal, deadline]),
    });
  } catch (error) {
    if (request.signal.aborted) throw fail('aborted', 'notify_aborted', true);
    if (deadline.aborted) throw fail(`timeout after ${formatDuration(request.timeoutMs)}`, 'notify_timeout', true);
    if ((error as { code?: string }).code === 'ERR_INVALID_CHAR') throw fail(`request could not be sent: ${errorMessage(error)}`, 'notify_invalid', false);
    throw fail(describeNetworkError((error as { cause?: unknown }).cause ?? error), 'notify_network', true);
  }
  // The deadline still runs while the answer streams: a body that trickles is cut by it.
  const answer = await readCapped(response, request.maxAnswerBytes ?? 200);
  return { status: response.status, text: answer.toString('utf8') };
}

/** A refusal as a NotifyError: the status, whether a retry helps, and the first words of the answer. */
export function rejected(answer: ExchangeAnswer, fail: ReturnType<typeof notifyFailure>, what = 'receiver'): NotifyError {
  const quoted = answer.text.slice(0, 200).replace(/\s+/g, ' ').trim();
  const why = answer.status >= 300 && answer.status < 400 ? ' (redirects are not followed)' : '';
  return fail(`${what} answered ${answer.status}${why}${quoted ? `: ${quoted}` : ''}`, 'notify_rejected', retryableStatus(answer.status));
}
