/**
 * Building blocks shared by every config schema (main, verification, notifiers). In their own
 * module so schemas that the main schema mounts can use them without an import cycle.
 */
import { z } from 'zod';
import { parseDuration } from './duration.js';

/**
 * A value from the config quoted for a message, cut short: a config may hold anything, and a
 * 5 MB string in the wrong place must not become a 5 MB error message.
 */
export function quoted(value: unknown, max = 60): string {
  let text: string;
  try {
    text = String(value);
  } catch {
    // An object whose own `toString` is data, e.g. { toString: 5 }.
    text = Object.prototype.toString.call(value);
  }
  return JSON.stringify(text.length > max ? `${text.slice(0, max - 3)}...` : text);
}

/** A list of names for a message: the first `max`, then how many more. */
export function nameList(names: readonly string[], max = 20): string {
  const shown = names.slice(0, max).map((n) => quoted(n, 40).slice(1, -1));
  return names.length > max ? `${shown.join(', ')}, … (${names.length - max} more)` : shown.join(', ');
}

/** A duration such as `250ms`, `5s`, `2m`; parsed to milliseconds. */
export const duration = (description: string) =>
  z
    .union([z.string(), z.number()])
    .transform((value, ctx) => {
      const ms = parseDuration(value);
      if (ms === null) {
        ctx.addIssue({
          code: 'custom',
          message: `${quoted(value)} is not a duration; use a number with ms, s, m or h (e.g. 250ms, 5s, 2m)`,
        });
        return z.NEVER;
      }
      return ms;
    })
    .describe(description);

export const ratio = (description: string) =>
  z.number().gt(0, 'must be above 0').max(1, 'must be at most 1 (a fraction: 0.05 = 5 %)').describe(description);

/** Application names, versions and probe names end up in paths and pm2 calls: keep them plain. */
export const SAFE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
export const safeName = (description: string) =>
  z
    .string()
    .regex(SAFE_NAME, 'must be 1-128 characters of letters, digits, ".", "_" or "-", starting with a letter or digit')
    .describe(description);

export const url = (description: string) =>
  z
    .string()
    .refine((value) => {
      try {
        const parsed = new URL(value);
        return parsed.protocol === 'http:' || parsed.protocol === 'https:';
      } catch {
        return false;
      }
    }, 'must be an http:// or https:// URL')
    .describe(description);

/** A secret is never written in the config itself: it comes from a file or the environment. */
export const secretSource = {
  password_file: z.string().min(1).optional().describe('File holding the password (not readable by group or others)'),
  password_env: z
    .string()
    .regex(/^[A-Z_][A-Z0-9_]*$/, 'an environment variable name')
    .optional()
    .describe('Environment variable holding the password'),
};

/** Where a MySQL/MariaDB server is and how to log in (probes, strategies and checks alike). */
export const mysqlConnection = (userDescription: string) => ({
  host: z.string().min(1).default('127.0.0.1').describe('MySQL/MariaDB host'),
  port: z.number().int().min(1).max(65535).default(3306).describe('Port'),
  user: z.string().min(1).describe(userDescription),
  ...secretSource,
});

/** Where a Redis server is and its password, if any. */
export const redisConnection = {
  host: z.string().min(1).default('127.0.0.1').describe('Redis host'),
  port: z.number().int().min(1).max(65535).default(6379).describe('Port'),
  ...secretSource,
};
