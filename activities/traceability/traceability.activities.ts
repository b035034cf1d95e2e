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

/** The insert of a set of trace links, its seven column arrays numbered from `$first`. */
const insertLinksSql = (first: number): string => {
  const [a, b, c, d, e, f, g] = Array.from({ length: 7 }, (_, i) => `$${first + i}`);
  return `INSERT INTO holdfast.trace_link (from_kind, from_id, relation, to_kind, to_id, system, attributes)
       SELECT * FROM unnest(${a}::text[], ${b}::text[], ${c}::text[], ${d}::text[], ${e}::text[], ${f}::text[], ${g}::jsonb[])
       ON CONFLICT (from_kind, from_id, relation, to_kind, to_id) DO NOTHING`;
};

const linkColumns = (links: TraceLink[]): unknown[] => [
  links.map((l) => l.fromKind),
  links.map((l) => l.fromId),
  links.map((l) => l.relation),
  links.map((l) => l.toKind),
  links.map((l) => l.toId),
  links.map((l) => l.system ?? null),
  links.map((l) => JSON.stringify(l.attributes ?? {})),
];

export const createTraceabilityActivities = ({ pool }: TraceabilityDeps) => {
  async function insertLinks(links: TraceLink[]): Promise<number> {
    if (links.length === 0) return 0;
    // One statement for the whole set: either every edge is there afterwards or none is; a retry re-inserts nothing.
    const res = await pool.query(insertLinksSql(1), linkColumns(links));
    return res.rowCount ?? 0;
  }

  return {
    /**
     * The lot case has taken these parts: each inspection's edges (its lot, part, work order and the case handling
     * it) and, in the same statement, the parts' outbox rows marked confirmed. A confirmed row is one the engine has
     * recorded, so the dispatcher stops sending it again (docs/reliability.md#outbox). One round trip per batch; a
     * retry changes nothing.
     */
    async enrolParts({
      lotCaseWorkflowId,
      runId,
      parts,
    }: {
      lotCaseWorkflowId: string;
      runId: string;
      parts: DefectDetection[];
    }): Promise<void> {
      const links = parts.flatMap((d): TraceLink[] => {
        const inspection = { fromKind: 'inspection', fromId: d.eventId };
        return [
          { ...inspection, relation: 'part-of-lot', toKind: 'lot', toId: lotNodeId(d.site, d.lotId) },
          { ...inspection, relation: 'inspects-part', toKind: 'part', toId: d.partId },
          { ...inspection, relation: 'counted-on', toKind: 'work-order', toId: d.workOrder },
          {
            ...inspection,
            relation: 'handled-by',
            toKind: 'workflow',
            toId: lotCaseWorkflowId,
            system: 'temporal',
            attributes: { runId, station: `${d.site}/${d.line}/${d.station}`, modelVersion: d.modelVersion },
          },
        ];
      });
      // A row still locked by the dispatcher's drain (it is marking this very row dispatched) is waited for: the
      // confirmation then lands after the dispatch, never under it.
      await pool.query(
        `WITH links AS (${insertLinksSql(3)})
         UPDATE holdfast.outbox SET confirmed_at = clock_timestamp(), workflow_run_id = $2
          WHERE event_id = ANY($1::text[]) AND confirmed_at IS NULL`,
        [parts.map((d) => d.eventId), runId, ...linkColumns(links)],
      );
    },

    async linkDocuments({ links }: { links: TraceLink[] }): Promise<number> {
      return insertLinks(links);
    },

    /**
     * Keeps the durable projection of a lot case current; Temporal history is not the record
     * (docs/reliability.md#temporal-history-is-not-the-record).
     * Trace links the case gathered since its last record go in the same statement: one round trip, and the lot's
     * state and its links are written together or not at all.
     */
    async saveLotCase({
      workflowId,
      runId,
      state,
      links = [],
    }: {
      workflowId: string;
      runId: string;
      state: LotCaseState;
      links?: TraceLink[];
    }): Promise<void> {
      const params: unknown[] = [
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
      ];
      const upsert = `INSERT INTO holdfast.lot_case
           (workflow_id, run_id, site, line, lot_id, sku, stage, hold_id, notification, state, opened_at, closed_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
         ON CONFLICT (workflow_id, run_id) DO UPDATE SET
           stage = EXCLUDED.stage, hold_id = EXCLUDED.hold_id, notification = EXCLUDED.notification,
           state = EXCLUDED.state, closed_at = EXCLUDED.closed_at, updated_at = now()`;
      if (links.length === 0) {
        await pool.query(upsert, params);
        return;
      }
      await pool.query(`WITH links AS (${insertLinksSql(13)}) ${upsert}`, [...params, ...linkColumns(links)]);
    },
  };
};

export type TraceabilityActivities = ReturnType<typeof createTraceabilityActivities>;
