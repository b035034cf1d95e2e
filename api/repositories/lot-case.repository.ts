import type pg from 'pg';

export interface LotCaseRecord {
  workflowId: string;
  runId: string;
  site: string;
  line: string;
  lotId: string;
  sku: string;
  stage: string;
  holdId?: string;
  notification?: string;
  /** The workflow's own LotCaseState projection; read defensively, it is written by workflow activities. */
  state: Record<string, unknown>;
  openedAt: string;
  updatedAt: string;
  closedAt?: string;
}

interface LotCaseRow {
  workflow_id: string;
  run_id: string;
  site: string;
  line: string;
  lot_id: string;
  sku: string;
  stage: string;
  hold_id: string | null;
  notification: string | null;
  state: Record<string, unknown> | null;
  opened_at: Date;
  updated_at: Date;
  closed_at: Date | null;
}

const COLUMNS = `workflow_id, run_id, site, line, lot_id, sku, stage, hold_id, notification, state,
                 opened_at, updated_at, closed_at`;

export async function lotCasesOf(db: Pick<pg.Pool, 'query'>, site: string, lotId: string): Promise<LotCaseRecord[]> {
  const res = await db.query<LotCaseRow>(
    `SELECT ${COLUMNS}
       FROM holdfast.lot_case
      WHERE site = $1 AND lot_id = $2
      ORDER BY opened_at DESC, run_id`,
    [site, lotId],
  );
  return res.rows.map(toRecord);
}

/** The latest case of the lot that has taken this part (its `parts` name the event), if one has recorded it yet. */
export async function lotCaseOfPart(
  db: Pick<pg.Pool, 'query'>,
  part: { site: string; lotId: string; eventId: string },
): Promise<LotCaseRecord | undefined> {
  const res = await db.query<LotCaseRow>(
    `SELECT ${COLUMNS}
       FROM holdfast.lot_case
      WHERE site = $1 AND lot_id = $2 AND state->'parts' @> jsonb_build_array(jsonb_build_object('eventId', $3::text))
      ORDER BY opened_at DESC, run_id
      LIMIT 1`,
    [part.site, part.lotId, part.eventId],
  );
  const row = res.rows[0];
  return row ? toRecord(row) : undefined;
}

function toRecord(r: LotCaseRow): LotCaseRecord {
  return {
    workflowId: r.workflow_id,
    runId: r.run_id,
    site: r.site,
    line: r.line,
    lotId: r.lot_id,
    sku: r.sku,
    stage: r.stage,
    ...(r.hold_id !== null ? { holdId: r.hold_id } : {}),
    ...(r.notification !== null ? { notification: r.notification } : {}),
    state: r.state ?? {},
    openedAt: r.opened_at.toISOString(),
    updatedAt: r.updated_at.toISOString(),
    ...(r.closed_at !== null ? { closedAt: r.closed_at.toISOString() } : {}),
  };
}
