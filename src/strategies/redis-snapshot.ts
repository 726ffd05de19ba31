/**
 * Redis strategy (type `redis`), the runbook's `redis-cli BGSAVE`: a pre-release snapshot, never an
 * automatic restore.
 *
 *   prepare   BGSAVE (`BGSAVE SCHEDULE`, so a running AOF rewrite delays it instead of refusing it;
 *             when another BGSAVE is already running, waits for it and then takes ours), then polls
 *             LASTSAVE and INFO persistence until the save is done (LASTSAVE changed,
 *             rdb_bgsave_in_progress:0, rdb_last_bgsave_status:ok), bounded by the step timeout.
 *             When Redis runs on this host (loopback) and CONFIG GET is allowed, the RDB file is
 *             copied to `<dataDir>/pre-release.rdb`: Redis overwrites its dump.rdb at every later
 *             save, so without a copy the pre-release snapshot would not survive the release's own
 *             saves. The record goes to `<dataDir>/redis.json`; kept when it exists (a second prepare
 *             of the same release must not replace the pre-release snapshot with a later one).
 *   execute   restores nothing. Restoring an RDB means stopping Redis, putting the file in place and
 *             starting it again, which drops every write since the snapshot (sessions, queues,
 *             counters) and interrupts every client: an operator's decision, not a watchdog's. It
 *             reports where the snapshot is and when it was taken, and says so as a warning when no
 *             snapshot was taken for this release (the rest of the plan must not fail for it).
 *   check     Redis answers PING (with the configured password), and the pre-release snapshot
 *             record exists: the rollback itself needs neither, but without them the operator is
 *             left with no restore point, which is what a readiness check is for.
 */
import { randomBytes } from 'node:crypto';
import { copyFile, readFile, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { Redis } from 'ioredis';
import type { Clock } from '../clock.js';
import type { RedisStrategyConfig } from '../config/schema.js';
import { readPassword, redactSecret } from '../config/secrets.js';
import { errorMessage, RollbackError } from '../errors.js';
import { commitFile, writeJsonAtomic } from '../store/atomic-write.js';
import { stepScope, within, type StepScope } from './step.js';
import type { ReleaseContext, RollbackContext, RollbackStrategy, StrategyDeps, StrategyFactory } from './types.js';

/** The record of the pre-release snapshot, and the copy of the RDB file, in the step's dataDir. */
export const REDIS_SNAPSHOT_FILE = 'redis.json';
export const REDIS_RDB_COPY = 'pre-release.rdb';

const POLL_MS = 100;
const LOOPBACK = new Set(['127.0.0.1', '::1', 'localhost']);

export interface RedisSnapshotRecord {
  version: string;
  server: string;
  /** LASTSAVE after our BGSAVE: Unix seconds on the server's clock, and as ISO 8601. */
  lastsave: number;
  takenAt: string;
  /** The RDB file on the server (CONFIG GET dir + dbfilename), when CONFIG was allowed. */
  rdb: string | null;
  /** Our copy of it, when Redis runs on this host. */
  copy: string | null;
  copyBytes: number | null;
}

/** `INFO persistence` → { rdb_bgsave_in_progress: '0', … } */
export function parseInfo(text: string): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const line of text.split(/\r?\n/)) {
    const at = line.indexOf(':');
    if (at > 0 && !line.startsWith('#')) fields[line.slice(0, at)] = line.slice(at + 1).trim();
  }
  return fields;
}

/** One configured Redis step: a connection per operation, nothing kept open between them. */
class RedisSnapshotStrategy implements RollbackStrategy {
  readonly type = 'redis';
  private readonly where: string;
  private readonly clock: Clock;

  constructor(
    private readonly config: RedisStrategyConfig,
    { clock }: StrategyDeps,
  ) {
    this.where = `redis ${config.host}:${config.port}`;
    this.clock = clock;
  }

  describe(): string {
    return `redis: BGSAVE ${this.config.host}:${this.config.port} when a release starts; no automatic restore`;
  }

  async prepare(ctx: ReleaseContext): Promise<void> {
    const existing = await readRecord(ctx.dataDir);
    if (existing) {
      ctx.progress(`pre-release Redis snapshot for ${ctx.version} already taken at ${existing.takenAt}; keeping it`);
      return;
    }
    const scope = stepScope(ctx, this.config.timeout, this.clock);
    const record = await this.withClient(scope, (client) => this.takeSnapshot(client, scope, ctx));
    const file = path.join(ctx.dataDir, REDIS_SNAPSHOT_FILE);
    await writeJsonAtomic(file, record, { mode: 0o600 });
    ctx.progress(`pre-release Redis snapshot taken at ${record.takenAt}: ${location(record)}`);
  }

  async checkReadiness(ctx: RollbackContext): Promise<string[]> {
    if (ctx.signal.aborted) throw new RollbackError('check was cancelled', 'check', { cause: ctx.signal.reason });
    const found: string[] = [];
    const scope = stepScope(ctx, Math.min(this.config.timeout, 10_000), this.clock);
    try {
      await this.withClient(scope, async (client) => {
        await within(scope, 'ping', 'PING', () => client.ping());
      });
    } catch (error) {
      const credentials = error instanceof RollbackError && error.step === 'credentials';
      found.push(credentials ? errorMessage(error) : `${this.where} does not answer PING: ${errorMessage(error)}`);
    }
    try {
      const record = await readRecord(ctx.dataDir);
      if (!record) found.push(`no pre-release Redis snapshot for ${ctx.from} (${path.join(ctx.dataDir, REDIS_SNAPSHOT_FILE)} missing)`);
      else if (record.copy && !(await stat(record.copy).then(() => true, () => false))) found.push(`the pre-release RDB copy ${record.copy} is gone`);
    } catch (error) {
      found.push(errorMessage(error));
    }
    return found;
  }

  async execute(ctx: RollbackContext): Promise<void> {
    const record = await readRecord(ctx.dataDir);
    if (!record) {
      ctx.progress(
        `warning: no pre-release Redis snapshot was taken for ${ctx.from} (${path.join(ctx.dataDir, REDIS_SNAPSHOT_FILE)} missing); ` +
          'there is no restore point for Redis',
      );
      return;
    }
    ctx.progress(
      `Redis is not restored automatically: restoring means stopping ${record.server}, putting the snapshot in place as its RDB file ` +
        'and starting it again, losing every write since the snapshot: an operator\'s decision',
    );
    ctx.progress(`pre-release Redis snapshot: ${location(record)}, taken at ${record.takenAt} (LASTSAVE ${record.lastsave})`);
  }

  /** BGSAVE, then the RDB file copied when Redis runs on this host; returns the record to keep. */
  private async takeSnapshot(client: Redis, scope: StepScope, ctx: ReleaseContext): Promise<RedisSnapshotRecord> {
    const { host, port } = this.config;
    const lastsave = await this.bgsave(client, scope);
    const rdb = await rdbPath(client, scope);
    let copy: { copy: string; bytes: number } | null = null;
    if (rdb && LOOPBACK.has(host)) {
      try {
        copy = await copyRdb(rdb, ctx.dataDir);
      } catch (error) {
        ctx.progress(`warning: could not copy ${rdb} (${errorMessage(error)}); Redis overwrites it at its next save`);
      }
    } else if (rdb) {
      ctx.progress(`${rdb} is on ${host}: copy it before Redis's next save overwrites it`);
    }
    return {
      version: ctx.version,
      server: `${host}:${port}`,
      lastsave,
      takenAt: new Date(lastsave * 1000).toISOString(),
      rdb,
      copy: copy?.copy ?? null,
      copyBytes: copy?.bytes ?? null,
    };
  }

  /** One short-lived connection per operation: no reconnects, no offline queue, every wait bounded by the scope. */
  private async withClient<T>(scope: StepScope, work: (client: Redis) => Promise<T>): Promise<T> {
    const { config, where } = this;
    const secret = readPassword(`redis step (${config.host}:${config.port})`, config, process.env, credentialsError);
    const client = new Redis({
      host: config.host,
      port: config.port,
      ...(secret !== undefined ? { password: secret } : {}),
      lazyConnect: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
      connectTimeout: Math.min(scope.timeoutMs, 10_000),
    });
    // The reason a connection failed comes as an 'error' event; connect() itself only says "closed".
    let lastError: unknown;
    client.on('error', (error: unknown) => {
      lastError = error;
    });
    try {
      await within(scope, 'connect', `connecting to ${where}`, () =>
        client.connect().catch((error: unknown) => {
          const cause = lastError ?? error;
          const code = (cause as NodeJS.ErrnoException | undefined)?.code;
          throw new Error(`${errorMessage(cause)}${typeof code === 'string' && !errorMessage(cause).includes(code) ? ` (${code})` : ''}`, { cause });
        }),
      );
      return await work(client);
    } catch (error) {
      if (error instanceof RollbackError) {
        throw new RollbackError(redactSecret(error.message, secret), error.step, { cause: error.cause });
      }
      throw new RollbackError(`${where}: ${redactSecret(errorMessage(error), secret)}`, 'redis', { cause: error });
    } finally {
      client.disconnect();
    }
  }

  /** BGSAVE and wait for it; returns LASTSAVE after it. */
  private async bgsave(client: Redis, scope: StepScope): Promise<number> {
    for (;;) {
      const before = await within(scope, 'bgsave', 'LASTSAVE', () => client.lastsave());
      // LASTSAVE counts seconds: start in a later second than the last save, so a change is ours.
      const [seconds = 0, micros = 0] = (await within(scope, 'bgsave', 'TIME', () => client.time())).map(Number);
      if (seconds <= before) await scope.clock.sleep((before + 1 - seconds) * 1000 - Math.floor(micros / 1000) + 5, scope.signal);
      let reply: string;
      try {
        reply = String(await within(scope, 'bgsave', 'BGSAVE', () => client.bgsave('SCHEDULE')));
      } catch (error) {
        if (!/already in progress/i.test(errorMessage(error))) throw error;
        scope.progress('a BGSAVE is already in progress; waiting for it, then taking ours');
        await waitForRunningSave(client, scope);
        continue;
      }
      scope.progress(`BGSAVE: ${reply}`);
      return this.waitForOurSave(client, scope, before, !/scheduled/i.test(reply));
    }
  }

  /**
   * Polls until the BGSAVE asked for after LASTSAVE `before` is done; returns LASTSAVE after it.
   * `started`: Redis began it at once (it was not merely scheduled behind an AOF rewrite).
   */
  private async waitForOurSave(client: Redis, scope: StepScope, before: number, started: boolean): Promise<number> {
    const { where } = this;
    for (;;) {
      const info = await persistence(client, scope);
      const idle = info.rdb_bgsave_in_progress === '0';
      const lastsave = await within(scope, 'bgsave', 'LASTSAVE', () => client.lastsave());
      if (idle && lastsave > before) {
        if (info.rdb_last_bgsave_status !== 'ok') {
          throw new RollbackError(`BGSAVE on ${where} failed (rdb_last_bgsave_status:${info.rdb_last_bgsave_status}); see the Redis log`, 'bgsave');
        }
        return lastsave;
      }
      // Ours ran (not merely scheduled), is over, and LASTSAVE did not move: it failed.
      if (started && idle && info.rdb_last_bgsave_status === 'err') {
        throw new RollbackError(`BGSAVE on ${where} failed (rdb_last_bgsave_status:err); see the Redis log (disk full? dir not writable?)`, 'bgsave');
      }
      await scope.clock.sleep(POLL_MS, scope.signal);
    }
  }
}

export const redisSnapshotStrategy: StrategyFactory<RedisStrategyConfig> = (config, deps) => new RedisSnapshotStrategy(config, deps);

/** readPassword's error for a password that cannot be read, as the step `credentials`. */
function credentialsError(message: string, _code: string, hint: string | undefined, options: ErrorOptions | undefined): RollbackError {
  return new RollbackError(hint ? `${message} (${hint})` : message, 'credentials', options);
}

async function persistence(client: Redis, scope: StepScope): Promise<Record<string, string>> {
  return parseInfo(await within(scope, 'bgsave', 'INFO persistence', () => client.info('persistence')));
}

async function waitForRunningSave(client: Redis, scope: StepScope): Promise<void> {
  for (;;) {
    if ((await persistence(client, scope)).rdb_bgsave_in_progress !== '1') return;
    // Wakes early when the step is cancelled; the next INFO then throws naming why.
    await scope.clock.sleep(POLL_MS, scope.signal);
  }
}

/** The server's RDB file, when CONFIG GET is allowed. */
async function rdbPath(client: Redis, scope: StepScope): Promise<string | null> {
  try {
    const [, dir] = (await within(scope, 'bgsave', 'CONFIG GET dir', () => client.config('GET', 'dir'))) as string[];
    const [, file] = (await within(scope, 'bgsave', 'CONFIG GET dbfilename', () => client.config('GET', 'dbfilename'))) as string[];
    return dir && file ? path.join(dir, file) : null;
  } catch (error) {
    scope.progress(`CONFIG GET is not allowed (${errorMessage(error)}): the RDB file's location is unknown`);
    return null;
  }
}

/**
 * Copies the RDB next to the record. Redis replaces its RDB by renaming a finished temp file over
 * it, so the open file is always one whole snapshot: ours, or (rarely) a later one taken meanwhile.
 */
async function copyRdb(rdb: string, dataDir: string): Promise<{ copy: string; bytes: number }> {
  const copy = path.join(dataDir, REDIS_RDB_COPY);
  const temp = path.join(dataDir, `.${REDIS_RDB_COPY}.${process.pid}-${randomBytes(4).toString('hex')}`);
  try {
    await copyFile(rdb, temp);
    const { size } = await stat(temp);
    await commitFile(temp, copy);
    return { copy, bytes: size };
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
}

async function readRecord(dataDir: string): Promise<RedisSnapshotRecord | null> {
  try {
    return JSON.parse(await readFile(path.join(dataDir, REDIS_SNAPSHOT_FILE), 'utf8')) as RedisSnapshotRecord;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new RollbackError(`${path.join(dataDir, REDIS_SNAPSHOT_FILE)} cannot be read: ${errorMessage(error)}`, 'snapshot', { cause: error });
  }
}

function location(record: RedisSnapshotRecord): string {
  return record.copy ?? record.rdb ?? `the server's RDB file on ${record.server} (location unknown: CONFIG GET not allowed)`;
}
