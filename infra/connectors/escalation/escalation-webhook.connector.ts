import { z } from 'zod';
import type { EscalationMessage } from '../../../activities/ports';
import { resolveEnvRef } from '../../config/load';
import { ConfigError } from '../../../activities/errors';
import { EnvRef } from '../../config/schema';
import { redactUrl } from '../../local/redact-url';
import { defineConnector } from '../define';
import { describeNetworkError, kindForHttpStatus } from '../errors';
import { ExternalSystemError } from '../../../activities/errors';
import { createHttpTransport } from '../http-transport';

const HttpUrl = z.url({ protocol: /^https?$/, error: 'expected an http: or https: URL' });

export const EscalationWebhookConfig = z.strictObject({
  kind: z.literal('escalation-webhook').optional(),
  /** Where overdue dispositions are POSTed (andon board, Teams/Slack relay, MES alarm). Chat webhooks carry their
   *  secret in the URL: give those as `${env:NAME}`. */
  url: z.union([EnvRef, HttpUrl]),
  timeoutMs: z.number().int().positive().max(120_000).default(10_000),
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
    const key = `connectors.${ctx.name}.url`;
    const url = resolveEnvRef(config.url, key, ctx.env);
    if (!HttpUrl.safeParse(url).success) throw new ConfigError(`${key}: expected an http: or https: URL`);
    const http = createHttpTransport({ timeoutMs: config.timeoutMs, maxResponseBytes: 64 * 1024 });
    const unreachable = (what: string, err: unknown) =>
      new ExternalSystemError(ctx.name, 'transient', `${ctx.name} ${what}: ${describeNetworkError(err)}`, undefined, {
        cause: err,
      });

    return {
      port: {
        async escalate(message: EscalationMessage) {
          let status: number;
          try {
            ({ status } = await http.send({
              method: 'POST',
              url,
              headers: { 'content-type': 'application/json', 'idempotency-key': message.idempotencyKey },
              body: JSON.stringify(message),
            }));
          } catch (err) {
            throw unreachable('webhook unreachable', err);
          }
          if (status < 200 || status >= 300) {
            throw new ExternalSystemError(
              ctx.name,
              kindForHttpStatus(status),
              `webhook answered HTTP ${status}`,
              status,
            );
          }
        },
      },
      // Reachability, not acceptance: many webhooks answer HEAD with 404 or 405, which still shows the receiver is
      // there. No answer, or a 5xx, fails.
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
