import type { Pool } from 'pg';
import type { DefectDetection, LotCaseState } from '../../workflows/contracts';

/** An edge of the traceability graph (holdfast.trace_link). Kinds and relations are listed in traceability/README.md. */
export interface TraceLink {
  fromKind: string;
  fromId: string;
  relation: string;
  toKind: string;
  toId: string;
  system?: string;
  attributes?: Record<string, unknown>;
}

export interface TraceabilityDeps {
  pool: Pool;
}

/** Lots are only unique within a site, so the graph names them `<site>/<lot>`. */
export const lotNodeId = (site: string, lotId: string): string => `${site}/${lotId}`;

export const createTraceabilityActivities = ({ pool }: TraceabilityDeps) => {
  async function insertLinks(links: TraceLink[]): Promise<number> {
    if (links.length === 0) return 0;
    // One statement for the whole set: either every edge is there afterwards or none is; a retry re-inserts nothing.
    const res = await pool.query(
      `INSERT INTO holdfast.trace_link (from_kind, from_id, relation, to_kind, to_id, system, attributes)
       SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::jsonb[])
       ON CONFLICT (from_kind, from_id, relation, to_kind, to_id) DO NOTHING`,
      [
        links.map((l) => l.fromKind),
        links.map((l) => l.fromId),
        links.map((l) => l.relation),
        links.map((l) => l.toKind),
        links.map((l) => l.toId),
        links.map((l) => l.system ?? null),
        links.map((l) => JSON.stringify(l.attributes ?? {})),
      ],
    );
    return res.rowCount ?? 0;
  }

  return {
    /** Links a failed inspection to its lot, work order, part and the workflow handling it. */
    async linkInspection({
      detection: d,
      defectWorkflowId,
    }: {
      detection: DefectDetection;
      defectWorkflowId: string;
    }): Promise<number> {
      const inspection = { fromKind: 'inspection', fromId: d.eventId };
      return insertLinks([
        { ...inspection, relation: 'part-of-lot', toKind: 'lot', toId: lotNodeId(d.site, d.lotId) },
        { ...inspection, relation: 'inspects-part', toKind: 'part', toId: d.partId },
        { ...inspection, relation: 'counted-on', toKind: 'work-order', toId: d.workOrder },
        {
          ...inspection,
          relation: 'handled-by',
          toKind: 'workflow',
          toId: defectWorkflowId,
          system: 'temporal',
          attributes: { station: `${d.site}/${d.line}/${d.station}`, modelVersion: d.modelVersion },
        },
      ]);
    },

    async linkDocuments({ links }: { links: TraceLink[] }): Promise<number> {
      return insertLinks(links);
    },

    /** Keeps the durable projection of a lot case current; Temporal history is not the record (reliability.md §1.5). */
    async saveLotCase({
      workflowId,
      runId,
      state,
    }: {
      workflowId: string;
      runId: string;
      state: LotCaseState;
    }): Promise<void> {
      await pool.query(
        `INSERT INTO holdfast.lot_case
           (workflow_id, run_id, site, line, lot_id, sku, stage, hold_id, notification, state, opened_at, closed_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
         ON CONFLICT (workflow_id, run_id) DO UPDATE SET
           stage = EXCLUDED.stage, hold_id = EXCLUDED.hold_id, notification = EXCLUDED.notification,
           state = EXCLUDED.state, closed_at = EXCLUDED.closed_at, updated_at = now()`,
        [
          workflowId,
          runId,
          state.site,
          state.line,
          state.lotId,
          state.sku,
          state.stage,
          state.holdId ?? null,
          state.notification ?? null,
          JSON.stringify(state),
          state.openedAt,
          state.closedAt ?? null,
        ],
      );
    },
  };
};

export type TraceabilityActivities = ReturnType<typeof createTraceabilityActivities>;
