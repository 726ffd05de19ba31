/**
 * Schema of the notifiers (DESIGN §6): webhooks in generic JSON or Slack-compatible form, and
 * presets for PagerDuty, Microsoft Teams and GitHub Deployments, each with its own filters and
 * delivery limits. Webhook URLs, routing keys and tokens are secrets (whoever has one can post or
 * open incidents): they come from a file or the environment and are never logged.
 */
import { z } from 'zod';
import type { NotifyKind } from '../core/types.js';

import { duration, quoted, SAFE_NAME } from '../config/schema-helpers.js';

/** Every kind the guard emits, with what it means; the compiler keeps this in step with NotifyKind. */
export const NOTIFY_KINDS: Record<NotifyKind, string> = {
  release_detected: 'A new version is running; its release window opened',
  rule_breached: 'A rule started failing',
  rule_recovered: 'A failing rule passes again',
  rule_blind: 'A rule has no data or its source fails',
  would_roll_back: 'A breach that automation did not act on (paused, rate limit)',
  rollback_started: 'A rollback began',
  rollback_finished: 'A rollback finished and was verified',
  rollback_failed: 'A rollback or its verification failed; automation is frozen',
  promoted: 'A release window ended clean; the version is the new stable',
  crash: 'The new version crashed',
  paused: 'Automation was paused',
  resumed: 'Automation was resumed',
  rollback_pending: 'A rollback was decided and waits out the veto window',
  vetoed: 'A human vetoed a pending rollback',
  rollback_not_ready: 'A rollback step is not ready (its preflight check found problems)',
  drill: 'A scheduled or requested rollback drill started or ended',
  fleet: 'Fleets: a clean window waits for the other hosts, or a release is not promoted because not every host ended clean',
  alert: 'An Alertmanager alert (triggers.alertmanager) fired outside a window or before the release began, or resolved',
  record_not_written: 'A rollback record could not be written after every retry (it stays in the state until it is)',
  plan_interrupted: 'A rollback plan stopped between steps (the state store or the lease was lost); it resumes from the next step once they are back',
};
const kinds = Object.keys(NOTIFY_KINDS) as [NotifyKind, ...NotifyKind[]];

/** Every notifier has a name (in logs). */
const named = {
  name: z
    .string()
    .regex(SAFE_NAME, 'must be 1-128 characters of letters, digits, ".", "_" or "-", starting with a letter or digit')
    .describe('Notifier name, used in logs'),
};

/** Filters and delivery limits, the same for every notifier type. */
const delivery = {
  events: z
    .array(z.enum(kinds))
    .min(1)
    .optional()
    .describe(`Kinds sent (default: all): ${kinds.join(', ')}`),
  min_severity: z.enum(['info', 'warning', 'critical']).default('info').describe('Less severe events are not sent'),
  timeout: duration('Per delivery attempt').default(5000),
  retries: z
    .number()
    .int()
    .min(0)
    .max(10)
    .default(3)
    .describe('Further attempts after a failed one, with exponential backoff (0.5s, 1s, 2s, …)'),
};

/** An environment variable name. */
const envName = z.string().regex(/^[A-Z_][A-Z0-9_]*$/, 'an environment variable name');

/** An http(s) URL (an API base or endpoint; not a secret for the presets below). */
const httpUrl = (description: string) =>
  z
    .string()
    .refine((value) => {
      try {
        return ['http:', 'https:'].includes(new URL(value).protocol);
      } catch {
        return false;
      }
    }, 'must be an http:// or https:// URL')
    .describe(description);

/** `<key>_file` / `<key>_env`: exactly one must be set. */
/** `<key>_file` and `<key>_env`: where a notifier's secret (`what`) is read from, never the config itself. */
const secretSource = <K extends string>(key: K, what: string) =>
  ({
    [`${key}_file`]: z.string().min(1).optional().describe(`File holding ${what} (not readable by group or others)`),
    [`${key}_env`]: envName.optional().describe(`Environment variable holding ${what}`),
  }) as Record<`${K}_file` | `${K}_env`, z.ZodOptional<z.ZodString>>;

const oneSecretSource = (key: string): [(n: Record<string, unknown>) => boolean, { message: string; path: string[] }] => [
  (n) => [n[`${key}_file`], n[`${key}_env`]].filter((v) => v !== undefined).length === 1,
  { message: `set exactly one of ${key}_file or ${key}_env`, path: [`${key}_file`] },
];

const webhookNotifier = z
  .object({
    type: z.literal('webhook'),
    ...named,
    url: z
      .string()
      .refine((value) => {
        try {
          return ['http:', 'https:'].includes(new URL(value).protocol);
        } catch {
          return false;
        }
      }, 'must be an http:// or https:// URL')
      .optional()
      .describe('Webhook URL; prefer url_file or url_env, as the URL is a secret'),
    ...secretSource('url', 'the webhook URL'),
    format: z
      .enum(['json', 'slack'])
      .default('json')
      .describe('json: the event as a JSON object (ISO time); slack: a Slack incoming-webhook message'),
    headers: z
      .record(z.string().regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/, 'an HTTP header name'), z.string())
      .default({})
      .describe('Extra request headers, e.g. an Authorization for a generic receiver (never logged)'),
    ...delivery,
  })
  .strict()
  .refine((n) => [n.url, n.url_file, n.url_env].filter((v) => v !== undefined).length === 1, {
    message: 'set exactly one of url, url_file or url_env',
    path: ['url'],
  });

/** PagerDuty Events API v2 (pagerduty.ts): incidents for the releases that need a human. */
const pagerdutyNotifier = z
  .object({
    type: z.literal('pagerduty'),
    ...named,
    ...secretSource('routing_key', 'the Events API v2 integration (routing) key'),
    url: httpUrl('Events API v2 endpoint; e.g. https://events.eu.pagerduty.com/v2/enqueue for the EU service region')
      .default('https://events.pagerduty.com/v2/enqueue'),
    ...delivery,
  })
  .strict()
  .refine(...oneSecretSource('routing_key'));

/** Microsoft Teams (teams.ts): an Adaptive Card through an incoming webhook or a Workflows URL. */
const teamsNotifier = z
  .object({
    type: z.literal('teams'),
    ...named,
    ...secretSource('url', 'the Teams incoming-webhook or Workflows URL'),
    ...delivery,
  })
  .strict()
  .refine(...oneSecretSource('url'));

/** GitHub Deployments (github-deployments.ts): a deployment and its statuses per release. */
const githubDeploymentsNotifier = z
  .object({
    type: z.literal('github_deployments'),
    ...named,
    ...secretSource('token', 'a GitHub token allowed to write deployments'),
    repository: z
      .string()
      .regex(/^[A-Za-z0-9-]{1,39}\/[A-Za-z0-9._-]{1,100}$/, 'must be owner/name')
      .describe('The repository whose deployments are reported, owner/name; each released version must be a ref (tag, branch or SHA) of it'),
    environment: z
      .string()
      .min(1)
      .max(255)
      .default('production')
      .describe('GitHub environment name of the deployments'),
    api_url: httpUrl('GitHub REST API base URL; https://HOST/api/v3 for GitHub Enterprise Server').default('https://api.github.com'),
    ...delivery,
  })
  .strict()
  .refine(...oneSecretSource('token'));

export const notifierSchema = z.discriminatedUnion('type', [webhookNotifier, pagerdutyNotifier, teamsNotifier, githubDeploymentsNotifier]);

export const notifiersSchema = z
  .array(notifierSchema)
  .default([])
  .superRefine((notifiers, ctx) => {
    const seen = new Set<string>();
    notifiers.forEach((notifier, index) => {
      if (seen.has(notifier.name)) ctx.addIssue({ code: 'custom', message: `duplicate notifier name ${quoted(notifier.name)}`, path: [index, 'name'] });
      seen.add(notifier.name);
    });
  })
  .describe('Where notifications go; delivery never delays a rollback');

export type NotifierConfig = z.infer<typeof notifierSchema>;
export type NotifiersInput = z.input<typeof notifiersSchema>;
export type WebhookNotifierConfig = Extract<NotifierConfig, { type: 'webhook' }>;
export type PagerDutyNotifierConfig = Extract<NotifierConfig, { type: 'pagerduty' }>;
export type TeamsNotifierConfig = Extract<NotifierConfig, { type: 'teams' }>;
export type GitHubDeploymentsNotifierConfig = Extract<NotifierConfig, { type: 'github_deployments' }>;
