import { z } from 'zod';
import { ConfigError, ExternalSystemError } from '../../../activities/errors';
import type { RecallNotice } from '../../../activities/ports';
import { resolveEnvRef } from '../../config/load';
import { EnvRef } from '../../config/schema';
import { redactUrl } from '../../local/redact-url';
import { defineConnector } from '../define';
import { describeNetworkError, kindForHttpStatus } from '../errors';
import { AllowedHost, HttpUrl, checkAllowedHost, redirectTarget } from '../escalation/escalation-webhook.connector';
import { createHttpTransport } from '../http-transport';

export const RecallNoticeWebhookConfig = z.strictObject({
  kind: z.literal('recall-notice-webhook').optional(),
  /** Where notifications are POSTed (a customer portal's intake, an integration platform). A URL that carries a
   *  secret comes from the environment: `${env:NAME}`. */
  url: z.union([EnvRef, HttpUrl]),
  /** The hosts the webhook may be on (OWASP API7); required when `url` comes from the environment. */
  allowedHosts: z.array(AllowedHost).min(1).optional(),
  timeoutMs: z.number().int().positive().max(120_000).default(10_000),
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
    const key = `connectors.${ctx.name}.url`;
    const url = resolveEnvRef(config.url, key, ctx.env);
    if (!HttpUrl.safeParse(url).success) throw new ConfigError(`${key}: expected an http: or https: URL`);
    checkAllowedHost(url, config, `connectors.${ctx.name}`);
    const http = createHttpTransport({ timeoutMs: config.timeoutMs, maxResponseBytes: 64 * 1024 });
    const unreachable = (what: string, err: unknown) =>
      new ExternalSystemError(ctx.name, 'transient', `${ctx.name} ${what}: ${describeNetworkError(err)}`, undefined, {
        cause: err,
      });
    return {
      port: {
        async deliver(notice: RecallNotice) {
          let answer;
          try {
            answer = await http.send({
              method: 'POST',
              url,
              headers: { 'content-type': 'application/json', 'idempotency-key': notice.idempotencyKey },
              body: JSON.stringify(notice),
            });
          } catch (err) {
            throw unreachable('webhook unreachable', err);
          }
          const { status, headers } = answer;
          if (status >= 300 && status < 400) {
            throw new ExternalSystemError(
              ctx.name,
              'rejected',
              `webhook answered HTTP ${status}, a redirect to ${redirectTarget(url, headers.get('location'))}; redirects are not followed`,
              status,
            );
          }
          if (status < 200 || status >= 300) {
            throw new ExternalSystemError(
              ctx.name,
              kindForHttpStatus(status),
              `webhook answered HTTP ${status}`,
              status,
            );
          }
          return { reference: `HTTP ${status} from ${new URL(redactUrl(url)).origin}` };
        },
      },
      // Reachability, as for the escalation webhook: any answer below 500 shows the receiver is there.
      async healthCheck() {
        let status: number;
        try {
          ({ status } = await http.send({ method: 'HEAD', url }));
        } catch (err) {
          throw unreachable('health check', err);
        }
        if (status >= 500) {
          throw new ExternalSystemError(ctx.name, 'transient', `${ctx.name} health check: HTTP ${status}`, status);
        }
        return `${new URL(redactUrl(url)).origin} answered HEAD with HTTP ${status}`;
      },
      close: async () => http.close(),
    };
  },
});
