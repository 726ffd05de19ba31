/**
 * Crash watch on the pm2 bus: an unplanned exit of the guarded app inside a window is a crash
 * breach at once (after `crash_exits` exits within `crash_window`; an errored or over-limit app
 * at the first), rather than three failed probe samples later.
 */
import { errorMessage } from '../../errors.js';
import type { Pm2ProcessEvent } from '../../pm2/client.js';
import type { GuardContext } from './context.js';

export class CrashWatch {
  /** When the app exited unplanned, within the crash window. */
  private exits: number[] = [];
  private unsubscribe: (() => void) | null = null;

  constructor(private readonly ctx: GuardContext) {}

  /** Subscribes to the pm2 bus, when pm2 is configured; a bus that cannot be reached is logged, not fatal. */
  async start(): Promise<void> {
    const { pm2, config, log } = this.ctx.deps;
    if (!pm2 || !config.pm2) return;
    try {
      await pm2.connect();
      this.unsubscribe = await pm2.onProcessEvent((event) => void this.onEvent(event));
      log.info('watching pm2 events', { component: 'pm2', app: config.pm2.app });
    } catch (error) {
      // Probes still see a crash, three samples later; say so rather than refuse to guard.
      log.error('pm2 event bus unavailable: crashes are seen by probes only', { component: 'pm2', error: errorMessage(error) });
    }
  }

  stop(): void {
    this.unsubscribe?.();
  }

  /** A window opened or closed: exits before it are another version's. */
  reset(): void {
    this.exits = [];
  }

  private async onEvent(event: Pm2ProcessEvent): Promise<void> {
    const { config, clock, log } = this.ctx.deps;
    const crash = config.pm2;
    if (!crash || event.app !== crash.app || event.manually) return;
    if (event.event !== 'exit' && event.event !== 'restart overlimit' && event.event !== 'errored') return;
    const now = clock.now();
    this.exits = [...this.exits.filter((t) => now - t < crash.crash_window), now];
    log.warn('app exited unexpectedly', { component: 'pm2', app: event.app, event: event.event, exits: this.exits.length });
    if (this.exits.length < crash.crash_exits && event.event === 'exit') return;
    await this.ctx.machine.dispatch({ type: 'crashed', detail: `${event.app} ${event.event} (${this.exits.length} unplanned exits within ${crash.crash_window}ms)`, at: now });
  }
}
