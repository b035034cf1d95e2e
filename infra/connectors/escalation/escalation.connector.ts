import type { EscalationMessage, EscalationPort } from '../../../activities/ports';
import type { ConnectorLogger } from '../define';
import { kindForHttpStatus } from '../errors';
import { ExternalSystemError } from '../../../activities/errors';

export type EscalationTarget = { kind: 'log' } | { kind: 'webhook'; url: string };

/** Where an overdue disposition is announced: the worker log, or a webhook (andon board, Teams/Slack relay, MES alarm). */
export function createEscalationPort(target: EscalationTarget, log: ConnectorLogger): EscalationPort {
  if (target.kind === 'log') {
    return {
      async escalate(message: EscalationMessage) {
        log.warn(`ESCALATION ${message.text}`, { ...message });
      },
    };
  }
  return {
    async escalate(message: EscalationMessage) {
      let res: Response;
      try {
        res = await fetch(target.url, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'idempotency-key': message.idempotencyKey },
          body: JSON.stringify(message),
          signal: AbortSignal.timeout(10_000),
        });
      } catch (err) {
        throw new ExternalSystemError(
          'escalation-webhook',
          'transient',
          `webhook unreachable: ${(err as Error).message}`,
          undefined,
          {
            cause: err,
          },
        );
      }
      if (!res.ok) {
        throw new ExternalSystemError(
          'escalation-webhook',
          kindForHttpStatus(res.status),
          `webhook answered HTTP ${res.status}`,
          res.status,
        );
      }
    },
  };
}
