/**
 * Outbound HTTP of the guard to the outside world — notifiers and the CLI's control client —
 * through axios, so it honours HTTP_PROXY / HTTPS_PROXY / NO_PROXY as the host's other tools do
 * (HTTPS through a proxy by CONNECT tunnel). A host behind a corporate proxy reaches Slack.
 *
 * Probes do not use this: a probe must bound the whole exchange (connect, headers, a slow body)
 * by one deadline and cap the body as it streams, which its own capped fetch does
 * (probes/http-fetch.ts); axios' `timeout` is a socket-idle timer, and a probe never goes through
 * a proxy to the app beside it.
 */
import type { AxiosInstance, AxiosResponse } from 'axios';
import type { Readable } from 'node:stream';

let instance: Promise<AxiosInstance> | undefined;

/**
 * The shared axios instance, loaded on first use: importing axios (with its proxy and form
 * dependencies) costs ~20 MB of RSS, and a guard that has nothing to notify — most of its life —
 * should not carry it (the cost benchmark's RSS target for guarding one service is 80 MB).
 */
export function outboundHttp(): Promise<AxiosInstance> {
  instance ??= import('axios').then(({ default: axios }) =>
    axios.create({
      // Every status is an answer for the caller to judge; redirects are not followed (a webhook URL
      // that redirects is a misconfiguration, and a redirect could carry a secret header elsewhere).
      validateStatus: () => true,
      maxRedirects: 0,
      // The body is sent as given, the answer read as a stream so the caller caps what it reads.
      transformRequest: [(data: unknown) => data],
      responseType: 'stream',
      decompress: true,
    }),
  );
  return instance;
}

/** No proxy stands between the guard and its own loopback daemon, whatever the environment says. */
export function isLoopback(url: URL): boolean {
  const host = url.hostname.replace(/^\[|\]$/g, '');
  return host === 'localhost' || host === '::1' || /^127\./.test(host);
}

/** Reads at most `limit` bytes of a streamed answer, then lets the rest go. */
export async function readCapped(response: AxiosResponse<Readable>, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of response.data) {
      const buffer = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as string);
      chunks.push(buffer);
      size += buffer.length;
      if (size >= limit) break;
    }
  } catch {
    // A body cut short is still an answer: the status counts, the quote is what arrived.
  } finally {
    response.data.destroy();
  }
  return Buffer.concat(chunks).subarray(0, limit);
}
