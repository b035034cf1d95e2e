import type pg from 'pg';

type Db = Pick<pg.Pool, 'query'>;

export interface Place {
  site: string;
  /** Narrows what belongs to a line (lot cases, changeovers, defects); recalls and drills are the site's. */
  line?: string;
}

export interface OpenLotCase {
  workflowId: string;
  runId: string;
  line: string;
  lotId: string;
  sku: string;
  stage: string;
  openedAt: Date;
  /** The case has a decision (signed): no disposition deadline applies any more. */
  decided: boolean;
  parkedSteps: string[];
}

export interface OpenLotCases {
  open: number;
  byStage: { stage: string; count: number }[];
  overdue: number;
  /** Oldest first, at most `limit`. */
  items: OpenLotCase[];
}

const MAX_ITEMS = 200;

/**
 * The open cases (closed_at IS NULL) of a site or line, counted by stage and against the disposition deadline
 * (opened + `deadlineMs`, while no decision is recorded), as of `now`.
 */
export async function openLotCases(db: Db, at: Place, deadlineMs: number, now: Date): Promise<OpenLotCases> {
  const params = [at.site, at.line ?? null, deadlineMs, now];
  const where = `site = $1 AND ($2::text IS NULL OR line = $2) AND closed_at IS NULL`;
  const [counts, items] = await Promise.all([
    db.query<{ stage: string; count: string; overdue: string }>(
      `SELECT stage, count(*) AS count,
              count(*) FILTER (WHERE state -> 'decision' IS NULL
                                 AND opened_at + make_interval(secs => $3::bigint / 1000.0) < $4::timestamptz)
                AS overdue
         FROM holdfast.lot_case
        WHERE ${where}
        GROUP BY stage ORDER BY stage`,
      params,
    ),
    db.query<{
      workflow_id: string;
      run_id: string;
      line: string;
      lot_id: string;
      sku: string;
      stage: string;
      opened_at: Date;
      decided: boolean;
      parked: string[] | null;
    }>(
      `SELECT workflow_id, run_id, line, lot_id, sku, stage, opened_at, state -> 'decision' IS NOT NULL AS decided,
              ARRAY(SELECT f ->> 'step' FROM jsonb_array_elements(
                      CASE WHEN jsonb_typeof(state -> 'failures') = 'array' THEN state -> 'failures'
                           ELSE '[]'::jsonb END) WITH ORDINALITY AS x (f, i)
                     WHERE f ->> 'step' IS NOT NULL GROUP BY 1 ORDER BY min(i)) AS parked
         FROM holdfast.lot_case
        WHERE ${where}
        ORDER BY opened_at, workflow_id, run_id
        LIMIT ${MAX_ITEMS}`,
      [at.site, at.line ?? null],
    ),
  ]);
  return {
    open: counts.rows.reduce((n, r) => n + Number(r.count), 0),
    byStage: counts.rows.map((r) => ({ stage: r.stage, count: Number(r.count) })),
    overdue: counts.rows.reduce((n, r) => n + Number(r.overdue), 0),
    items: items.rows.map((r) => ({
      workflowId: r.workflow_id,
      runId: r.run_id,
      line: r.line,
      lotId: r.lot_id,
      sku: r.sku,
      stage: r.stage,
      openedAt: r.opened_at,
      decided: r.decided,
      parkedSteps: r.parked ?? [],
    })),
  };
}

export interface RunningWork {
  kind: 'changeover' | 'recall' | 'mock-recall' | 'recall-drill';
  id: string;
  line: string | null;
  stage: string;
  startedAt: Date;
  workflowId: string;
}

/**
 * What runs now, from the projections the workflows keep: recalls and mock recalls (holdfast.recall; a drill's own
 * mock recall shows as the drill), drills (holdfast.recall_drill), and changeovers while they have stations armed
 * (holdfast.station_assignment; the changeover's id is its workflow id). The Now view asks Temporal for changeovers
 * first: what PostgreSQL knows of them is its fallback.
 */
export async function runningWork(db: Db, at: Place): Promise<RunningWork[]> {
  const [recalls, drills, changeovers] = await Promise.all([
    db.query<{ recall_id: string; kind: string; workflow_id: string; created_at: Date; cancelling: boolean }>(
      `SELECT r.recall_id, r.kind, r.workflow_id, r.created_at, r.cancel_requested_at IS NOT NULL AS cancelling
         FROM holdfast.recall r
        WHERE r.site = $1 AND r.state = 'running'
          AND NOT EXISTS (SELECT 1 FROM holdfast.recall_drill d WHERE d.recall_id = r.recall_id)
        ORDER BY r.created_at, r.recall_id`,
      [at.site],
    ),
    db.query<{ drill_id: string; recall_id: string | null; workflow_id: string; started_at: Date }>(
      `SELECT drill_id, recall_id, workflow_id, started_at
         FROM holdfast.recall_drill
        WHERE site = $1 AND state = 'running'
        ORDER BY started_at, drill_id`,
      [at.site],
    ),
    db.query<{
      changeover_id: string;
      line: string;
      work_order: string;
      armed_at: Date;
      preparing: boolean;
      failed: boolean;
    }>(
      `SELECT changeover_id, line, work_order, min(armed_at) AS armed_at,
              bool_or(prepared_at IS NULL AND prepare_error IS NULL) AS preparing,
              bool_or(prepare_error IS NOT NULL) AS failed
         FROM holdfast.station_assignment
        WHERE site = $1 AND ($2::text IS NULL OR line = $2) AND state = 'armed'
        GROUP BY changeover_id, line, work_order
        ORDER BY 4, 1`,
      [at.site, at.line ?? null],
    ),
  ]);
  return [
    ...changeovers.rows.map((r): RunningWork => ({
      kind: 'changeover',
      id: r.work_order,
      line: r.line,
      stage: r.failed ? 'prepare-failed' : r.preparing ? 'preparing' : 'armed',
      startedAt: r.armed_at,
      workflowId: r.changeover_id,
    })),
    ...recalls.rows.map((r): RunningWork => ({
      kind: r.kind === 'real' ? 'recall' : 'mock-recall',
      id: r.recall_id,
      line: null,
      stage: r.cancelling ? 'cancelling' : 'running',
      startedAt: r.created_at,
      workflowId: r.workflow_id,
    })),
    ...drills.rows.map((r): RunningWork => ({
      kind: 'recall-drill',
      id: r.recall_id ?? r.drill_id,
      line: null,
      stage: r.recall_id ? 'recalling' : 'starting',
      startedAt: r.started_at,
      workflowId: r.workflow_id,
    })),
  ];
}

export interface Backlogs {
  outboxPending: number;
  outboxOldestAt: Date | null;
  deferredFrames: number;
  deferredOldestAt: Date | null;
}

/** The process-wide hand-over queues: failed parts not yet handed to their workflow, frames waiting for an image. */
export async function backlogs(db: Db): Promise<Backlogs> {
  const { rows } = await db.query<{
    outbox_pending: string;
    outbox_oldest: Date | null;
    deferred: string;
    deferred_oldest: Date | null;
  }>(
    `SELECT o.n AS outbox_pending, o.oldest AS outbox_oldest, d.n AS deferred, d.oldest AS deferred_oldest
       FROM (SELECT count(*) AS n, min(created_at) AS oldest FROM holdfast.outbox WHERE dispatched_at IS NULL) o,
            (SELECT count(*) AS n, min(deferred_at) AS oldest FROM holdfast.frame_deferred) d`,
  );
  const r = rows[0]!;
  return {
    outboxPending: Number(r.outbox_pending),
    outboxOldestAt: r.outbox_oldest,
    deferredFrames: Number(r.deferred),
    deferredOldestAt: r.deferred_oldest,
  };
}

export interface FailedInspection {
  eventId: string;
  line: string;
  station: string;
  lotId: string;
  partId: string;
  defectClasses: string[];
  inspectedAt: Date;
}

/** The latest failed production inspections of a site or line, newest first (inspection_failed_*_idx). */
export async function latestFailedInspections(db: Db, at: Place, limit = 20): Promise<FailedInspection[]> {
  const byLine = at.line !== undefined;
  const { rows } = await db.query<{
    event_id: string;
    line: string;
    station: string;
    lot_id: string;
    part_id: string;
    classes: string[];
    inspected_at: Date;
  }>(
    `SELECT i.event_id, i.line, i.station, i.lot_id, i.part_id, i.inspected_at,
            ARRAY(SELECT e.d ->> 'class' FROM jsonb_array_elements(i.defects) WITH ORDINALITY AS e (d, n)
                   WHERE e.d ->> 'class' IS NOT NULL GROUP BY 1 ORDER BY min(e.n)) AS classes
       FROM holdfast.inspection i
      WHERE i.site = $1 ${byLine ? 'AND i.line = $3' : ''} AND i.result = 'fail' AND i.mode = 'production'
      ORDER BY i.inspected_at DESC, i.event_id DESC
      LIMIT $2`,
    byLine ? [at.site, limit, at.line] : [at.site, limit],
  );
  return rows.map((r) => ({
    eventId: r.event_id,
    line: r.line,
    station: r.station,
    lotId: r.lot_id,
    partId: r.part_id,
    defectClasses: r.classes,
    inspectedAt: r.inspected_at,
  }));
}
