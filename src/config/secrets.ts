/**
 * Passwords named by a config's `password_file` / `password_env` keys (probes and strategies).
 * A secret is never written in the config itself, never passed in a program's arguments and never
 * shown in a message: errors name the file or the variable, not the value.
 */
import { readFileSync, statSync } from 'node:fs';
import { GuardError, ProbeError } from '../errors.js';
import { registerSecret } from '../redact.js';

/** Where a password may come from; the mysql and redis probes and the database and redis strategies take these keys. */
export interface SecretSource {
  password_file?: string | undefined;
  password_env?: string | undefined;
}

/** Makes the error a missing or unsafe secret throws; `code` is one of `secret_unreadable|insecure|empty|missing`. */
export type SecretErrorFactory = (message: string, code: string, hint: string | undefined, options: ErrorOptions | undefined) => Error;

/** The default: a GuardError with the `secret_*` code. */
const guardError: SecretErrorFactory = (message, code, hint, options) => new GuardError(message, code, hint, options);

/** Probes throw ProbeErrors (`probe_secret_*`), which stop start-up like any invalid probe. */
export const probeSecretError: SecretErrorFactory = (message, code, hint, options) =>
  new ProbeError(message, `probe_${code}`, hint, options);

/**
 * Reads a password: `password_file` (trimmed; must not be readable by its group or by others, must
 * not be empty) wins over `password_env` (must be set and non-empty). Undefined when neither key is
 * configured. `owner` starts every message, e.g. `probe "db"` or `database step`. Throws (an error
 * made by `makeError`) naming the file or variable, never the value: a configured secret that cannot
 * be read is a misconfiguration.
 */
export function readPassword(
  owner: string,
  source: SecretSource,
  env: NodeJS.ProcessEnv = process.env,
  makeError: SecretErrorFactory = guardError,
): string | undefined {
  const file = source.password_file;
  if (file !== undefined) {
    let mode: number;
    let text: string;
    try {
      mode = statSync(file).mode;
      text = readFileSync(file, 'utf8');
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? 'unknown error';
      throw makeError(
        `${owner}: password_file ${file} cannot be read (${code})`,
        'secret_unreadable',
        'point password_file at a file readable by the user running release-guard',
        { cause: error },
      );
    }
    if ((mode & 0o004) !== 0) {
      throw makeError(`${owner}: password_file ${file} is readable by everyone; run: chmod o-r ${file}`, 'secret_insecure', undefined, undefined);
    }
    if ((mode & 0o040) !== 0) {
      throw makeError(`${owner}: password_file ${file} is readable by its group; run: chmod g-r ${file}`, 'secret_insecure', undefined, undefined);
    }
    const password = text.trim();
    if (password === '') throw makeError(`${owner}: password_file ${file} is empty`, 'secret_empty', undefined, undefined);
    registerSecret(password);
    return password;
  }
  const name = source.password_env;
  if (name === undefined) return undefined;
  const value = env[name];
  if (value === undefined || value === '') {
    throw makeError(
      `${owner}: environment variable ${name} (password_env) is not set`,
      'secret_missing',
      `export ${name} before starting release-guard, or use password_file`,
      undefined,
    );
  }
  registerSecret(value);
  return value;
}

/** Replaces every occurrence of the secret, in case a driver or a program ever echoes it back in a message. */
export function redactSecret(text: string, secret: string | undefined): string {
  return secret === undefined || secret === '' ? text : text.split(secret).join('***');
}
