/** `status --watch`: the refresh loop and how each frame is drawn. */
import type { ApiClient } from '../api/client.js';
import { formatDuration } from '../config/duration.js';
import { GuardError } from '../errors.js';
import { formatStatus } from './format.js';

export interface WatchOptions {
  intervalMs: number;
  /** Redraw in place (a terminal) rather than print frame after frame. */
  tty: boolean;
  /** One compact JSON view per line. */
  json: boolean;
  color: boolean;
  out(text: string): void;
  err(text: string): void;
}

/**
 * `status --watch`: asks /status every interval until SIGINT or SIGTERM (then resolves, exit 0).
 * On a terminal each frame is drawn over the last one (cursor home, each line cleared to its end,
 * the rest of the screen cleared: no flicker, no scrollback flood); elsewhere frames follow one
 * another under a time header. A daemon that does not answer is shown as such and asked again:
 * the watch outlives a daemon restart.
 */
export async function watchStatus(client: ApiClient, options: WatchOptions): Promise<void> {
  const { out, err } = options;
  const CSI = '\u001b[';
  const grey = (text: string) => (options.color ? `${CSI}90m${text}${CSI}0m` : text);
  const stop = new AbortController();
  const stopped = new Promise<null>((resolve) => stop.signal.addEventListener('abort', () => resolve(null), { once: true }));
  const onSignal = () => stop.abort();
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  if (options.tty) out(`${CSI}?25l${CSI}2J`); // hide the cursor, clear the screen once
  try {
    while (!stop.signal.aborted) {
      let body = '';
      let failure: string | null = null;
      try {
        const view = await Promise.race([client.status(), stopped]);
        if (view === null) break;
        body = options.json ? `${JSON.stringify(view)}\n` : formatStatus(view, { color: options.color });
      } catch (error) {
        if (!(error instanceof GuardError)) throw error;
        failure = `release-guard: ${error.message}`;
      }
      const stamp = `${new Date().toISOString().slice(11, 19)}Z`;
      const every = formatDuration(options.intervalMs);
      if (options.json) {
        if (failure === null) out(body);
        else err(`${failure}\n`);
      } else if (options.tty) {
        const lines = failure === null ? body.replace(/\n$/, '').split('\n') : [failure, grey('(asking again)')];
        lines.push('', grey(`${failure === null ? 'updated' : 'no answer at'} ${stamp}, every ${every}; Ctrl-C to stop`));
        out(`${CSI}H${lines.map((line) => `${line}${CSI}K`).join('\n')}\n${CSI}J`);
      } else {
        out(`${grey(`--- ${stamp} (every ${every}; Ctrl-C to stop) ---`)}\n`);
        if (failure === null) out(body);
        else err(`${failure}\n`);
      }
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([new Promise((resolve) => (timer = setTimeout(resolve, options.intervalMs))), stopped]);
      clearTimeout(timer);
    }
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    if (options.tty) out(`${CSI}?25h`); // the cursor back
  }
}
