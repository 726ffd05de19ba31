/**
 * Fetching side of the scrape probe: one kept-alive connection per probe, so successive scrapes
 * reach the same worker of a pm2 cluster (see scrape.ts for why).
 */
import type http from 'node:http';
import type net from 'node:net';
import { fetchCapped, type Exchange } from './http-fetch.js';

/** One exchange over the pinned connection, and which connection carried it (0: unknown). */
export type ScrapeExchange = (signal: AbortSignal, onChunk: (chunk: Buffer) => void) => Promise<{ exchanged: Exchange; connection: number }>;

/**
 * The exchange of a probe: over `agent` (one pinned socket), tracked by `connections`, which
 * sends the keep-alive requests between scrapes. The body is streamed into `onChunk`, never
 * buffered whole.
 */
export function pinnedExchange(
  target: URL,
  agent: http.Agent,
  connections: PinnedConnection,
  limits: { timeoutMs: number; maxBodyBytes: number },
): ScrapeExchange {
  const exchange: ScrapeExchange = async (signal, onChunk) => {
    let connection = 0;
    connections.busy();
    try {
      const exchanged = await fetchCapped(target, {
        headers: { accept: 'text/plain;version=0.0.4' },
        timeoutMs: limits.timeoutMs,
        maxBodyBytes: limits.maxBodyBytes,
        agent,
        signal,
        onSocket: (socket) => (connection = connections.track(socket)),
        onChunk,
      });
      const announced = exchanged.headers?.['keep-alive'];
      connections.serverAnnounced(typeof announced === 'string' ? announced : undefined);
      return { exchanged, connection };
    } finally {
      // The keep-alive request only keeps the socket open; what it read is not a sample. A GET,
      // not a HEAD: Node reads a HEAD answer without content-length (a hand-written /metrics)
      // as ending with the connection, and would not keep it.
      connections.idle(() => void exchange(connections.closing.signal, discard));
    }
  };
  return exchange;
}

/** A server announcing `Keep-Alive: timeout=0` (under a second) still gets no more than 10 keep-alive requests a second. */
const MIN_HEARTBEAT_MS = 100;

/** The keep-alive request's answer is not a sample: its body is read and dropped. */
const discard = (): void => undefined;

/**
 * Which socket carried each exchange, and the keep-alive requests that stop the server from
 * closing it while the probe is idle. Node servers close an idle connection after
 * keepAliveTimeout (5 s by default, often less; they announce it as `Keep-Alive: timeout=N`):
 * a connection re-opened between two scrapes may reach another worker and costs an interval.
 */
export class PinnedConnection {
  readonly closing = new AbortController();
  private readonly ids = new WeakMap<net.Socket, number>();
  private lastId = 0;
  /** The socket of the latest exchange, while it is open. */
  private live: net.Socket | undefined;
  private inFlight = 0;
  private timer: NodeJS.Timeout | undefined;
  private announcedMs: number | undefined;

  constructor(private readonly keepaliveMs: number) {}

  track(socket: net.Socket): number {
    let id = this.ids.get(socket);
    if (id === undefined) {
      id = ++this.lastId;
      this.ids.set(socket, id);
      socket.once('close', () => {
        if (this.live === socket) this.live = undefined;
      });
    }
    if (!socket.destroyed) this.live = socket;
    return id;
  }

  busy(): void {
    this.inFlight += 1;
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** `Keep-Alive: timeout=N` (seconds): the server closes idle connections after N s or a little more. */
  serverAnnounced(header: string | undefined): void {
    const seconds = header === undefined ? undefined : /(?:^|,)\s*timeout=(\d+)/i.exec(header)?.[1];
    if (seconds !== undefined) this.announcedMs = Number(seconds) * 1000;
  }

  /** After an exchange: once nothing is in flight, keeps the live connection busy every so often. */
  idle(keepAlive: () => void): void {
    this.inFlight -= 1;
    // A socket destroyed by a failed exchange is not kept alive: a keep-alive request would only
    // open a new connection, which the next scrape re-bases on anyway.
    if (this.inFlight > 0 || this.closing.signal.aborted || this.live === undefined || this.live.destroyed) return;
    const delay = this.announcedMs === undefined ? this.keepaliveMs : Math.min(this.keepaliveMs, Math.max(MIN_HEARTBEAT_MS, this.announcedMs / 2));
    this.timer = setTimeout(keepAlive, delay);
    // A probe waiting to keep a connection alive must not keep the daemon alive.
    this.timer.unref();
  }

  close(): void {
    this.closing.abort();
    clearTimeout(this.timer);
  }
}
