import { z } from 'zod';
import type { RecallNotice } from '../../../activities/ports';
import { defineConnector } from '../define';
import { jsonWebhookFields, openJsonWebhook } from '../json-webhook';

export const RecallNoticeWebhookConfig = z.strictObject({
  kind: z.literal('recall-notice-webhook').optional(),
  /** Where notifications are POSTed (a customer portal's intake, an integration platform). A URL that carries a
   *  secret comes from the environment: `${env:NAME}`. */
  ...jsonWebhookFields,
});

/**
 * Recall notifications POSTed as JSON, the notification's idempotency key in `Idempotency-Key`. A webhook cannot be
 * asked whether it already has a notice, so a retry after a lost answer POSTs again under the same key, which the
 * receiver drops (draft-ietf-httpapi-idempotency-key-header).
 */
export default defineConnector({
  kind: 'recall-notice-webhook',
  role: 'recall-notice',
  configSchema: RecallNoticeWebhookConfig,
  async connect(config, ctx) {
    const webhook = openJsonWebhook(config, ctx);
    return {
      port: {
        async deliver(notice: RecallNotice) {
          const status = await webhook.post(notice, notice.idempotencyKey);
          return { reference: `HTTP ${status} from ${webhook.origin}` };
        },
      },
      healthCheck: () => webhook.healthCheck(),
      close: () => webhook.close(),
    };
  },
});
