/**
 * HTTP probe: one request per sample, made by fetchCapped (node:http(s) directly rather than axios
 * or fetch, because one timer must bound the whole exchange and the body must be capped while it
 * streams, not after it has been buffered).
 */
import type { HttpProbeConfig } from '../config/schema.js';
import type { Sample } from '../core/types.js';
import { fetchCapped, probeAgent, type Exchange } from './http-fetch.js';
import type { BuiltInSampleValues, ProbeFactory } from './types.js';
import { isSafeVersion } from '../core/versions.js';


type Verdict = Pick<Sample, 'ok' | 'error' | 'version'>;

type Parsed = { json: true; value: unknown } | { json: false };

/**
 * Takes one sample per call. Never throws, never logs, never follows redirects (a 3xx is just a
 * status). `latency_ms` is measured with a monotonic clock; `at` comes from `deps.now()`.
 */
export const httpProbe: ProbeFactory<HttpProbeConfig> = (config, deps) => {
  const target = new URL(config.url);
  // keepAlive off: every sample opens and closes its own socket, so a hung server cannot make
  // idle or half-dead sockets pile up in a pool between samples.
  const agent = probeAgent(target);

  return {
    name: config.name,
    type: 'http',
    async sample(startedAt, signal, options) {
      const exchanged = await fetchCapped(target, {
        method: config.method,
        headers: config.headers,
        // The scheduler may ask for less (fast probing), never for more than the configured timeout.
        timeoutMs: Math.min(options?.timeoutMs ?? config.timeout, config.timeout),
        maxBodyBytes: config.max_body_bytes,
        agent,
        signal,
      });
      const verdict = judge(config, exchanged);
      const values: BuiltInSampleValues = { latency_ms: exchanged.latencyMs };
      if (exchanged.status !== undefined) values.status = exchanged.status;
      const sample: Sample = { probe: config.name, startedAt, at: deps.now(), ok: verdict.ok, values };
      if (verdict.error !== undefined) sample.error = verdict.error;
      if (verdict.version !== undefined) sample.version = verdict.version;
      return sample;
    },
    async close() {
      agent.destroy();
    },
  };
};

/** Pure: turns an exchange into ok / error / version. Reports every problem, not just the first. */
function judge(config: HttpProbeConfig, exchanged: Exchange): Verdict {
  if (exchanged.failure !== undefined) return { ok: false, error: exchanged.failure };
  const status = exchanged.status;
  const text = (exchanged.body ?? Buffer.alloc(0)).toString('utf8');
  const parsed: Parsed =
    config.json_field !== undefined || config.version_path !== undefined ? parseJson(text) : { json: false };
  const problems: string[] = [];

  if (status === undefined || !config.expect_status.includes(status)) {
    const expected =
      config.expect_status.length === 1 ? `${config.expect_status[0]}` : `one of ${config.expect_status.join(', ')}`;
    problems.push(`status ${status ?? 'missing'}, expected ${expected}`);
  }
  if (config.json_field !== undefined) {
    const { path, equals } = config.json_field;
    if (!parsed.json) problems.push('body is not JSON');
    else {
      const found = valueAt(parsed.value, path);
      if (!found.present) problems.push(`json field ${path} is missing, expected ${show(equals)}`);
      else if (found.value !== equals) problems.push(`json field ${path} = ${show(found.value)}, expected ${show(equals)}`);
    }
  }
  if (config.body_contains !== undefined && !text.includes(config.body_contains)) {
    problems.push(`body does not contain ${show(config.body_contains)}`);
  }

  const verdict: Verdict = problems.length === 0 ? { ok: true } : { ok: false, error: problems.join('; ') };
  // Read the version whatever the status: a 500 page that reports its version still reveals
  // which release is running, and that is how a bad release gets detected at all.
  if (config.version_path !== undefined && parsed.json) {
    const version = versionAt(parsed.value, config.version_path);
    if (version !== undefined) verdict.version = version;
  }
  return verdict;
}

function parseJson(text: string): Parsed {
  try {
    return { json: true, value: JSON.parse(text) as unknown };
  } catch {
    // Not an error of the probe: judge() reports "body is not JSON" when JSON was required.
    return { json: false };
  }
}

/** Dot path over own properties only, so `constructor` or `__proto__` never resolve to anything. */
function valueAt(root: unknown, path: string): { present: true; value: unknown } | { present: false } {
  let current = root;
  for (const key of path.split('.')) {
    if (typeof current !== 'object' || current === null || !Object.hasOwn(current, key)) return { present: false };
    current = (current as Record<string, unknown>)[key];
  }
  return { present: true, value: current };
}

function versionAt(root: unknown, path: string): string | undefined {
  const found = valueAt(root, path);
  if (!found.present) return undefined;
  const { value } = found;
  if (typeof value !== 'string' && typeof value !== 'number') return undefined;
  const version = String(value);
  // A reported version ends up in state, file paths, pm2 app names and program arguments: a
  // hostile one (`--help`, `../../etc`) is not a version at all, and no release is detected.
  return isSafeVersion(version) ? version : undefined;
}

/** JSON rendering for messages, cut short so a huge field cannot flood logs and alerts. */
function show(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}
