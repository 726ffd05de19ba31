/**
 * The verification suite run after a rollback (seed §3, DESIGN §5): every configured check, one
 * after another in config order, each bounded by its own timeout. The suite passes only if every
 * check passed; a check that could not observe (no answer, no reading, no snapshot) fails.
 */
import { errorMessage } from '../errors.js';
import type { VerificationCheck } from './schema.js';

/** What a check knows about the moment it runs. */
export interface VerificationContext {
  /** Aborting ends the running check at once (it fails with "aborted") and skips the rest. */
  signal: AbortSignal;
  /**
   * Row counts taken before the release, for `min_rows: { table: snapshot }`: keyed
   * `<database>.<table>` or `<table>` (the qualified key wins).
   */
  rowSnapshot?: Record<string, number>;
  /** The guard's latest readings, fractions 0..1; missing ones fail a resources check ("no data"). */
  resources?: { cpu?: number; memory?: number };
  /** Epoch milliseconds (durations in results). */
  now(): number;
}

/** One check's outcome. `detail` is observed vs expected, in words, and never holds a secret. */
export interface VerificationCheckResult {
  name: string;
  type: VerificationCheck['type'];
  ok: boolean;
  detail: string;
  durationMs: number;
}

export interface SuiteResult {
  ok: boolean;
  results: VerificationCheckResult[];
}

/** Runs one check; must never throw (every failure is `ok: false` with a detail). */
export type VerificationCheckRunner<C extends VerificationCheck> = (config: C, ctx: VerificationContext) => Promise<VerificationCheckResult>;

/** Loads the module of one check type and gives its runner. */
type VerificationCheckLoader<C extends VerificationCheck> = () => Promise<VerificationCheckRunner<C>>;

/**
 * The check registry, keyed by the config's `type`; `satisfies` rejects a missing or mispaired
 * type. A check's module is loaded only when a configured check has that type (the mysql check
 * brings mysql2, ~15 MB of RSS); the daemon loads them at start (`loadVerificationCheckRunners`), so a
 * verification never waits for a module.
 */
export const checkLoaders = {
  http: async () => (await import('./checks/http.js')).run,
  security: async () => (await import('./checks/security.js')).run,
  mysql: async () => (await import('./checks/mysql.js')).run,
  resources: async () => (await import('./checks/resources.js')).run,
} satisfies { [K in VerificationCheck['type']]: VerificationCheckLoader<Extract<VerificationCheck, { type: K }>> };

function loaderOf(type: string): VerificationCheckLoader<VerificationCheck> | undefined {
  // The registry pairs each type with its runner; the cast only joins the union.
  return Object.hasOwn(checkLoaders, type) ? (checkLoaders[type as VerificationCheck['type']] as VerificationCheckLoader<VerificationCheck>) : undefined;
}

/** Loads the modules of the given checks ahead of a verification (a module is loaded once). */
export async function loadVerificationCheckRunners(checks: readonly VerificationCheck[]): Promise<void> {
  await Promise.all([...new Set(checks.map((check) => check.type))].map((type) => loaderOf(type)?.()));
}

/**
 * Runs `checks` sequentially (deterministic order; a verification must not add load to a service
 * that has just been rolled back). Never throws. An empty suite passes (nothing was asked); after
 * an abort the remaining checks are reported as failed, not run.
 */
export async function runVerificationSuite(checks: readonly VerificationCheck[], ctx: VerificationContext): Promise<SuiteResult> {
  const results: VerificationCheckResult[] = [];
  for (const check of checks) {
    if (ctx.signal.aborted) {
      results.push({ name: check.name, type: check.type, ok: false, detail: 'aborted: not run', durationMs: 0 });
      continue;
    }
    results.push(await runVerificationCheck(check, ctx));
  }
  return { ok: results.every((result) => result.ok), results };
}

async function runVerificationCheck(check: VerificationCheck, ctx: VerificationContext): Promise<VerificationCheckResult> {
  const started = ctx.now();
  const load = loaderOf(check.type);
  try {
    if (!load) throw new Error(`unknown check type "${String(check.type)}"`);
    const runner = await load();
    return await runner(check, ctx);
  } catch (error) {
    // Runners do not throw; this is the boundary that keeps a bug from ending the suite.
    return { name: check.name, type: check.type, ok: false, detail: `check failed to run: ${errorMessage(error)}`, durationMs: ctx.now() - started };
  }
}
