/**
 * The pm2 bus (pm2's pub socket): one shared socket per client for every subscriber of process
 * events and of the daemon's own log lines, opened on the first subscription and closed with the
 * last. pm2's own bus handling cannot close a reconnecting socket, so this owns it.
 */
import type { Pm2ProcessEvent } from './client.js';
import { createEventMapper } from './pm2-events.js';
import { closeSocket, type AxonBus, type AxonSocket, type Pm2Api } from './pm2-rpc.js';

const BUS_CONNECT_TIMEOUT_MS = 10_000;

/** The shared bus socket and its subscribers: process events, and the daemon's own log lines. */
interface Subscribers {
  socket: AxonSocket;
  listeners: Set<(event: Pm2ProcessEvent) => void>;
  logListeners: Set<(line: string) => void>;
}

export class Pm2Bus {
  private bus: Subscribers | null = null;
  private opening: Promise<Subscribers> | null = null;

  /** `connect` connects the RPC client first: pm2 opens the bus only for a connected client. */
  constructor(
    private readonly api: Pm2Api,
    private readonly connect: () => Promise<void>,
  ) {}

  /**
   * All subscribers share one bus socket, opened on the first subscription and closed when the
   * last one unsubscribes (or on disconnect/killDaemon). It reconnects by itself if the daemon
   * restarts. Listeners run inside pm2's socket handler: they must not throw.
   */
  async onProcessEvent(listener: (event: Pm2ProcessEvent) => void): Promise<() => void> {
    const bus = await this.open();
    bus.listeners.add(listener);
    return () => this.unsubscribe(bus, () => bus.listeners.delete(listener));
  }

  /** Subscribes to the daemon's own log lines (`log:PM2`), one line per call, without its newline. */
  async onDaemonLog(listener: (line: string) => void): Promise<() => void> {
    const bus = await this.open();
    bus.logListeners.add(listener);
    return () => this.unsubscribe(bus, () => bus.logListeners.delete(listener));
  }

  private unsubscribe(bus: Subscribers, remove: () => void): void {
    remove();
    // The last subscriber closes the socket, so an idle client leaves no handle behind.
    if (bus.listeners.size === 0 && bus.logListeners.size === 0 && this.bus === bus) {
      this.bus = null;
      closeSocket(bus.socket);
    }
  }

  private open(): Promise<Subscribers> {
    if (this.bus) return Promise.resolve(this.bus);
    this.opening ??= this.doOpen().finally(() => {
      this.opening = null;
    });
    return this.opening;
  }

  private async doOpen(): Promise<Subscribers> {
    await this.connect();
    const { bus, socket } = await new Promise<{ bus: AxonBus; socket: AxonSocket }>((resolve, reject) => {
      // launchBus calls back only once connected and never reports a failure, so bound it.
      const timer = setTimeout(() => {
        const pending = this.api.Client.sub_sock as AxonSocket | null;
        this.detachBusFromPm2();
        if (pending) closeSocket(pending);
        reject(new Error(`pm2 bus: no connection to ${this.api.pm2_home}/pub.sock within ${BUS_CONNECT_TIMEOUT_MS} ms`));
      }, BUS_CONNECT_TIMEOUT_MS);
      this.api.launchBus((error, launched, launchedSocket) => {
        clearTimeout(timer);
        if (error || !launched || !launchedSocket) {
          reject(new Error('pm2 bus: could not subscribe to process events', { cause: error }));
          return;
        }
        resolve({ bus: launched, socket: launchedSocket });
      });
    });
    // pm2's own disconnectBus cannot close a socket that is reconnecting (it reports "already
    // being closed" and the retry timer keeps Node alive) and its timeout path throws; this
    // client owns the bus socket from here on and closes it itself.
    this.detachBusFromPm2();
    const entry: Subscribers = { socket, listeners: new Set(), logListeners: new Set() };
    const toProcessEvent = createEventMapper();
    bus.on('process:event', (packet) => {
      const event = toProcessEvent(packet);
      if (!event) return;
      for (const listener of entry.listeners) listener(event);
    });
    bus.on('log:PM2', (packet) => {
      if (entry.logListeners.size === 0) return;
      const data = (packet as { data?: unknown } | null)?.data;
      if (typeof data !== 'string') return;
      for (const line of data.split('\n')) if (line) for (const listener of entry.logListeners) listener(line);
    });
    this.bus = entry;
    return entry;
  }

  private detachBusFromPm2(): void {
    this.api.Client.sub = null;
    this.api.Client.sub_sock = null;
  }

  async close(): Promise<void> {
    if (this.opening) await this.opening.catch(() => undefined); // its failure was reported to its caller
    const bus = this.bus;
    this.bus = null;
    if (bus) {
      bus.listeners.clear();
      bus.logListeners.clear();
      closeSocket(bus.socket);
    }
  }
}
