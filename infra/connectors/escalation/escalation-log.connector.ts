import { z } from 'zod';
import type { EscalationMessage } from '../../../activities/ports';
import { defineConnector } from '../define';

/** Overdue dispositions announced in the worker's log, where the plant's log shipping picks them up. */
export default defineConnector({
  kind: 'escalation-log',
  role: 'escalation',
  configSchema: z.strictObject({ kind: z.literal('escalation-log').optional() }),
  async connect(_config, ctx) {
    return {
      port: {
        async escalate(message: EscalationMessage) {
          ctx.log.warn(`ESCALATION ${message.text}`, { ...message });
        },
      },
      // Nothing outside the process to ask.
      healthCheck: async () => 'the worker log',
      close: async () => undefined,
    };
  },
});
