/**
 * The shell of `release --wait`: announces the release, polls /status once a second, prints
 * progress (on a phase change, and every 10 s while nothing changes) to stderr and the outcome
 * to stdout, and returns the exit code judgeWindow gives. With `json`, the outcome is one JSON
 * object on stdout ({version, outcome, code, message}: stable names for scripts); progress stays
 * on stderr either way.
 */
import type { ApiClient } from '../api/client.js';
import { ApiError, errorMessage } from '../errors.js';
import { judgeWindow, WAIT_EXIT, waitOutcome } from './release-outcome.js';

const POLL_MS = 1000;
const QUIET_PROGRESS_MS = 10_000;
/** How long the daemon may stay unreachable (a restart) before the window is given up on. */
const UNREACHABLE_MS = 60_000;

export async function waitForRelease(
  client: ApiClient,
  version: string,
  options: { by?: string; timeoutMs: number | null; json?: boolean; out: (text: string) => void; err: (text: string) => void; sleep?: (ms: number) => Promise<void> },
): Promise<number> {
  const finish = (code: number, message: string): number => {
    options.out(options.json ? JSON.stringify({ version, outcome: waitOutcome(code), code, message }) : message);
    return code;
  };
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
  // The daemon's clock, not ours: a rollback record of this window finishes after this instant.
  // A daemon not reached at all gives no verdict (4): exit 1 would read as "rolled back".
  let since: number;
  try {
    since = Date.parse((await client.status()).now);
  } catch (error) {
    return finish(WAIT_EXIT.noVerdict, `release ${version} not followed: ${errorMessage(error)}`);
  }
  try {
    await client.release(version, options.by);
    options.err(`release ${version} announced; following its window\n`);
  } catch (error) {
    // Detected by the guard already: follow that window. Any other refusal leaves no window.
    if (!(error instanceof ApiError && /already under guard/.test(error.message))) {
      return finish(WAIT_EXIT.noVerdict, `release ${version} not guarded: ${errorMessage(error)}`);
    }
    options.err(`release ${version} is already under guard; following its window\n`);
  }
  const started = Date.now();
  let lastProgress = '';
  let lastPrintedAt = 0;
  let unreachableSince: number | null = null;
  for (;;) {
    if (options.timeoutMs !== null && Date.now() - started >= options.timeoutMs) {
      return finish(WAIT_EXIT.noVerdict, `gave up after ${Math.round(options.timeoutMs / 1000)} s: no verdict on ${version} yet`);
    }
    let step;
    try {
      step = judgeWindow(await client.status(), version, since);
      unreachableSince = null;
    } catch (error) {
      unreachableSince ??= Date.now();
      if (Date.now() - unreachableSince >= UNREACHABLE_MS) {
        return finish(WAIT_EXIT.noVerdict, `lost the daemon for ${UNREACHABLE_MS / 1000} s (${errorMessage(error)}): no verdict on ${version}`);
      }
      options.err(`daemon not answering (${errorMessage(error)}); retrying\n`);
      await sleep(POLL_MS);
      continue;
    }
    if (step.done) {
      return finish(step.code, step.message);
    }
    const changed = step.progress.replace(/\d+ s of the window left/, '') !== lastProgress.replace(/\d+ s of the window left/, '');
    if (changed || Date.now() - lastPrintedAt >= QUIET_PROGRESS_MS) {
      options.err(`${step.progress}\n`);
      lastProgress = step.progress;
      lastPrintedAt = Date.now();
    }
    await sleep(POLL_MS);
  }
}
