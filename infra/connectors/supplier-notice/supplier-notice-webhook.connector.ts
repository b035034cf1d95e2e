import { z } from 'zod';
import type { SupplierNotice } from '../../../activities/ports';
import { defineConnector } from '../define';
import { jsonWebhookFields, openJsonWebhook } from '../json-webhook';

export const SupplierNoticeWebhookConfig = z.strictObject({
  kind: z.literal('supplier-notice-webhook').optional(),
  /** Where SCAR notices are POSTed (a supplier portal's intake, an integration platform). A URL that carries a
   *  secret comes from the environment: `${env:NAME}`. */
  ...jsonWebhookFields,
});

/**
 * SCAR notices POSTed as JSON, each notice's key in `Idempotency-Key`: a retry after a lost answer POSTs again under
 * the same key, which the receiver drops (draft-ietf-httpapi-idempotency-key-header).
 */
export default defineConnector({
  kind: 'supplier-notice-webhook',
  role: 'supplier-notice',
  configSchema: SupplierNoticeWebhookConfig,
  async connect(config, ctx) {
    const webhook = openJsonWebhook(config, ctx);
    return {
      port: {
        async deliver(notice: SupplierNotice) {
          const status = await webhook.post(notice, notice.idempotencyKey);
          return { reference: `HTTP ${status} from ${webhook.origin}` };
        },
      },
      healthCheck: () => webhook.healthCheck(),
      close: () => webhook.close(),
    };
  },
});
