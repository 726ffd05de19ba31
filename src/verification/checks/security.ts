/**
 * The security check (seed §3.3, 认证授权): a protected endpoint must still reject a request
 * without a credential and one with an invalid credential. A 200 to either means the endpoint is
 * open: the check fails. No answer at all is a failure too (no data is never a pass).
 */
import type { SecurityCheckConfig } from '../schema.js';
import type { VerificationCheckResult, VerificationContext } from '../suite.js';
import { formatStatuses, requestLabel, sendRequest } from './http.js';

/** Only the status matters; the body is read (to end the exchange cleanly) but capped small. */
const MAX_BODY_BYTES = 256 * 1024;

export async function run(config: SecurityCheckConfig, ctx: VerificationContext): Promise<VerificationCheckResult> {
  const started = ctx.now();
  const target = new URL(config.url);
  const label = requestLabel(config.method, target);
  const header = config.token_header.toLowerCase();
  // The configured headers minus any credential of the checked kind, whatever its spelling.
  const base = Object.fromEntries(Object.entries(config.headers).filter(([name]) => name.toLowerCase() !== header));
  const expected = formatStatuses(config.expect_status);

  const attempts = [
    { what: `without ${header}`, headers: base },
    // The bad token is never shown: "invalid" tokens are sometimes real, expired ones.
    { what: `with an invalid ${header}`, headers: { ...base, [header]: config.bad_token } },
  ];
  const findings: string[] = [];
  let ok = true;
  for (const attempt of attempts) {
    const exchange = await sendRequest(target, {
      method: config.method,
      headers: attempt.headers,
      timeoutMs: config.timeout,
      maxBodyBytes: MAX_BODY_BYTES,
      signal: ctx.signal,
    });
    const status = exchange.status;
    if (status === undefined) {
      ok = false;
      findings.push(`${attempt.what}: no answer (${exchange.failure ?? 'unknown failure'}), expected ${expected}`);
    } else if (config.expect_status.includes(status)) {
      // A body cut off after a rejecting status still proves the rejection.
      findings.push(`${attempt.what} -> ${status} (rejected)`);
    } else {
      ok = false;
      const open = status >= 200 && status < 300 ? ': the endpoint is open' : '';
      findings.push(`${attempt.what} -> ${status}, expected ${expected}${open}`);
    }
  }
  return { name: config.name, type: 'security', ok, detail: `${label} ${findings.join('; ')}`, durationMs: ctx.now() - started };
}
