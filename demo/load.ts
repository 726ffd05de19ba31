/**
 * A steady request load on loopback, to show what users saw during a bad release: how many
 * requests failed, and when the first and last failures were. Bounded: it stops by itself.
 */
import http from 'node:http';

export interface LoadStats {
  sent: number;
  ok: number;
  failed: number;
  firstFailureAt: number | null;
  lastFailureAt: number | null;
  /** Versions seen in successful answers, in order of first sight. */
  versions: string[];
}

export interface Load {
  stats: LoadStats;
  stop(): Promise<LoadStats>;
}

/** Sends `rate` GET requests per second to `url` until stopped or `maxMs` has passed. */
export function startLoad(url: string, rate: number, maxMs: number, timeoutMs = 2000): Load {
  const stats: LoadStats = { sent: 0, ok: 0, failed: 0, firstFailureAt: null, lastFailureAt: null, versions: [] };
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  const pending = new Set<Promise<void>>();
  const started = Date.now();
  const fail = () => {
    const now = Date.now();
    stats.failed++;
    stats.firstFailureAt ??= now;
    stats.lastFailureAt = now;
  };
  const one = () =>
    new Promise<void>((resolve) => {
      stats.sent++;
      const req = http.get(url, { agent, timeout: timeoutMs }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          if (res.statusCode === 200) {
            stats.ok++;
            try {
              const version = (JSON.parse(Buffer.concat(chunks).toString()) as { version?: string }).version;
              if (version && !stats.versions.includes(version)) stats.versions.push(version);
            } catch {
              // A 200 with a non-JSON body still counts as served.
            }
          } else fail();
          resolve();
        });
        res.on('error', () => (fail(), resolve()));
      });
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', () => (fail(), resolve()));
    });
  const timer = setInterval(() => {
    if (Date.now() - started > maxMs) return void clearInterval(timer);
    const p = one().finally(() => pending.delete(p));
    pending.add(p);
  }, 1000 / rate);
  return {
    stats,
    async stop() {
      clearInterval(timer);
      await Promise.all(pending);
      agent.destroy();
      return stats;
    },
  };
}
