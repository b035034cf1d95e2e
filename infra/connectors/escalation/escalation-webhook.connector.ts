import { z } from 'zod';
import type { EscalationMessage } from '../../../activities/ports';
import { defineConnector } from '../define';
import { jsonWebhookFields, openJsonWebhook } from '../json-webhook';

export const EscalationWebhookConfig = z.strictObject({
  kind: z.literal('escalation-webhook').optional(),
  /** Where overdue dispositions are POSTed (andon board, Teams/Slack relay, MES alarm). Chat webhooks carry their
   *  secret in the URL: give those as `${env:NAME}`. */
  ...jsonWebhookFields,
});

/**
 * Overdue dispositions POSTed as JSON to a webhook, with the message's idempotency key in `Idempotency-Key` (the
 * activity sends each key once; a receiver that dedupes on the header is safe against a retry after a lost answer).
 */
export default defineConnector({
  kind: 'escalation-webhook',
  role: 'escalation',
  configSchema: EscalationWebhookConfig,
  async connect(config, ctx) {
    const webhook = openJsonWebhook(config, ctx);
    return {
      port: {
        async escalate(message: EscalationMessage) {
          await webhook.post(message, message.idempotencyKey);
        },
      },
      healthCheck: () => webhook.healthCheck(),
      close: () => webhook.close(),
    };
  },
});
