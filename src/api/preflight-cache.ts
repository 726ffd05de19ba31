/**
 * `GET /preflight` without giving anyone who can reach the port a way to make the guard work:
 * every step's readiness check talks to MySQL with the password, runs `git ls-remote`, kubectl,
 * docker, pm2 RPC. So the API runs at most one preflight at a time (concurrent requests share the
 * running one) and answers from the last result for `maxAgeMs`; a caller with the token may ask for
 * a fresh run (it still joins a run already under way rather than starting a second).
 */
import type { Clock } from '../shell/clock.js';
import type { PreflightView } from './types.js';

/** What the API answers: the result, and whether it came from the cache. */
export type SharedPreflightView = PreflightView & {
  /** True when this answer is a result taken for an earlier request (see checkedAt). */
  cached: boolean;
  /** How long a result is reused, in seconds (server.preflight_cache). */
  maxAgeSeconds: number;
};

export class SharedPreflight {
  private running: Promise<PreflightView> | null = null;
  private last: { view: PreflightView; at: number } | null = null;

  constructor(
    private readonly check: () => Promise<PreflightView>,
    private readonly options: { maxAgeMs: number; clock: Clock },
  ) {}

  async get(request: { fresh?: boolean } = {}): Promise<SharedPreflightView> {
    const maxAgeSeconds = this.options.maxAgeMs / 1000;
    const last = this.last;
    if (!request.fresh && this.running === null && last !== null && this.options.clock.now() - last.at < this.options.maxAgeMs) {
      return { ...last.view, cached: true, maxAgeSeconds };
    }
    const joined = this.running !== null;
    const view = await (this.running ?? this.start());
    return { ...view, cached: joined, maxAgeSeconds };
  }

  private start(): Promise<PreflightView> {
    const run = this.check().then((view) => {
      // Stamped when the run ended: a result is reused for maxAgeMs after it was complete.
      this.last = { view, at: this.options.clock.now() };
      return view;
    });
    this.running = run;
    // Cleared however the run ends; a failed run is not cached (the next request tries again).
    void run.then(
      () => (this.running = null),
      () => (this.running = null),
    );
    return run;
  }
}
