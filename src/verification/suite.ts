/**
 * The verification suite run after a rollback (seed §3, DESIGN §5): every configured check, one
 * after another in config order, each bounded by its own timeout. The suite passes only if every
 * check passed; a check that could not observe (no answer, no reading, no snapshot) fails.
 */
import { errorMessage } from '../errors.js';
import * as httpCheck from './checks/http.js';
import * as mysqlCheck from './checks/mysql.js';
import * as resourcesCheck from './checks/resources.js';
import * as securityCheck from './checks/security.js';
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
export interface CheckResult {
  name: string;
  type: VerificationCheck['type'];
  ok: boolean;
  detail: string;
  durationMs: number;
}

export interface SuiteResult {
  ok: boolean;
  results: CheckResult[];
}

/** Runs one check; must never throw (every failure is `ok: false` with a detail). */
export type CheckRunner<C extends VerificationCheck> = (config: C, ctx: VerificationContext) => Promise<CheckResult>;

/** The check registry, keyed by the config's `type`; `satisfies` rejects a missing or mispaired type. */
export const checkRunners = {
  http: httpCheck.run,
  security: securityCheck.run,
  mysql: mysqlCheck.run,
  resources: resourcesCheck.run,
} satisfies { [K in VerificationCheck['type']]: CheckRunner<Extract<VerificationCheck, { type: K }>> };

/**
 * Runs `checks` sequentially (deterministic order; a verification must not add load to a service
 * that has just been rolled back). Never throws. An empty suite passes (nothing was asked); after
 * an abort the remaining checks are reported as failed, not run.
 */
export async function runVerificationSuite(checks: readonly VerificationCheck[], ctx: VerificationContext): Promise<SuiteResult> {
  const results: CheckResult[] = [];
  for (const check of checks) {
    if (ctx.signal.aborted) {
      results.push({ name: check.name, type: check.type, ok: false, detail: 'aborted: not run', durationMs: 0 });
      continue;
    }
    results.push(await runCheck(check, ctx));
  }
  return { ok: results.every((result) => result.ok), results };
}

async function runCheck(check: VerificationCheck, ctx: VerificationContext): Promise<CheckResult> {
  const started = ctx.now();
  // The registry pairs each type with its runner; the cast only joins the union.
  const runner = checkRunners[check.type] as CheckRunner<VerificationCheck> | undefined;
  try {
    if (!runner) throw new Error(`unknown check type "${String(check.type)}"`);
    return await runner(check, ctx);
  } catch (error) {
    // Runners do not throw; this is the boundary that keeps a bug from ending the suite.
    return { name: check.name, type: check.type, ok: false, detail: `check failed to run: ${errorMessage(error)}`, durationMs: ctx.now() - started };
  }
}
