/**
 * Steady traffic on loopback with a record of every request (when it was sent and answered, how
 * it failed, which version answered), and what users saw of a fault in it: when the previous
 * version was back for good, and how many requests failed on the way.
 *
 * Like demo/load.ts (keep-alive agent, 2 s timeout, 200 = ok), but it keeps each request so
 * the bench can cut the timeline at the fault, the rollback decision and the recovery. Bounded:
 * it stops by itself after `maxMs`.
 */
import http from 'node:http';

/** ok; http: answered with a status other than 200; timeout: no answer in time; conn: refused or reset. */
export type Outcome = 'ok' | 'http' | 'timeout' | 'conn';

export interface RequestRecord {
  sentAt: number;
  doneAt: number;
  outcome: Outcome;
  status?: number;
  version?: string;
}

export interface Traffic {
  readonly records: RequestRecord[];
  stop(): Promise<RequestRecord[]>;
}

/** Sends `rate` GET requests per second to `url` (evenly spaced, catching up after a stall). */
export function startTraffic(url: string, rate: number, maxMs: number, timeoutMs = 2000): Traffic {
  const records: RequestRecord[] = [];
  const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });
  const pending = new Set<Promise<void>>();
  const started = Date.now();
  let sent = 0;
  const one = () =>
    new Promise<void>((resolve) => {
      const sentAt = Date.now();
      let settled = false;
      const finish = (outcome: Outcome, extra: Partial<RequestRecord> = {}) => {
        if (settled) return;
        settled = true;
        records.push({ sentAt, doneAt: Date.now(), outcome, ...extra });
        resolve();
      };
      const req = http.get(url, { agent, timeout: timeoutMs }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          let version: string | undefined;
          try {
            version = (JSON.parse(Buffer.concat(chunks).toString()) as { version?: string }).version;
          } catch {
            // not JSON
          }
          const status = res.statusCode ?? 0;
          finish(status === 200 ? 'ok' : 'http', { status, ...(version ? { version } : {}) });
        });
        res.on('error', () => finish('conn'));
      });
      // A hard deadline from the send, whether or not a socket was free.
      const deadline = setTimeout(() => req.destroy(new Error('timeout')), timeoutMs);
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', (error) => finish(error.message === 'timeout' ? 'timeout' : 'conn'));
      req.on('close', () => clearTimeout(deadline));
    });
  const timer = setInterval(() => {
    const now = Date.now();
    if (now - started > maxMs) return void clearInterval(timer);
    const due = Math.floor(((now - started) * rate) / 1000);
    // Catch up at most one interval's worth: a stalled bench must not fire a burst.
    for (let i = 0; sent < due && i < 3; i++) {
      sent++;
      const p = one().finally(() => pending.delete(p));
      pending.add(p);
    }
    if (sent < due) sent = due;
  }, Math.max(1, Math.floor(1000 / rate / 2)));
  return {
    records,
    async stop() {
      clearInterval(timer);
      await Promise.all(pending);
      agent.destroy();
      return records.sort((a, b) => a.sentAt - b.sentAt);
    },
  };
}

export interface Impact {
  /** When the previous version answered for good (answer time of the first request of the final all-good run). */
  recoveredAt: number | null;
  /** Requests answered (or failed) at or after the fault that failed. */
  failedAfterFault: number;
  failedByOutcome: Partial<Record<Outcome, number>>;
  /** Requests sent after the fault answered by the bad version with 200 (slow, degraded). */
  sentAfterFault: number;
}

/**
 * What users saw from `faultAt` on. Good = answered 200 by `goodVersion`. Recovery is the answer
 * time of the first request after which every request sent was good (so a mixed phase, some
 * instances back and some not, is not recovery yet); null if the run never ended good.
 */
export function impactOf(records: readonly RequestRecord[], faultAt: number, goodVersion: string): Impact {
  const sorted = [...records].sort((a, b) => a.sentAt - b.sentAt);
  const after = sorted.filter((r) => r.doneAt >= faultAt);
  const failed = after.filter((r) => r.outcome !== 'ok');
  const byOutcome: Partial<Record<Outcome, number>> = {};
  for (const r of failed) byOutcome[r.outcome] = (byOutcome[r.outcome] ?? 0) + 1;
  const good = (r: RequestRecord) => r.outcome === 'ok' && r.version === goodVersion;
  let firstOfRun: RequestRecord | null = null;
  for (let i = sorted.length - 1; i >= 0; i--) {
    const r = sorted[i]!;
    if (r.sentAt < faultAt) break;
    if (!good(r)) break;
    firstOfRun = r;
  }
  // The final run must have been reached after the fault and reach the end of the recording.
  const last = sorted.at(-1);
  const recoveredAt = firstOfRun && last && good(last) ? firstOfRun.doneAt : null;
  return { recoveredAt, failedAfterFault: failed.length, failedByOutcome: byOutcome, sentAfterFault: sorted.filter((r) => r.sentAt >= faultAt).length };
}

/** Failed requests answered in [from, to] whose outcome is not one of `except`. */
export function failuresBetween(records: readonly RequestRecord[], from: number, to: number, except: readonly Outcome[] = []): number {
  return records.filter((r) => r.outcome !== 'ok' && r.doneAt >= from && r.doneAt <= to && !except.includes(r.outcome)).length;
}
