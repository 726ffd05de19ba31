/**
 * Alertmanager's webhook payload (version 4), as its receiver documentation gives it: the fields
 * the guard reads are required and typed; the others are let through unread.
 * https://prometheus.io/docs/alerting/latest/configuration/#webhook_config
 */
import { z } from 'zod';

const labels = z.record(z.string(), z.string());
const instant = z.string().refine((text) => !Number.isNaN(Date.parse(text)), 'an RFC 3339 time');

export const alertmanagerPayload = z.looseObject({
  version: z.string().optional(),
  status: z.enum(['firing', 'resolved']),
  alerts: z
    .array(
      z.looseObject({
        status: z.enum(['firing', 'resolved']),
        labels,
        annotations: labels.optional(),
        startsAt: instant,
        endsAt: z.string().optional(),
        fingerprint: z.string().max(128).optional(),
      }),
    )
    .max(1000, 'at most 1000 alerts per message; set max_alerts in the webhook_config'),
});

export type AlertmanagerPayload = z.infer<typeof alertmanagerPayload>;
export type AlertmanagerAlert = AlertmanagerPayload['alerts'][number];
