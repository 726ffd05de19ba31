/**
 * Sends one notification through the real webhook notifier and prints `delivered` or the error:
 * run as a child process so that its environment (HTTPS_PROXY, NODE_EXTRA_CA_CERTS) is its own.
 * Usage: send-webhook.ts URL
 */
import { notifiersSchema, type WebhookNotifierConfig } from '../../src/notify/schema.js';
import { createWebhookNotifier } from '../../src/notify/webhook.js';

const [url] = process.argv.slice(2);
const config = notifiersSchema.parse([{ type: 'webhook', name: 'ops', url, timeout: '5s' }])[0] as WebhookNotifierConfig;
const event = { kind: 'rollback_started', severity: 'critical', message: 'rolling back v2 -> v1', service: 'web', at: Date.now() } as const;
createWebhookNotifier(config)
  .send(event, new AbortController().signal)
  .then(
    () => console.log('delivered'),
    (error: unknown) => console.log(`failed: ${(error as Error).message}`),
  );
