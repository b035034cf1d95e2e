import type { Pool } from 'pg';
import type { EscalationMessage, EscalationPort } from '../ports';
import { atBoundary } from '../boundary';

export interface EscalationDeps {
  pool: Pool;
  /** The escalation target configured for a site (temporal.yaml sites[].escalation, a connector). */
  escalationFor: (site: string) => { target: string; port: EscalationPort };
}

export const createEscalationActivities = ({ pool, escalationFor }: EscalationDeps) => ({
  /** Tells the configured target a held lot is still waiting for a disposition; sent at most once per key. */
  async escalateDisposition(message: EscalationMessage): Promise<{ sent: boolean }> {
    const { target, port } = escalationFor(message.site);
    const seen = await pool.query('SELECT 1 FROM holdfast.escalation WHERE idempotency_key = $1', [
      message.idempotencyKey,
    ]);
    if (seen.rowCount) return { sent: false };
    await atBoundary(`escalate lot ${message.lotId} to ${target}`, () => port.escalate(message));
    await pool.query(
      `INSERT INTO holdfast.escalation (idempotency_key, lot_case_id, site, lot_id, target, message)
       VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (idempotency_key) DO NOTHING`,
      [message.idempotencyKey, message.lotCaseWorkflowId, message.site, message.lotId, target, message.text],
    );
    return { sent: true };
  },
});

export type EscalationActivities = ReturnType<typeof createEscalationActivities>;
