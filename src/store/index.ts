/**
 * Opens the state store named by the config's `store.type`: the embedded file store, or Redis
 * (several guards per instance with a lease; fleets of hosts sharing verdicts).
 */
import { hostname } from 'node:os';
import type { Config } from '../config/schema.js';
import { readPassword } from '../config/secrets.js';
import { FileStore } from './file-store.js';
import type { FleetBoard, StateStore } from './state-store.js';

export interface OpenedStore {
  store: StateStore;
  /** This host's id (config `host_id`, default the machine's hostname). */
  hostId: string;
  /** Set when guards share the store: only the lease holder may act. */
  lease?: { ttlMs: number };
  /** Set for a fleet: the hosts' verdicts on each release. */
  fleet?: FleetBoard;
  close(): Promise<void>;
}

/** The machine's hostname made a valid host_id (letters, digits, `.`, `_`, `-`). */
export function defaultHostId(): string {
  const cleaned = hostname().replace(/[^A-Za-z0-9._-]/g, '-').replace(/^[^A-Za-z0-9]+/, '').slice(0, 128);
  return cleaned || 'host';
}

export async function openStore(config: Config): Promise<OpenedStore> {
  const hostId = config.host_id ?? defaultHostId();
  const settings = config.store;
  if (settings.type === 'file') {
    return { store: await new FileStore(config.state_dir).open(), hostId, close: () => Promise.resolve() };
  }
  // Loaded only for a redis store: ioredis costs a guard on the file store ~20 MB of RSS.
  const { RedisStore } = await import('./redis-store.js');
  const store = await new RedisStore({
    host: settings.host,
    port: settings.port,
    password: readPassword('store', settings),
    db: settings.db,
    keyPrefix: settings.key_prefix ?? `release-guard:${config.service}:`,
    hostId,
    // A command that hangs must not outlast a third of the lease.
    commandTimeoutMs: Math.max(100, Math.min(2000, Math.floor(settings.lease_ttl / 3))),
  }).open();
  return {
    store,
    hostId,
    lease: { ttlMs: settings.lease_ttl },
    ...(settings.fleet ? { fleet: store } : {}),
    close: () => store.close(),
  };
}
