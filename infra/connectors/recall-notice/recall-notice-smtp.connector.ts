import nodemailer from 'nodemailer';
import { z } from 'zod';
import { ConfigError, ExternalSystemError, type ExternalErrorKind } from '../../../activities/errors';
import type { RecallNotice } from '../../../activities/ports';
import { resolveEnvRef } from '../../config/load';
import { EnvRef } from '../../config/schema';
import { defineConnector } from '../define';
import { describeNetworkError } from '../errors';
import { recallNoticeText } from './recall-notice-text';

const Address = z.email({ error: 'expected an e-mail address' });

export const RecallNoticeSmtpConfig = z
  .strictObject({
    kind: z.literal('recall-notice-smtp').optional(),
    /** The plant's SMTP relay. */
    host: z.string().min(1),
    port: z.number().int().min(1).max(65535).default(587),
    /** `starttls`: upgrade after connecting, and refuse a relay that cannot; `implicit`: TLS from the first byte
     *  (port 465); `none`: plain text, for a relay on the same host only. */
    tls: z.enum(['starttls', 'implicit', 'none']).default('starttls'),
    /** Credentials, from the environment only; both or neither. */
    user: EnvRef.optional(),
    password: EnvRef.optional(),
    from: Address,
    /** Who receives a customer's notices: `recipients[customer]` where given, else `to`. */
    to: z.array(Address).min(1),
    recipients: z.record(z.string().min(1), z.array(Address).min(1)).default({}),
    timeoutMs: z.number().int().positive().max(300_000).default(30_000),
  })
  .refine((c) => (c.user === undefined) === (c.password === undefined), {
    error: 'give both user and password, or neither',
    path: ['password'],
  });

/** The notice's Message-ID: the same on every attempt, so a receiver can drop a repeated one (RFC 5322 §3.6.4). */
export function recallNoticeMessageId(notice: Pick<RecallNotice, 'recallId' | 'notificationId'>, from: string): string {
  const domain = from.slice(from.lastIndexOf('@') + 1);
  return `<recall.${notice.recallId.replace(/[^A-Za-z0-9.-]/g, '_')}.${notice.notificationId}@${domain}>`;
}

/** nodemailer's codes: a connection that failed or dropped is worth another try; a refused login is not. */
function kindOf(err: { code?: unknown; responseCode?: unknown }): ExternalErrorKind {
  if (typeof err.responseCode === 'number') return err.responseCode >= 500 ? 'rejected' : 'transient';
  if (err.code === 'EAUTH' || err.code === 'EENVELOPE' || err.code === 'EMESSAGE') return 'rejected';
  return 'transient';
}

/**
 * Recall notices as e-mail through an SMTP relay: a plain-text body for the reader and the notice as a JSON
 * attachment for the customer's systems. An SMTP relay cannot be asked whether it took a message, so a retry after
 * an answer lost in flight sends again with the same Message-ID (the activity's intent ledger makes that the only
 * case: a retry after a recorded send does not reach the relay).
 */
export default defineConnector({
  kind: 'recall-notice-smtp',
  role: 'recall-notice',
  configSchema: RecallNoticeSmtpConfig,
  async connect(config, ctx) {
    const prefix = `connectors.${ctx.name}`;
    const auth =
      config.user !== undefined && config.password !== undefined
        ? {
            user: resolveEnvRef(config.user, `${prefix}.user`, ctx.env),
            pass: resolveEnvRef(config.password, `${prefix}.password`, ctx.env),
          }
        : undefined;
    if (auth && config.tls === 'none') {
      throw new ConfigError(`${prefix}.tls: a password is never sent without TLS; use starttls or implicit`);
    }
    const transport = nodemailer.createTransport({
      host: config.host,
      port: config.port,
      secure: config.tls === 'implicit',
      requireTLS: config.tls === 'starttls',
      ignoreTLS: config.tls === 'none',
      ...(auth ? { auth } : {}),
      connectionTimeout: config.timeoutMs,
      greetingTimeout: config.timeoutMs,
      socketTimeout: config.timeoutMs,
    });
    const failed = (what: string, err: unknown) => {
      const e = (err ?? {}) as { code?: unknown; responseCode?: unknown };
      return new ExternalSystemError(
        ctx.name,
        kindOf(e),
        `${ctx.name} ${what}: ${describeNetworkError(err)}`,
        undefined,
        {
          cause: err,
        },
      );
    };
    let closed = false;
    return {
      port: {
        async deliver(notice: RecallNotice, { lookupFirst }) {
          if (closed) throw new ExternalSystemError(ctx.name, 'transient', `${ctx.name} is closed`);
          const messageId = recallNoticeMessageId(notice, config.from);
          if (lookupFirst) {
            ctx.log.warn(
              'recall notice sent again under its Message-ID: an earlier attempt may have reached the relay',
              {
                connector: ctx.name,
                messageId,
              },
            );
          }
          const { subject, text } = recallNoticeText(notice);
          try {
            const info = await transport.sendMail({
              from: config.from,
              to: config.recipients[notice.customer] ?? config.to,
              subject,
              text,
              messageId,
              headers: { 'X-Holdfast-Idempotency-Key': notice.idempotencyKey },
              attachments: [
                {
                  filename: `recall-notice-${notice.notificationId}.json`,
                  contentType: 'application/json',
                  content: JSON.stringify(notice, null, 2),
                },
              ],
            });
            return { reference: info.messageId };
          } catch (err) {
            throw failed('relay refused or unreachable', err);
          }
        },
      },
      async healthCheck() {
        try {
          await transport.verify();
        } catch (err) {
          throw failed('health check', err);
        }
        return `${config.host}:${config.port} accepted the connection${auth ? ' and the login' : ''}`;
      },
      close: async () => {
        closed = true;
        transport.close();
      },
    };
  },
});
