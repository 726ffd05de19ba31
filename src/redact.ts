/**
 * The one redaction every path out of the guard goes through: log lines, records (JSON and
 * Markdown), the API's answers (/status, /history, ...), notifications and step progress.
 *
 * It removes three things: the values of fields whose name says secret (`password`, `token`...),
 * credentials inside URLs (`scheme://user:pass@`), and every secret value the guard itself has
 * loaded (the API token, the database/Redis passwords, webhook URLs and header credentials, probe
 * auth headers), wherever it appears in a text: a step that echoes a password, or a receiver that
 * echoes a URL, cannot put it in front of anyone. Secrets register themselves where they are read.
 */

export const SECRET_KEY = /token|secret|password|passwd|authorization|api[_-]?key|cookie/i;
export const REDACTED = '[redacted]';

/** Shorter values are not searched for: "ab" would redact half of every text. */
const MIN_SECRET_LENGTH = 4;

const secrets = new Set<string>();
/** Longest first, so a URL is replaced whole before a part of it is. */
let ordered: string[] = [];

/**
 * Makes `value` redacted from everything the guard lets out from now on. Also registers the
 * credential of an `Authorization`-style value without its scheme ("Bearer X" -> "X"), which a
 * server may echo alone.
 */
export function registerSecret(value: string | null | undefined): void {
  if (!value) return;
  const candidates = [value, value.trim(), value.trim().split(/\s+/).pop() ?? ''];
  let changed = false;
  for (const candidate of candidates) {
    if (candidate.length >= MIN_SECRET_LENGTH && !secrets.has(candidate)) {
      secrets.add(candidate);
      changed = true;
    }
  }
  if (changed) ordered = [...secrets].sort((a, b) => b.length - a.length);
}

/** A text with every known secret and every URL credential replaced. */
export function redactText(text: string): string {
  let out = text;
  for (const secret of ordered) if (out.includes(secret)) out = out.split(secret).join(REDACTED);
  return out.replace(/(\w+:\/\/)[^/@\s:]+:[^/@\s]+@/g, '$1***:***@');
}

/** Any value (strings, arrays, plain objects) with secrets removed; secret-named fields blanked. */
export function redact<T>(value: T, depth = 0): T {
  if (depth > 8) return value;
  if (typeof value === 'string') return redactText(value) as T;
  if (Array.isArray(value)) return value.map((v: unknown) => redact(v, depth + 1)) as T;
  // What JSON.stringify would send (a class's toJSON, e.g. a sequential verdict whose message is a
  // getter): copying the own fields alone would drop it.
  const toJSON: unknown = value && typeof value === 'object' ? (value as { toJSON?: unknown }).toJSON : undefined;
  if (typeof toJSON === 'function') return redact(toJSON.call(value) as unknown, depth + 1) as T;
  if (value && typeof value === 'object' && !(value instanceof Error)) {
    return Object.fromEntries(
      Object.entries(value).map(([k, v]) => [k, SECRET_KEY.test(k) && (typeof v === 'string' || typeof v === 'number') ? REDACTED : redact(v, depth + 1)]),
    ) as T;
  }
  return value;
}
