/**
 * Schema of the verification suite run after a rollback (seed §3, DESIGN §5): functional and
 * performance checks of HTTP endpoints, a security check that a protected endpoint still rejects
 * a missing or bad token, data checks (tables exist, key row counts not below the pre-release
 * snapshot, DB query latency) and resource limits. Mounted at `verification.checks`.
 *
 * Defaults are the seed's thresholds: API < 500 ms and page < 2 s (set per check with
 * `max_latency`), DB query < 100 ms, CPU < 70 %, memory < 80 %. Unknown keys are errors.
 */
import { z } from 'zod';

import { duration, mysqlConnection, quoted, ratio, safeName, url } from '../config/schema-helpers.js';

const statuses = (fallback: number[], description: string) =>
  z.array(z.number().int().min(100).max(599)).min(1).default(fallback).describe(description);

const method = z.enum(['GET', 'POST', 'PUT', 'DELETE', 'HEAD']).default('GET').describe('HTTP method');
const headers = z
  .record(z.string().regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/, 'an HTTP header name'), z.string())
  .default({})
  .describe('Extra request headers (values are never shown in results)');

/** A MySQL identifier as used in the checks' SQL (quoted, but kept plain). */
const identifier = (description: string) =>
  z.string().regex(/^[A-Za-z0-9_$]{1,64}$/, 'letters, digits, "_" or "$" (at most 64)').describe(description);

const httpCheck = z
  .object({
    type: z.literal('http'),
    name: safeName('Check name, shown in results and records'),
    url: url('Endpoint to request, e.g. http://127.0.0.1:3000/api/login'),
    method,
    headers,
    body: z.string().optional().describe('Request body, e.g. a JSON login payload (set content-type in headers)'),
    expect_status: statuses([200], 'Status codes that count as a pass'),
    expect_body_contains: z.string().min(1).optional().describe('Text the response body must contain'),
    max_latency: duration(
      'Performance: the response (or, with repeat > 1, the p95 of the responses) must arrive within this (seed: API 500ms, page 2s)',
    ).optional(),
    timeout: duration('Per request; a timeout fails the check').default(5000),
    repeat: z
      .number()
      .int()
      .min(1)
      .max(100)
      .default(1)
      .describe('Requests made; every one must pass (the check stops at the first that does not)'),
    max_body_bytes: z
      .number()
      .int()
      .positive()
      .max(64 * 1024 * 1024)
      .default(1024 * 1024)
      .describe('Larger response bodies fail the check'),
  })
  .strict();

const securityCheck = z
  .object({
    type: z.literal('security'),
    name: safeName('Check name'),
    url: url('A protected endpoint, e.g. http://127.0.0.1:3000/api/admin/users'),
    method,
    headers,
    token_header: z
      .string()
      .regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/, 'an HTTP header name')
      .default('authorization')
      .describe('Header carrying the credential; left out of the first request, set to bad_token in the second'),
    bad_token: z.string().min(1).default('Bearer invalid-token').describe('An invalid credential the endpoint must reject'),
    expect_status: statuses(
      [401, 403],
      'Statuses that count as rejected; both requests must get one (a 200 means the endpoint is open: fail)',
    ),
    timeout: duration('Per request; a timeout fails the check (no answer is never a pass)').default(5000),
  })
  .strict();

const mysqlCheck = z
  .object({
    type: z.literal('mysql'),
    name: safeName('Check name'),
    ...mysqlConnection('A read-only account (SELECT is enough)'),
    database: identifier('Database whose tables are checked').optional(),
    tables: z.array(identifier('Table name')).default([]).describe('Tables that must exist'),
    min_rows: z
      .record(identifier('Table name'), z.union([z.number().int().min(0), z.literal('snapshot')]))
      .default({})
      .describe(
        'Table -> minimum row count, or "snapshot": not below the count taken before the release (COUNT(*) is run on each)',
      ),
    query: z.string().min(1).default('SELECT 1').describe('Read-only query whose latency is measured'),
    max_query_latency: duration('The query must complete within this (seed: DB query < 100ms)').default(100),
    timeout: duration('Bounds the whole check: connect, table and row checks, the query').default(5000),
  })
  .strict()
  .refine((c) => c.database !== undefined || (c.tables.length === 0 && Object.keys(c.min_rows).length === 0), {
    message: 'tables and min_rows need database',
    path: ['database'],
  });

const resourcesCheck = z
  .object({
    type: z.literal('resources'),
    name: safeName('Check name'),
    cpu_max: ratio('CPU use must be below this fraction (seed: 70 %)').default(0.7),
    memory_max: ratio('Memory use must be below this fraction (seed: 80 %)').default(0.8),
  })
  .strict()
  .describe("Judged from the guard's latest cpu and memory readings; no reading fails the check");

export const verificationCheckSchema = z.discriminatedUnion('type', [httpCheck, securityCheck, mysqlCheck, resourcesCheck]);

export const verificationChecksSchema = z
  .array(verificationCheckSchema)
  .default([])
  .superRefine((checks, ctx) => {
    const seen = new Set<string>();
    checks.forEach((check, index) => {
      if (seen.has(check.name)) ctx.addIssue({ code: 'custom', message: `duplicate check name ${quoted(check.name)}`, path: [index, 'name'] });
      seen.add(check.name);
    });
  })
  .describe('Checks run in order after a rollback; all must pass (seed §3: functional, performance, data, security, resources)');

export type VerificationCheck = z.infer<typeof verificationCheckSchema>;
export type VerificationChecksInput = z.input<typeof verificationChecksSchema>;
export type HttpCheckConfig = Extract<VerificationCheck, { type: 'http' }>;
export type SecurityCheckConfig = Extract<VerificationCheck, { type: 'security' }>;
export type MysqlCheckConfig = Extract<VerificationCheck, { type: 'mysql' }>;
export type ResourcesCheckConfig = Extract<VerificationCheck, { type: 'resources' }>;
