/**
 * Building blocks shared by every config schema (main, verification, notifiers). In their own
 * module so schemas that the main schema mounts can use them without an import cycle.
 */
import { z } from 'zod';
import { parseDuration } from './duration.js';

/** A duration such as `250ms`, `5s`, `2m`; parsed to milliseconds. */
export const duration = (description: string) =>
  z
    .union([z.string(), z.number()])
    .transform((value, ctx) => {
      const ms = parseDuration(value);
      if (ms === null) {
        ctx.addIssue({
          code: 'custom',
          message: `"${value}" is not a duration; use a number with ms, s, m or h (e.g. 250ms, 5s, 2m)`,
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
