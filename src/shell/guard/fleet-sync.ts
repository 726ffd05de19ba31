/**
 * Fleets, every tick (1 s) while acting. The protocol, deliberately small (no cluster protocol,
 * just a shared table in Redis, polled):
 *
 * - Each host (`host_id`; its own state key and lease) writes its verdict on release N into the
 *   hash `fleet:release:N` (host -> guarding | clean | rolled_back | not_promoted), as a fenced
 *   write of the acting guard: `guarding` when its window opens, `rolled_back` when it decides a
 *   rollback (any trigger), `clean` when its window ended clean, `not_promoted` when the window
 *   ended without promotion (breach while paused, blind, or the fleet wait ran out).
 * - Any other host's `rolled_back` on the release running here -> `fleetRolledBack` (trigger
 *   `fleet`, the reason names the host): rolled back here too, subject to pause, veto and limits.
 * - A host whose window ended clean keeps guarding and promotes (`fleetCleared`) only when every
 *   member says `clean`. Members: the hosts alive now (a guard holds their lease) plus every host
 *   that reported on N. A host that is down and never reported on N is not waited for; one that
 *   reported `guarding` and then went silent is waited for.
 * - A host that never reports `clean` (still deploying, dead, blind) makes the others wait at
 *   most `fleet_wait`; then each ends its window without promoting (N keeps running, the previous
 *   version stays known-good, a critical notification) and says `not_promoted`, so no host
 *   promotes N afterwards. A `rolled_back` arriving later still rolls N back on every host
 *   where it runs and is not the settled known-good version.
 * - Redis unreachable: nobody acts (no lease). A `rolled_back` report lost to a failure right
 *   after the decision was saved is made again here, while the rollback is still in view.
 */
import type { FleetVerdict } from '../../core/types.js';
import { errorMessage } from '../../errors.js';
import type { GuardContext } from './context.js';

const ROLLBACK_IN_VIEW = ['rolling_back', 'verifying', 'rolled_back', 'failed'];

export class FleetSync {
  /** Hosts whose clean window this host is still waiting for. */
  waiting: string[] = [];

  constructor(private readonly ctx: GuardContext) {}

  /** The fleetVerdict effect: this host's verdict on a release, for the others to read. */
  async report(version: string, verdict: FleetVerdict): Promise<void> {
    const { fleet, clock, log } = this.ctx.deps;
    if (!fleet) return;
    try {
      await fleet.report(version, verdict, clock.now());
      log.info(`fleet: reported ${verdict} for ${version}`, { component: 'fleet', host: fleet.hostId, version, verdict });
    } catch (error) {
      log.error('fleet: verdict not reported', { component: 'fleet', version, verdict, error: errorMessage(error) });
    }
  }

  async sync(): Promise<void> {
    const { fleet, clock } = this.ctx.deps;
    const state = this.ctx.machine.state;
    if (!fleet || state.drill) return;
    const rb = state.rollback;
    if (rb && ROLLBACK_IN_VIEW.includes(state.phase)) {
      const mine = await fleet.read(rb.from).then((b) => b.verdicts[fleet.hostId]?.verdict ?? 'none', () => 'unknown');
      if (mine !== 'unknown' && mine !== 'rolled_back') await this.report(rb.from, 'rolled_back');
    }
    const version = state.phase === 'guarding' ? state.release!.version : state.running;
    if (!version) return;
    let board;
    try {
      board = await fleet.read(version);
    } catch (error) {
      this.ctx.ha.markStore(false, error);
      return;
    }
    const rolledBack = Object.entries(board.verdicts).find(([host, v]) => host !== fleet.hostId && v.verdict === 'rolled_back');
    if (rolledBack) {
      await this.ctx.machine.dispatch({ type: 'fleetRolledBack', version, host: rolledBack[0], at: clock.now() });
      return;
    }
    if (state.fleetWait?.version !== version) {
      this.waiting = [];
      return;
    }
    const members = new Set([fleet.hostId, ...board.live, ...Object.keys(board.verdicts)]);
    this.waiting = [...members].filter((host) => board.verdicts[host]?.verdict !== 'clean').sort();
    if (this.waiting.length === 0) await this.ctx.machine.dispatch({ type: 'fleetCleared', version, at: clock.now() });
  }
}
