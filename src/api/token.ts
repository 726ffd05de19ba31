/**
 * The control API's bearer token, read the same way by the daemon (to check it) and by the CLI's
 * client commands (to send it). It is a secret: it is never logged and never part of an error.
 */
import { readFile, stat } from 'node:fs/promises';
import type { Config } from '../config/schema.js';
import { GuardError } from '../errors.js';
import { registerSecret } from '../redact.js';

/**
 * From `server.token_file` when set (the file must not be readable by group or others, and must
 * not be empty), else from the environment variable `server.token_env`, trimmed. Null when there is
 * no token: the daemon then refuses every control request.
 */
export async function readToken(
  server: Pick<Config['server'], 'token_file' | 'token_env'>,
  env: NodeJS.ProcessEnv = process.env,
): Promise<string | null> {
  const file = server.token_file;
  if (file === undefined) {
    const value = env[server.token_env]?.trim();
    return value === undefined || value === '' ? null : checked(value, `environment variable ${server.token_env}`);
  }
  let mode: number;
  let text: string;
  try {
    mode = (await stat(file)).mode;
    text = await readFile(file, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const why =
      code === 'ENOENT'
        ? 'no such file'
        : code === 'EACCES'
          ? 'permission denied (run as the user that owns it)'
          : code === 'EISDIR'
            ? 'is a directory'
            : `cannot be read (${code ?? 'unknown error'})`;
    throw new GuardError(`token file ${file}: ${why}`, 'token_unreadable', 'set server.token_file to a file holding the token, or unset it and use server.token_env', { cause: error });
  }
  if ((mode & 0o077) !== 0) {
    throw new GuardError(
      `token file ${file} is readable by group or others (mode ${(mode & 0o777).toString(8).padStart(3, '0')}); run: chmod 600 ${file}`,
      'token_insecure',
    );
  }
  const token = text.trim();
  if (token === '') {
    throw new GuardError(`token file ${file} is empty; write a long random token into it (e.g. openssl rand -hex 32 > ${file}; chmod 600 ${file})`, 'token_empty');
  }
  return checked(token, `token file ${file}`);
}

/** A bearer token travels in one header as one word; anything else could never match. */
function checked(token: string, source: string): string {
  if (!/^[\x21-\x7e]+$/.test(token)) {
    throw new GuardError(`${source}: the token must be one word of printable ASCII characters, without spaces or line breaks`, 'token_invalid');
  }
  registerSecret(token);
  return token;
}
