/**
 * The redis store: the state of several guards of one service in one Redis, so that a standby can
 * take over from a dead leader and the hosts of a fleet can share their verdicts on a release.
 *
 * Keys, all under `key_prefix` (default `release-guard:<service>:`), per host (`host_id`, the
 * guarded instance; guards watching the same instance share it):
 *
 *   <host>:state        JSON envelope {rev, fence, holder, savedAt, state}; one SET per snapshot
 *   <host>:baselines    JSON
 *   <host>:lease        JSON {token, holder}, SET NX PX ttl; who may act for this host
 *   <host>:fence        INCR counter: the fencing token of each new lease
 *   <host>:records      sorted set of record ids by finishedAt
 *   <host>:record:<id>  hash {json, markdown, svg}
 *   <host>:drill:<id>   hash {json, markdown}
 *   fleet:hosts         set of the host ids that ever held a lease
 *   fleet:release:<v>   hash host -> JSON {verdict, at}: each host's verdict on release v (30 days)
 *
 * Every write runs as one Lua script that first checks the lease: once this store holds a lease,
 * a write is applied only while the lease key still holds exactly this store's lease (same
 * holder, same token); while it holds none, only while nobody does. A state write is also a
 * compare-and-set on `rev` (the revision this store last read or wrote), and is refused when the
 * stored snapshot carries a newer fencing token: a deposed leader's late write can never
 * overwrite its successor's state. Redis runs each script atomically, so the check and the write
 * cannot be split by another guard.
 *
 * When Redis lost its data (restarted without persistence), a state write finds no snapshot and is
 * accepted: that is how a guard re-syncs the state it kept in memory while Redis was away.
 *
 * Commands fail fast while Redis is unreachable (no offline queue, a command timeout) and the
 * client reconnects in the background, so a Redis outage never blocks the guard.
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { Redis } from 'ioredis';
import type { GuardState, RollbackRecord } from '../core/types.js';
import { errorMessage, StoreError } from '../errors.js';
import type { Baselines, FleetBoard, FleetVerdict, Lease, StateStore } from './state-store.js';
import { parseStoredState, StateRefused } from './state-schema.js';
import { summaryOf, type HistoryPage, type RecordSummary } from '../records/history-page.js';

const RECORD_ID = /^[A-Za-z0-9._-]{1,200}$/;
const FLEET_TTL_S = 30 * 24 * 3600;

export interface RedisStoreOptions {
  host: string;
  port: number;
  password?: string | undefined;
  db: number;
  /** Prefix of every key, e.g. `release-guard:web:`. */
  keyPrefix: string;
  /** The guarded instance this store keeps the state of (config `host_id`). */
  hostId: string;
  /** Who this guard process is, in the lease; default `<hostname>/<pid>/<random>`. */
  holder?: string;
  /** A command not answered within this long fails (default 2000 ms). */
  commandTimeoutMs?: number;
}

/** Background reconnect delay after the n-th failed attempt: 100 ms doubling, capped at 1 s. */
function reconnectDelay(attempt: number): number {
  return Math.min(100 * 2 ** Math.min(Math.max(attempt, 1) - 1, 4), 1000);
}

// Shared by every write: is this store allowed to write? ARGV[1] is the lease value this store
// holds ('' for none). Returns an error reply when it is not.
const LEASE_CHECK = `
local function leaseError(leaseKey, mine)
  local current = redis.call('GET', leaseKey)
  if mine == '' then
    if current then return 'NOT_LEADER another guard holds the lease: ' .. current end
  elseif current ~= mine then
    return 'NOT_LEADER this guard no longer holds the lease (now ' .. tostring(current) .. ')'
  end
  return nil
end
`;

// KEYS: state, lease. ARGV: mine, stateJson, expectedRev, fence, holder, savedAt.
const SAVE_STATE = `${LEASE_CHECK}
local err = leaseError(KEYS[2], ARGV[1])
if err then return redis.error_reply(err) end
local rev = tonumber(ARGV[3])
local current = redis.call('GET', KEYS[1])
if current then
  local envelope = cjson.decode(current)
  local storedFence = tonumber(envelope.fence) or 0
  if storedFence > tonumber(ARGV[4]) then
    return redis.error_reply('FENCED the stored state was written under fencing token ' .. storedFence .. ' > ' .. ARGV[4])
  end
  if tonumber(envelope.rev) ~= rev then
    return redis.error_reply('CONFLICT the stored state is at rev ' .. tostring(envelope.rev) .. ', this guard last saw rev ' .. ARGV[3])
  end
end
local next = rev + 1
redis.call('SET', KEYS[1], '{"rev":' .. next .. ',"fence":' .. ARGV[4] .. ',"holder":' .. cjson.encode(ARGV[5]) .. ',"savedAt":' .. ARGV[6] .. ',"state":' .. ARGV[2] .. '}')
return next
`;

// KEYS: key, lease. ARGV: mine, value.
const FENCED_SET = `${LEASE_CHECK}
local err = leaseError(KEYS[2], ARGV[1])
if err then return redis.error_reply(err) end
redis.call('SET', KEYS[1], ARGV[2])
return 1
`;

// KEYS: hash, index, lease. ARGV: mine, id, score, then field/value pairs.
const FENCED_HASH = `${LEASE_CHECK}
local err = leaseError(KEYS[3], ARGV[1])
if err then return redis.error_reply(err) end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], unpack(ARGV, 4))
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[2])
return 1
`;

// KEYS: lease, fence counter, state, fleet hosts. ARGV: holder, ttlMs, hostId.
// Returns {token, value}; token 0 and the current value when another holder has the lease.
const ACQUIRE = `
local current = redis.call('GET', KEYS[1])
if current then
  local lease = cjson.decode(current)
  if lease.holder == ARGV[1] then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    return {lease.token, current}
  end
  return {0, current}
end
local token = redis.call('INCR', KEYS[2])
local state = redis.call('GET', KEYS[3])
if state then
  -- The counter must stay ahead of every token a snapshot was written with, even if it was lost.
  local fence = tonumber(cjson.decode(state).fence) or 0
  if token <= fence then
    token = fence + 1
    redis.call('SET', KEYS[2], token)
  end
end
local value = '{"token":' .. token .. ',"holder":' .. cjson.encode(ARGV[1]) .. '}'
redis.call('SET', KEYS[1], value, 'NX', 'PX', ARGV[2])
redis.call('SADD', KEYS[4], ARGV[3])
return {token, value}
`;

// KEYS: lease. ARGV: mine, ttlMs.
const RENEW = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
`;

// KEYS: lease. ARGV: mine.
const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`;

// KEYS: fleet release hash, fleet hosts, lease. ARGV: mine, host, verdict json, ttl seconds.
const FLEET_REPORT = `${LEASE_CHECK}
local err = leaseError(KEYS[3], ARGV[1])
if err then return redis.error_reply(err) end
redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('SADD', KEYS[2], ARGV[2])
return 1
`;

interface Envelope {
  rev: number;
  fence: number;
  holder: string;
  savedAt: number;
  state: GuardState;
}

export class RedisStore implements StateStore, FleetBoard {
  readonly hostId: string;
  readonly holder: string;
  private readonly client: Redis;
  private readonly where: string;
  /** The revision of the state this store last read or wrote: the compare-and-set's expectation. */
  private rev = 0;
  /** The lease this store holds, as stored in Redis (its exact value), or null. */
  private lease: { token: number; value: string } | null = null;
  private lastError: string | undefined;
  private everLeased = false;

  constructor(private readonly options: RedisStoreOptions) {
    this.hostId = options.hostId;
    this.holder = options.holder ?? `${hostname()}/${process.pid}/${randomBytes(3).toString('hex')}`;
    this.where = `redis store ${options.host}:${options.port}`;
    this.client = new Redis({
      host: options.host,
      port: options.port,
      ...(options.password !== undefined ? { password: options.password } : {}),
      db: options.db,
      lazyConnect: true,
      // Fail fast while disconnected: a guard must never wait on its store.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      autoResendUnfulfilledCommands: false,
      connectTimeout: options.commandTimeoutMs ?? 2000,
      commandTimeout: options.commandTimeoutMs ?? 2000,
      retryStrategy: reconnectDelay,
    });
    this.client.on('error', (error: unknown) => {
      this.lastError = errorMessage(error);
    });
  }

  /** Connects; fails with a clear error when Redis cannot be reached. */
  async open(): Promise<this> {
    try {
      await this.client.connect();
    } catch (error) {
      this.client.disconnect();
      throw new StoreError(`cannot reach the ${this.where}: ${errorMessage(error)}`, 'store_open', 'start Redis, or check store.host, store.port and the password', { cause: error });
    }
    return this;
  }

  /** Disconnects (after releasing nothing: call releaseLease first for a clean hand-over). */
  async close(): Promise<void> {
    await this.client.quit().catch(() => this.client.disconnect());
  }

  /** The lease this store holds (as far as it knows), or null. */
  get heldLease(): Lease | null {
    return this.lease ? { token: this.lease.token, holder: this.holder } : null;
  }

  private key(name: string, host = this.hostId): string {
    return `${this.options.keyPrefix}${host}:${name}`;
  }

  private fleetKey(name: string): string {
    return `${this.options.keyPrefix}fleet:${name}`;
  }

  /** Runs a command, turning Redis errors into StoreErrors with a code a caller can act on. */
  private async run<T>(what: string, work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (error) {
      const message = errorMessage(error);
      const code = /^NOT_LEADER/.test(message)
        ? 'store_not_leader'
        : /^FENCED/.test(message)
          ? 'store_fenced'
          : /^CONFLICT/.test(message)
            ? 'store_conflict'
            : 'store_unavailable';
      if (code === 'store_not_leader' || code === 'store_fenced') this.lease = null;
      const detail = code === 'store_unavailable' && this.lastError && !message.includes(this.lastError) ? `${message} (${this.lastError})` : message;
      throw new StoreError(`${this.where}: ${what}: ${detail}`, code, undefined, { cause: error });
    }
  }

  /**
   * The lease value writes are checked against. A store that once held a lease never writes
   * without one again (a value no lease can have): after losing it, it must acquire a new one.
   */
  private mine(): string {
    return this.lease?.value ?? (this.everLeased ? 'lost' : '');
  }

  async loadState(): Promise<GuardState | null> {
    const text = await this.run('read state', () => this.client.get(this.key('state')));
    if (text === null) {
      this.rev = 0;
      return null;
    }
    const where = `${this.where}: key ${this.key('state')}`;
    let envelope: Envelope;
    try {
      envelope = JSON.parse(text) as Envelope;
    } catch (error) {
      throw new StoreError(`${where} is not valid JSON; it was left untouched: rename it to start fresh`, 'store_corrupt', undefined, { cause: error });
    }
    if (typeof envelope !== 'object' || envelope === null || !Number.isSafeInteger(envelope.rev)) {
      throw new StoreError(`${where} is not a release-guard state envelope (no integer rev); it was left untouched: rename it to start fresh`, 'store_corrupt');
    }
    let state: GuardState;
    try {
      state = parseStoredState(envelope.state, where);
    } catch (error) {
      if (error instanceof StateRefused) throw new StoreError(error.message.replace('move it aside', 'rename it'), error.code, undefined, { cause: error });
      throw error;
    }
    this.rev = envelope.rev;
    return state;
  }

  /** The stored envelope's revision, fencing token and writer (for status and tests). */
  async stateMeta(): Promise<{ rev: number; fence: number; holder: string; savedAt: number } | null> {
    const text = await this.run('read state', () => this.client.get(this.key('state')));
    if (text === null) return null;
    const { rev, fence, holder, savedAt } = JSON.parse(text) as Envelope;
    return { rev, fence, holder, savedAt };
  }

  async saveState(state: GuardState): Promise<void> {
    const fence = this.lease?.token ?? 0;
    const next = await this.run('save state', () =>
      this.client.eval(SAVE_STATE, 2, this.key('state'), this.key('lease'), this.mine(), JSON.stringify(state), String(this.rev), String(fence), this.holder, String(Date.now())),
    );
    this.rev = Number(next);
  }

  async loadBaselines(): Promise<Baselines> {
    const text = await this.run('read baselines', () => this.client.get(this.key('baselines')));
    return text === null ? {} : (JSON.parse(text) as Baselines);
  }

  async saveBaselines(baselines: Baselines): Promise<void> {
    await this.run('save baselines', () => this.client.eval(FENCED_SET, 2, this.key('baselines'), this.key('lease'), this.mine(), JSON.stringify(baselines)));
  }

  async writeRecord(record: RollbackRecord, markdown: string, extra: Record<string, unknown>, svg?: string) {
    if (!RECORD_ID.test(record.id)) throw new StoreError(`unsafe record id ${JSON.stringify(record.id)}`, 'store_id');
    const key = this.key(`record:${record.id}`);
    // `summary`: what /history lists, so a page reads it alone (records:<id> by the `records` zset).
    const fields = ['json', JSON.stringify({ ...record, ...extra }), 'markdown', markdown, 'summary', JSON.stringify(summaryOf(record)), ...(svg !== undefined ? ['svg', svg] : [])];
    await this.run('write record', () =>
      this.client.eval(FENCED_HASH, 3, key, this.key('records'), this.key('lease'), this.mine(), record.id, String(record.finishedAt), ...fields),
    );
    return { json: `${key}#json`, markdown: `${key}#markdown` };
  }

  async listRecords() {
    const ids = await this.run('list records', () => this.client.zrange(this.key('records'), '0', '-1'));
    if (ids.length === 0) return [];
    const pipeline = this.client.pipeline();
    for (const id of ids) pipeline.hget(this.key(`record:${id}`), 'json');
    const results = (await this.run('list records', () => pipeline.exec())) ?? [];
    return results.flatMap(([error, text]) => (error || typeof text !== 'string' ? [] : [JSON.parse(text) as RollbackRecord & Record<string, unknown>]));
  }

  /** The `records` zset (scored by finishedAt) is the index: one range read, then one summary per listed record. */
  async recordPage(page: HistoryPage) {
    const max = page.before === undefined ? '+inf' : `(${page.before}`;
    const ids = await this.run('list records', () => this.client.zrevrangebyscore(this.key('records'), max, '-inf', 'LIMIT', 0, page.limit + 1));
    const more = ids.length > page.limit;
    const listed = ids.slice(0, page.limit);
    if (listed.length === 0) return { items: [], more: false };
    const pipeline = this.client.pipeline();
    for (const id of listed) pipeline.hmget(this.key(`record:${id}`), 'summary', 'json');
    const results = (await this.run('list records', () => pipeline.exec())) ?? [];
    const items: RecordSummary[] = results.flatMap(([error, value]) => {
      const [summary, json] = (error ? [null, null] : value) as [string | null, string | null];
      // Records written before summaries existed: read once from their JSON.
      if (summary) return [JSON.parse(summary) as RecordSummary];
      return json ? [summaryOf(JSON.parse(json) as RollbackRecord)] : [];
    });
    return { items, more };
  }

  async readRecord(id: string) {
    if (!RECORD_ID.test(id)) return null;
    const [json, markdown, svg] = await this.run('read record', () => this.client.hmget(this.key(`record:${id}`), 'json', 'markdown', 'svg'));
    if (!json) return null;
    return { json: JSON.parse(json) as RollbackRecord & Record<string, unknown>, markdown: markdown ?? '', ...(svg ? { svg } : {}) };
  }

  async latestDrill(): Promise<unknown> {
    const [id] = await this.run('read drills', () => this.client.zrevrange(this.key('drills'), 0, 0));
    if (id === undefined) return null;
    const json = await this.run('read drill', () => this.client.hget(this.key(`drill:${id}`), 'json'));
    return json ? (JSON.parse(json) as unknown) : null;
  }

  async writeDrill(id: string, json: unknown, markdown: string): Promise<string> {
    if (!RECORD_ID.test(id)) throw new StoreError(`unsafe drill id ${JSON.stringify(id)}`, 'store_id');
    const key = this.key(`drill:${id}`);
    await this.run('write drill', () =>
      this.client.eval(FENCED_HASH, 3, key, this.key('drills'), this.key('lease'), this.mine(), id, String(Date.now()), 'json', JSON.stringify(json), 'markdown', markdown),
    );
    return `${key}#markdown`;
  }

  // ---- Lease ----

  async acquireLease(ttlMs: number): Promise<Lease | null> {
    const [token, value] = (await this.run('acquire lease', () =>
      this.client.eval(ACQUIRE, 4, this.key('lease'), this.key('fence'), this.key('state'), this.fleetKey('hosts'), this.holder, String(Math.ceil(ttlMs)), this.hostId),
    )) as [number, string];
    if (Number(token) === 0) {
      this.lease = null;
      return null;
    }
    this.lease = { token: Number(token), value };
    this.everLeased = true;
    return { token: Number(token), holder: this.holder };
  }

  async renewLease(ttlMs: number): Promise<boolean> {
    if (!this.lease) return false;
    const value = this.lease.value;
    const renewed = Number(await this.run('renew lease', () => this.client.eval(RENEW, 1, this.key('lease'), value, String(Math.ceil(ttlMs)))));
    if (renewed !== 1 && this.lease?.value === value) this.lease = null;
    return renewed === 1;
  }

  async releaseLease(): Promise<void> {
    if (!this.lease) return;
    const value = this.lease.value;
    this.lease = null;
    await this.run('release lease', () => this.client.eval(RELEASE, 1, this.key('lease'), value));
  }

  async leaseHolder(): Promise<Lease | null> {
    const text = await this.run('read lease', () => this.client.get(this.key('lease')));
    if (text === null) return null;
    const { token, holder } = JSON.parse(text) as Lease;
    return { token, holder };
  }

  // ---- Fleet ----

  async report(version: string, verdict: FleetVerdict, at: number): Promise<void> {
    await this.run('report fleet verdict', () =>
      this.client.eval(FLEET_REPORT, 3, this.fleetKey(`release:${version}`), this.fleetKey('hosts'), this.key('lease'), this.mine(), this.hostId, JSON.stringify({ verdict, at }), String(FLEET_TTL_S)),
    );
  }

  async read(version: string): Promise<{ verdicts: Record<string, { verdict: FleetVerdict; at: number }>; live: string[] }> {
    const [raw, hosts] = await this.run('read fleet verdicts', () =>
      Promise.all([this.client.hgetall(this.fleetKey(`release:${version}`)), this.client.smembers(this.fleetKey('hosts'))]),
    );
    const verdicts: Record<string, { verdict: FleetVerdict; at: number }> = {};
    for (const [host, text] of Object.entries(raw)) verdicts[host] = JSON.parse(text) as { verdict: FleetVerdict; at: number };
    const sorted = hosts.sort();
    const alive = sorted.length === 0 ? [] : await this.run('read fleet hosts', () => Promise.all(sorted.map((h) => this.client.exists(this.key('lease', h)))));
    return { verdicts, live: sorted.filter((_, i) => alive[i] === 1) };
  }
}
