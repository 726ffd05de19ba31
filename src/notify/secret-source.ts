/**
 * The secret of a notifier preset (a PagerDuty routing key, a GitHub token, a Teams webhook URL)
 * from `<key>_file` or `<key>_env`, read once when the notifier is created: a configured secret that
 * cannot be read is a misconfiguration and must stop start-up. Errors name the file or the
 * variable, never the value.
 */
import { readFileSync, statSync } from 'node:fs';
import { GuardError } from '../errors.js';

/** `owner` starts every message (e.g. `notifier "pd"`); `key` is the config key without `_file`/`_env`. */
export function readNotifierSecret(owner: string, key: string, source: { file?: string | undefined; env?: string | undefined }, env: NodeJS.ProcessEnv = process.env): string {
  if (source.file !== undefined) {
    const file = source.file;
    let mode: number;
    let text: string;
    try {
      mode = statSync(file).mode;
      text = readFileSync(file, 'utf8').trim();
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? 'unknown error';
      throw new GuardError(`${owner}: ${key}_file ${file} cannot be read (${code})`, 'secret_unreadable', `point ${key}_file at a file readable by the user running release-guard`, {
        cause: error,
      });
    }
    if ((mode & 0o044) !== 0) {
      throw new GuardError(`${owner}: ${key}_file ${file} is readable by its group or by everyone; run: chmod go-r ${file}`, 'secret_insecure');
    }
    if (text === '') throw new GuardError(`${owner}: ${key}_file ${file} is empty`, 'secret_empty');
    return text;
  }
  if (source.env !== undefined) {
    const text = env[source.env]?.trim();
    if (text === undefined || text === '') {
      throw new GuardError(`${owner}: environment variable ${source.env} (${key}_env) is not set`, 'secret_missing', `export ${source.env} before starting release-guard, or use ${key}_file`);
    }
    return text;
  }
  throw new GuardError(`${owner}: set one of ${key}_file or ${key}_env`, 'config_invalid');
}

/** A secret URL (Teams): as readNotifierSecret, and it must be an http(s) URL. */
export function readSecretUrl(owner: string, key: string, source: { file?: string | undefined; env?: string | undefined }, env: NodeJS.ProcessEnv = process.env): URL {
  const text = readNotifierSecret(owner, key, source, env);
  let url: URL | undefined;
  try {
    url = new URL(text);
  } catch {
    url = undefined;
  }
  if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:')) {
    const where = source.file !== undefined ? `${key}_file ${source.file}` : `${key}_env ${source.env}`;
    throw new GuardError(`${owner}: ${where} does not hold an http:// or https:// URL`, 'secret_invalid');
  }
  return url;
}

/**
 * Everything of a secret that an answer or a driver error could echo: the whole value and, for a
 * URL, its path, query and their long parts. Longest first, so the whole is replaced before a part.
 */
export function secretFragments(secret: string | URL): string[] {
  const values = [String(secret)];
  if (secret instanceof URL) {
    values.push(`${secret.pathname}${secret.search}`, secret.pathname, secret.search, secret.username, secret.password);
    values.push(...secret.pathname.split('/').filter((p) => p.length >= 12), ...[...secret.searchParams.values()].filter((v) => v.length >= 8));
  }
  return values.filter((s) => s.length >= 4 && s !== '/').sort((a, b) => b.length - a.length);
}
