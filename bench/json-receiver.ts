/**
 * A local HTTP server standing in for a provider's API in notifier tests: it records each request
 * (method, path, headers, parsed JSON body) and answers with what the test's handler returns.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ReceivedRequest {
  method: string;
  /** Path and query. */
  url: string;
  headers: http.IncomingHttpHeaders;
  /** The body parsed as JSON; undefined when empty; the raw text when not JSON. */
  body: unknown;
  /** Size of the body in bytes. */
  bytes: number;
}

export interface Reply {
  status: number;
  body?: unknown;
}

export interface JsonReceiver {
  base: string;
  received: ReceivedRequest[];
  close(): Promise<void>;
}

export async function startJsonReceiver(handle: (request: ReceivedRequest) => Reply): Promise<JsonReceiver> {
  const received: ReceivedRequest[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const raw = Buffer.concat(chunks);
      let body: unknown;
      try {
        body = raw.length === 0 ? undefined : (JSON.parse(raw.toString('utf8')) as unknown);
      } catch {
        body = raw.toString('utf8');
      }
      const request = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, body, bytes: raw.length };
      received.push(request);
      let reply: Reply;
      try {
        reply = handle(request);
      } catch (error) {
        reply = { status: 500, body: { message: String(error) } };
      }
      const text = reply.body === undefined ? '' : typeof reply.body === 'string' ? reply.body : JSON.stringify(reply.body);
      res.writeHead(reply.status, { 'content-type': typeof reply.body === 'string' ? 'text/plain' : 'application/json' });
      res.end(text);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    received,
    close: async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
