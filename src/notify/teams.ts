/**
 * Microsoft Teams: one message per event carrying an Adaptive Card (schema 1.4), posted to an
 * incoming webhook or a Workflows ("Post to a channel when a webhook request is received") URL.
 * The URL is a secret (whoever holds it posts to the channel): from a file or the environment,
 * never in an error message.
 *
 * Card text is Markdown to Teams: the guard's messages quote versions, rule names and observed
 * values that could contain `*`, `_`, `[`… so text is escaped and shows as written.
 */
import { exchange, notifyFailure, rejected } from './exchange.js';
import type { TeamsNotifierConfig } from './schema.js';
import { readSecretUrl, secretFragments } from './secret-source.js';
import type { NotificationEvent, Notifier, Severity } from './types.js';

/** Teams refuses messages above about 28 KB; the guard's messages are short, this bounds a freak one. */
const MESSAGE_MAX = 4000;

/** TextBlock colours by severity (Adaptive Card `color` values). */
const COLORS: Record<Severity, string> = { info: 'Good', warning: 'Warning', critical: 'Attention' };

/**
 * Escapes the Markdown Adaptive Cards render (emphasis, links, code, lists, headings, quotes) with
 * backslashes, and breaks `{{` so the text is not read as a DATE()/TIME() function.
 */
export function teamsEscape(text: string): string {
  return text
    .replace(/[\\`*_~[\]]/g, (c) => `\\${c}`)
    .replace(/^(\s*)([-+#>])/gm, '$1\\$2')
    .replace(/^(\s*\d+)\.(?=\s)/gm, '$1\\.')
    .replace(/\{\{/g, '{\u200b{');
}

function cut(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

/** The Teams message: a title coloured by severity, the message, and the facts. */
export function teamsPayload(event: NotificationEvent): Record<string, unknown> {
  const facts = [
    { title: 'Service', value: teamsEscape(event.service) },
    { title: 'Kind', value: teamsEscape(event.kind) },
    { title: 'Severity', value: event.severity },
    { title: 'Time', value: new Date(event.at).toISOString() },
  ];
  if (event.release) {
    facts.push({ title: 'Release', value: teamsEscape(`${event.release.version} (previous: ${event.release.previous ?? 'none'})`) });
  }
  return {
    type: 'message',
    attachments: [
      {
        contentType: 'application/vnd.microsoft.card.adaptive',
        contentUrl: null,
        content: {
          $schema: 'http://adaptivecards.io/schemas/adaptive-card.json',
          type: 'AdaptiveCard',
          version: '1.4',
          // Shown where the card cannot be (notifications, old clients).
          fallbackText: cut(`[${event.severity}] ${event.service}: ${event.message}`, MESSAGE_MAX),
          body: [
            {
              type: 'TextBlock',
              text: teamsEscape(`[${event.severity}] ${event.service}: ${event.kind}`),
              weight: 'Bolder',
              size: 'Medium',
              color: COLORS[event.severity],
              wrap: true,
            },
            { type: 'TextBlock', text: teamsEscape(cut(event.message, MESSAGE_MAX)), wrap: true },
            { type: 'FactSet', facts },
          ],
        },
      },
    ],
  };
}

/**
 * Creates a Teams notifier (reads the URL now; throws a GuardError when it cannot). 2xx is
 * delivered — except the answer legacy connectors give with a 200: "Webhook message delivery
 * failed with error: … HTTP error 429", a failure worth retrying when it names 429 or a 5xx.
 */
export function createTeamsNotifier(config: TeamsNotifierConfig, env: NodeJS.ProcessEnv = process.env): Notifier {
  const url = readSecretUrl(`notifier "${config.name}"`, 'url', { file: config.url_file, env: config.url_env }, env);
  const fail = notifyFailure(`teams "${config.name}"`, secretFragments(url));
  return {
    name: config.name,
    async send(event, signal) {
      const answer = await exchange({ method: 'POST', url: url.href, body: teamsPayload(event), timeoutMs: config.timeout, signal }, fail);
      if (answer.status >= 200 && answer.status < 300) {
        if (!/delivery failed/i.test(answer.text)) return;
        const code = Number(/HTTP error (\d{3})/i.exec(answer.text)?.[1] ?? 0);
        throw fail(`Teams answered ${answer.status} but: ${answer.text.replace(/\s+/g, ' ').trim()}`, 'notify_rejected', code === 429 || code >= 500);
      }
      throw rejected(answer, fail, 'Teams');
    },
  };
}
