/**
 * The Teams notifier against a local server that checks each message against the documented
 * shape of a Teams webhook message with an Adaptive Card (message type, attachment content type,
 * AdaptiveCard 1.x body elements and their enum values, the 28 KB size limit), Markdown in the
 * guard's text escaped, the URL never in an error.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startJsonReceiver, type JsonReceiver, type ReceivedRequest, type Reply } from '../../test/helpers/json-receiver.js';
import { notifiersSchema, type TeamsNotifierConfig } from './schema.js';
import { createTeamsNotifier, teamsEscape } from './teams.js';
import type { NotificationEvent } from './types.js';
import { NotifyError } from './webhook.js';

const SECRET_PATH = '/webhookb2/0a1b2c3d-SECRET-4e5f/IncomingWebhook/abcdefSECRET123';

/** The problems of a Teams message with Adaptive Cards, none when valid. */
function messageProblems(body: unknown, bytes: number): string[] {
  const problems: string[] = [];
  if (bytes > 28 * 1024) problems.push(`message is ${bytes} bytes, above the 28 KB limit`);
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- walks a card of any shape received from the wire, reporting what is wrong
  const message = body as Record<string, any>;
  if (message?.type !== 'message') problems.push('type must be "message"');
  if (!Array.isArray(message?.attachments) || message.attachments.length === 0) return [...problems, 'attachments must be a non-empty list'];
  for (const attachment of message.attachments) {
    if (attachment.contentType !== 'application/vnd.microsoft.card.adaptive') problems.push('contentType must be application/vnd.microsoft.card.adaptive');
    const card = attachment.content;
    if (card?.type !== 'AdaptiveCard') problems.push('content.type must be AdaptiveCard');
    if (typeof card?.version !== 'string' || !/^1\.[0-5]$/.test(card.version)) problems.push('content.version must be 1.0-1.5 (what Teams renders)');
    if (card?.$schema !== undefined && card.$schema !== 'http://adaptivecards.io/schemas/adaptive-card.json') problems.push('$schema is not the Adaptive Card schema');
    if (!Array.isArray(card?.body)) {
      problems.push('content.body must be a list');
      continue;
    }
    for (const element of card.body) {
      if (element.type === 'TextBlock') {
        if (typeof element.text !== 'string' || element.text === '') problems.push('TextBlock.text is required');
        if (element.weight !== undefined && !['Default', 'Lighter', 'Bolder'].includes(element.weight)) problems.push(`TextBlock.weight ${element.weight}`);
        if (element.size !== undefined && !['Default', 'Small', 'Medium', 'Large', 'ExtraLarge'].includes(element.size)) problems.push(`TextBlock.size ${element.size}`);
        if (element.color !== undefined && !['Default', 'Dark', 'Light', 'Accent', 'Good', 'Warning', 'Attention'].includes(element.color)) problems.push(`TextBlock.color ${element.color}`);
        if (element.wrap !== undefined && typeof element.wrap !== 'boolean') problems.push('TextBlock.wrap must be a boolean');
      } else if (element.type === 'FactSet') {
        // eslint-disable-next-line @typescript-eslint/no-explicit-any -- a fact of any shape, as received
        if (!Array.isArray(element.facts) || !element.facts.every((f: any) => typeof f.title === 'string' && typeof f.value === 'string')) problems.push('FactSet.facts must be {title, value} strings');
      } else {
        problems.push(`unexpected element ${String(element.type)}`);
      }
    }
  }
  return problems;
}

let override: Reply[] = [];
function teams(request: ReceivedRequest): Reply {
  const forced = override.shift();
  if (forced) return forced;
  if (request.method !== 'POST' || request.url !== SECRET_PATH) return { status: 404, body: `no webhook at ${request.url}` };
  const problems = messageProblems(request.body, request.bytes);
  return problems.length > 0 ? { status: 400, body: { error: problems.join('; ') } } : { status: 200, body: '1' };
}

let server: JsonReceiver;
beforeAll(async () => {
  server = await startJsonReceiver(teams);
});
afterAll(() => server.close());
beforeEach(() => {
  server.received.length = 0;
  override = [];
});

const notifier = (extra: Record<string, unknown> = {}) =>
  createTeamsNotifier(notifiersSchema.parse([{ type: 'teams', name: 'ops', url_env: 'TEAMS_URL', ...extra }])[0] as TeamsNotifierConfig, { TEAMS_URL: `${server.base}${SECRET_PATH}` });
const never = () => new AbortController().signal;
const event: NotificationEvent = {
  kind: 'rollback_started',
  severity: 'critical',
  message: 'rolling back v2 -> v1: *error_rate* 12 % > 5 % on [checkout](http://evil.example) `db_pool` _p99_ {{DATE(2026-01-01T00:00:00Z)}}',
  service: 'web',
  at: Date.UTC(2026, 0, 24, 10, 0, 0),
  release: { version: 'v2', previous: 'v1' },
};

/** What a reader sees: Markdown backslash escapes removed. */
const shown = (text: string) => text.replace(/\\([\\`*_~[\]\-+#>.])/g, '$1').replace(/\u200b/g, '');

describe('teams notifier', () => {
  it('posts a valid Adaptive Card message whose text shows as written (Markdown escaped)', async () => {
    await notifier().send(event, never());
    const request = server.received[0]!;
    expect(messageProblems(request.body, request.bytes)).toEqual([]);
    // eslint-disable-next-line @typescript-eslint/no-explicit-any -- the card as received; messageProblems checked its shape above
    const card = (request.body as any).attachments[0].content;
    expect(card.body[0]).toMatchObject({ text: '\\[critical\\] web: rollback\\_started', color: 'Attention', weight: 'Bolder' });
    const text: string = card.body[1].text;
    // No Markdown left unescaped: no emphasis, code or link opens.
    expect(text).not.toMatch(/(?<!\\)[*_`[\]]/);
    expect(text).not.toContain('{{');
    expect(shown(text)).toBe(event.message);
    expect(card.body[2].facts).toContainEqual({ title: 'Release', value: 'v2 (previous: v1)' });
    expect(teamsEscape('- item\n1. first\n# head\n> quote')).toBe('\\- item\n1\\. first\n\\# head\n\\> quote');
  });

  it('keeps a huge message under the 28 KB limit', async () => {
    await notifier().send({ ...event, message: 'é*'.repeat(20_000) }, never());
    const request = server.received[0]!;
    expect(messageProblems(request.body, request.bytes)).toEqual([]);
  });

  it('treats a 200 saying delivery failed as a failure, and never shows the URL', async () => {
    const errors: NotifyError[] = [];
    const attempt = async () => {
      const error = (await notifier({ timeout: '300ms' }).send(event, never()).then(() => undefined, (e: unknown) => e)) as NotifyError;
      expect(error).toBeInstanceOf(NotifyError);
      errors.push(error);
      return error;
    };
    override = [{ status: 200, body: 'Webhook message delivery failed with error: Microsoft Teams endpoint returned HTTP error 429 with ContextId tcid=0' }];
    expect(await attempt()).toMatchObject({ retryable: true });
    override = [{ status: 400, body: `Bad payload for ${SECRET_PATH}` }];
    expect(await attempt()).toMatchObject({ retryable: false, message: 'teams "ops": Teams answered 400: Bad payload for ***' });
    for (const error of errors) expect(`${error.message} ${JSON.stringify(error)}`).not.toMatch(/SECRET/);
    expect(() => notifier({ url_env: 'NOT_SET' })).toThrow('notifier "ops": environment variable NOT_SET (url_env) is not set');
  });
});
