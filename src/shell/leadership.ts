/**
 * Which of several guards sharing one store acts: the lease loop (DESIGN §7 Storage).
 *
 * Every `ttl/3` the leader renews its lease (a compare-and-PEXPIRE in Redis) and a standby tries
 * to take it (SET NX PX). The leader counts its lease as valid until `ttl` minus a margin after
 * the start of its last successful renewal — never longer than Redis keeps the key — so it has
 * stopped acting before any standby can take over. A renewal that fails for that long, or that
 * finds the lease gone, ends the leadership at once: `lost` is called and the term's signal aborts
 * (the running rollback step stops; its successor re-runs it).
 *
 * Each attempt also tells the guard whether the store answered: the lease loop is what talks to
 * the store every few seconds, whatever the guard is doing.
 */
import { errorMessage } from '../errors.js';
import type { Logger } from '../log.js';
import type { Lease, StateStore } from '../store/state-store.js';
import type { Clock } from './clock.js';

export interface LeadershipHooks {
  /** This guard just took the lease: reload, resume, then act. A throw gives the lease back. */
  gained(lease: Lease): Promise<void>;
  /** This guard must stop acting now. */
  lost(why: string): void;
  /** Whether the store answered the last lease call (called after every attempt). */
  storeAnswered(up: boolean, error?: unknown): void;
}

export interface LeadershipView {
  leader: boolean;
  /** The lease as last seen: this guard's, or the other holder's. */
  holder: string | null;
  token: number | null;
  /** The guarded instance (config `host_id`) this lease is for. */
  hostId: string | null;
}

/** Margin between the leader's own view of its lease and Redis's expiry of it. */
function marginMs(ttlMs: number): number {
  return Math.max(Math.floor(ttlMs / 10), 50);
}

export class Leadership {
  private lease: Lease | null = null;
  private validUntil = 0;
  private seen: Lease | null = null;
  private term = new AbortController();
  private readonly stopping = new AbortController();
  private loop: Promise<void> | null = null;
  private hooks: LeadershipHooks | null = null;
  /**
   * Ends the leadership when the lease runs out locally without a renewal (e.g. a renewal hanging
   * on the network): a sleep on the guard's clock, aborted when the lease is extended or dropped.
   */
  private expiry: AbortController | null = null;

  constructor(
    private readonly store: StateStore,
    private readonly options: { ttlMs: number; clock: Clock; log: Logger; hostId: string },
  ) {}

  /** Whether this guard holds a lease it may still trust. */
  get isLeader(): boolean {
    return this.lease !== null && this.options.clock.now() < this.validUntil;
  }

  /** Aborts when the current term of leadership ends. */
  get signal(): AbortSignal {
    return this.term.signal;
  }

  get view(): LeadershipView {
    const lease = this.isLeader ? this.lease : this.seen;
    return { leader: this.isLeader, holder: lease?.holder ?? null, token: lease?.token ?? null, hostId: this.options.hostId };
  }

  /** First attempt, before the guard starts: resolves to whether this guard leads. No hooks run. */
  async tryAcquire(): Promise<boolean> {
    await this.attempt(false);
    return this.isLeader;
  }

  /** Runs the loop in the background until stop(). */
  run(hooks: LeadershipHooks): void {
    this.hooks = hooks;
    this.loop = (async () => {
      const { clock, ttlMs } = this.options;
      while (!this.stopping.signal.aborted) {
        const wait = this.lease ? Math.min(ttlMs / 3, Math.max(0, this.validUntil - clock.now())) : ttlMs / 3;
        await clock.sleep(wait, this.stopping.signal);
        if (this.stopping.signal.aborted) break;
        await this.attempt(true);
      }
    })();
  }

  /**
   * Before each rollback step: throws unless this guard still leads, asking the store (a round
   * trip) when it can, so a step never starts on a lease that was lost since the last renewal.
   */
  async confirm(): Promise<void> {
    if (!this.isLeader) throw new Error(this.lease ? 'the lease expired before it could be renewed' : 'this guard does not hold the lease');
    if (!this.store.leaseHolder) return;
    const current = await this.store.leaseHolder();
    if (!current || current.holder !== this.lease!.holder || current.token !== this.lease!.token) {
      this.lose(`the lease is now held by ${current ? `${current.holder} (token ${current.token})` : 'nobody'}`);
      throw new Error('this guard no longer holds the lease');
    }
  }

  /** Ends leadership now, from the guard's side (e.g. a write refused as not the leader's). */
  lose(why: string): void {
    this.disarm();
    if (this.lease === null) return;
    this.seen = null;
    this.lease = null;
    this.validUntil = 0;
    this.term.abort(new Error(`lease lost: ${why}`));
    this.options.log.warn(`lease lost: ${why}; not acting until it is regained`, { component: 'lease' });
    this.hooks?.lost(why);
  }

  /** Stops the loop; hands the lease over (when `release`) so a standby takes over at once. */
  async stop(options: { release: boolean }): Promise<void> {
    this.stopping.abort();
    await this.loop;
    this.disarm();
    if (options.release && this.lease) {
      await this.store.releaseLease?.().catch((error: unknown) =>
        this.options.log.warn('lease not released; a standby takes over when it expires', { component: 'lease', error: errorMessage(error) }),
      );
      this.lease = null;
    }
  }

  /** The lease is trusted until `validUntil`; past it, leadership ends even if no call returns. */
  private extend(validUntil: number): void {
    this.validUntil = validUntil;
    this.disarm();
    const expiry = (this.expiry = new AbortController());
    void this.options.clock.sleep(Math.max(0, validUntil - this.options.clock.now()), expiry.signal).then(() => {
      if (!expiry.signal.aborted) this.lose('it could not be renewed in time');
    });
  }

  private disarm(): void {
    this.expiry?.abort();
    this.expiry = null;
  }

  private markStore(up: boolean, error: unknown): void {
    this.hooks?.storeAnswered(up, error);
  }

  private async attempt(runHooks: boolean): Promise<void> {
    const { clock, ttlMs, log } = this.options;
    const started = clock.now();
    if (this.lease) {
      let renewed: boolean;
      try {
        renewed = (await this.store.renewLease?.(ttlMs)) ?? true;
      } catch (error) {
        this.markStore(false, error);
        if (clock.now() >= this.validUntil) this.lose('it could not be renewed in time: the store does not answer');
        return;
      }
      this.markStore(true, null);
      if (renewed) this.extend(started + ttlMs - marginMs(ttlMs));
      else this.lose('it expired or was taken by another guard');
      return;
    }
    let lease: Lease | null;
    try {
      // A store without a lease API is this guard's alone: it always leads.
      lease = this.store.acquireLease ? await this.store.acquireLease(ttlMs) : { token: 0, holder: 'this guard' };
      if (!lease) this.seen = (await this.store.leaseHolder?.()) ?? null;
    } catch (error) {
      this.markStore(false, error);
      return;
    }
    this.markStore(true, null);
    if (!lease) return;
    this.lease = lease;
    this.seen = lease;
    this.term = new AbortController();
    this.extend(started + ttlMs - marginMs(ttlMs));
    log.info('lease acquired: this guard acts', { component: 'lease', holder: lease.holder, fence: lease.token });
    if (!runHooks || !this.hooks) return;
    try {
      await this.hooks.gained(lease);
    } catch (error) {
      log.error('could not take over after acquiring the lease; giving it back', { component: 'lease', error: errorMessage(error) });
      this.lose('the take-over failed');
      await this.store.releaseLease?.().catch(() => undefined);
    }
  }
}
