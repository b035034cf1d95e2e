import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { requestActor } from '../../../infra/http/request-actor';
import { authorizeSite } from '../../../infra/identity/route-access';
import {
  ProblemError,
  notFound,
  problemType,
  validationProblem,
  workflowServiceUnavailable,
} from '../../../infra/http/problem-details';
import { ProblemSchema } from '../../../infra/http/schemas';
import type { AuditEntry } from '../../../infra/audit/audit-record';
import { openRecall, recallIdFor } from '../../../infra/recall/recall-starter';
import { modelVersionsOnDisk, parseModelVersion } from '../../../infra/recall/model-versions';
import { WorkflowNotFoundError } from '../../../infra/temporal/gateway';
import {
  createRecallNotificationStore,
  recallNotificationRows,
  type RecallNotificationRow,
} from '../../../infra/recall/recall-notification-store';
import type {
  RecallAcknowledgement,
  RecallDrillEscalation,
  RecallDrillState,
  RecallScope,
  SignatureManifest,
} from '../../../workflows/contracts';
import type { ApiDeps } from '../../deps';
import { DispositionHeadersSchema } from '../../schemas/disposition.schema';
import {
  RecallAcknowledgeBodySchema,
  RecallAcknowledgedSchema,
  RecallDrillListQuerySchema,
  RecallDrillPageSchema,
  RecallBodySchema,
  RecallCancelBodySchema,
  RecallCancelledSchema,
  RecallListQuerySchema,
  RecallNotificationParamsSchema,
  RecallNotificationsSchema,
  RecallPageSchema,
  RecallParamsSchema,
  RecallStartedSchema,
  RecallViewSchema,
  ReinspectionQuerySchema,
  ReinspectionViewSchema,
} from '../../schemas/recall.schema';
import { authenticateSigner, signRecall, verifiedRecallSignatures } from '../../services/e-signature.service';
import { READERS } from '../../support/access';
import recallReportRoutes, { recallSigned, type RecallHead } from './recall-report';

interface RecallRow extends RecallHead {
  workflow_id: string;
  /** The recall's drill (holdfast.recall_drill as JSON), when a drill schedule opened it. */
  drill: {
    drill_id: string;
    schedule_id: string;
    scheduled_at: string;
    state: RecallDrillState;
    complete_within_ms: number;
    duration_ms: number | null;
    escalations: { reason: RecallDrillEscalation; at: string }[];
  } | null;
}

/** A recall with its drill, if a drill opened it. */
const RECALL_SELECT = `SELECT r.*, to_jsonb(d) AS drill FROM holdfast.recall r
  LEFT JOIN holdfast.recall_drill d ON d.recall_id = r.recall_id`;

const summary = (r: RecallRow) => ({
  recallId: r.recall_id,
  site: r.site,
  kind: r.kind,
  scope: r.scope,
  reason: r.reason,
  requestedBy: r.requested_by,
  state: r.state,
  createdAt: r.created_at.toISOString(),
  completedAt: r.completed_at?.toISOString() ?? null,
  score: r.report?.score ?? null,
  origin: r.drill ? ('drill' as const) : ('request' as const),
  drill: r.drill && {
    drillId: r.drill.drill_id,
    scheduleId: r.drill.schedule_id,
    scheduledAt: new Date(r.drill.scheduled_at).toISOString(),
    state: r.drill.state,
    completeWithinMs: Number(r.drill.complete_within_ms),
    durationMs: r.drill.duration_ms === null ? null : Number(r.drill.duration_ms),
    escalations: r.drill.escalations.map((e) => ({ reason: e.reason, at: new Date(e.at).toISOString() })),
  },
  stages: r.report?.stages ?? [],
});

const cursorOf = (r: RecallRow) =>
  Buffer.from(JSON.stringify([r.created_at.toISOString(), r.recall_id])).toString('base64url');

function parseCursor(cursor: string): [string, string] {
  try {
    const parsed: unknown = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
    if (Array.isArray(parsed) && parsed.length === 2 && parsed.every((p) => typeof p === 'string')) {
      return [parsed[0] as string, parsed[1] as string];
    }
  } catch {
    // Falls through to the 400 below.
  }
  throw new ProblemError(validationProblem([{ field: 'querystring.cursor', message: 'not a `next` of this listing' }]));
}

interface ReinspectionRow {
  event_id: string;
  lot_key: string;
  site: string;
  line: string;
  station: string;
  part_id: string;
  image_ref: string | null;
  outcome: string;
  defects: Record<string, unknown>[];
  model_version: string | null;
  recipe_version: string | null;
  detail: string | null;
}

/** A corrected model belongs to a model recall, differs from the recalled one and is a model the workers can load. */
async function checkCorrectedModel(deps: ApiDeps, scope: RecallScope, corrected: string): Promise<void> {
  // Named as the schema names a body field.
  const field = 'correctedModelVersion';
  const refuse = (message: string) => new ProblemError(validationProblem([{ field, message }]));
  if (scope.kind !== 'model-version') throw refuse('only with a model-version scope (a model recall)');
  if (corrected === scope.modelVersion) throw refuse('must differ from the recalled model version');
  if (!parseModelVersion(corrected)) throw refuse('must be name@version');
  const known = await modelVersionsOnDisk(deps.config);
  if (!known.has(corrected)) {
    throw refuse(`no such model in vision.modelsDir (models: ${[...known].sort().join(', ') || 'none'})`);
  }
}

interface ContainmentRow {
  lot_key: string;
  state: string;
  mes_state: string;
  hold_id: string | null;
  erp_state: string;
  erp_blocks: {
    storageLocation: string;
    quantity: number;
    unit: string;
    materialDocument?: string;
    materialDocumentYear?: string;
  }[];
  error: string | null;
  contained_at: Date | null;
  in_state: number;
  blocked: number;
}

/** Lots by outcome over all rows; the lots themselves up to a page's worth (the report has them all). */
function containmentView(rows: ContainmentRow[]) {
  return {
    byState: Object.fromEntries(rows.map((r) => [r.state, r.in_state])),
    blocked: rows[0]?.blocked ?? 0,
    lots: rows.slice(0, 1000).map((r) => ({
      lotKey: r.lot_key,
      state: r.state,
      mesState: r.mes_state,
      holdId: r.hold_id,
      erpState: r.erp_state,
      blocks: r.erp_blocks.map((b) => ({ ...b, quantity: Number(b.quantity) })),
      error: r.error,
      containedAt: r.contained_at?.toISOString() ?? null,
    })),
  };
}

const recallRoutes: FastifyPluginAsyncZod<{ deps: ApiDeps }> = async (app, { deps }) => {
  await app.register(recallReportRoutes, { deps });
  app.post('/v1/recalls', {
    // A person's decision: no machine key may start a recall (OWASP API6).
    config: { access: { roles: ['quality-engineer', 'quality-manager'] } },
    schema: {
      summary:
        'Start a recall or a mock recall of a scope (lots, parts, serials, supplier lots, work orders, a SKU and ' +
        'date range, a model version and time window)',
      description:
        'Requires an `Idempotency-Key` header: the same key and body answer the same recall; the same key with ' +
        'another body gets 422. A mock recall traces, classifies, reconciles and reports, scored against the ' +
        "site's targets. A model recall (scope `model-version`) also re-inspects the stored images of the parts the " +
        "model passed, with `correctedModelVersion` (or each station's active model). A real recall needs the " +
        "requester's electronic signature, and also holds every affected lot in the MES and blocks its stock in the " +
        'ERP (contain). docs/recall.md.',
      tags: ['recalls'],
      headers: DispositionHeadersSchema,
      body: RecallBodySchema,
      response: {
        202: RecallStartedSchema,
        400: ProblemSchema,
        403: ProblemSchema,
        401: ProblemSchema,
        422: ProblemSchema,
        503: ProblemSchema,
      },
    },
    handler: async (request, reply) => {
      const { site, kind, scope, reason, signature, correctedModelVersion } = request.body;
      authorizeSite(request, { site });
      if (correctedModelVersion !== undefined) await checkCorrectedModel(deps, scope, correctedModelVersion);
      const actor = requestActor(request);
      let sealed: SignatureManifest | undefined;
      if (kind === 'real') {
        if (!signature) {
          throw new ProblemError(
            validationProblem([
              { field: 'body.signature', message: 'required: a real recall is signed by its requester' },
            ]),
          );
        }
        const signer = await authenticateSigner(deps, request, signature);
        const recallId = recallIdFor(site, request.headers['idempotency-key']);
        sealed = await signRecall(deps, signer, signature.meaning, {
          recallId,
          site,
          kind,
          scope,
          reason,
          requestedBy: actor.id,
        });
      }
      const gateway = deps.gateway;
      if (!gateway.startRecall) {
        throw workflowServiceUnavailable();
      }
      const started = await openRecall(
        deps.pool,
        deps.config,
        {
          site,
          kind,
          scope,
          reason,
          requestedBy: actor.id,
          idempotencyKey: request.headers['idempotency-key'],
          ...(correctedModelVersion !== undefined ? { correctedModelVersion } : {}),
          ...(sealed ? { signature: sealed } : {}),
        },
        (input) => gateway.startRecall!(input),
        { trail: deps.audit, actor },
      ).catch((err: unknown) => {
        if (err instanceof ProblemError) throw err;
        request.log.warn({ err }, 'recall not started');
        throw workflowServiceUnavailable(
          'the workflow service could not be reached; retry with the same Idempotency-Key',
        );
      });
      if (started.outcome === 'key-reused') {
        throw new ProblemError({
          type: problemType('idempotency-key-reused'),
          title: 'Idempotency-Key reused with a different request',
          status: 422,
          detail: 'this Idempotency-Key was first used with another body; use a new key for a new recall',
        });
      }
      return reply.code(202).send({
        recallId: started.recallId,
        workflowId: started.workflowId,
        state: 'running',
        links: { self: `/v1/recalls/${started.recallId}` },
      });
    },
  });

  app.get('/v1/recalls/:recallId', {
    config: { access: { roles: READERS, machine: ['lots:read'] } },
    schema: {
      summary: "A recall's stages, timings, counts, score against the site's targets, deliveries and findings",
      tags: ['recalls'],
      params: RecallParamsSchema,
      response: { 200: RecallViewSchema, 400: ProblemSchema, 403: ProblemSchema, 404: ProblemSchema },
    },
    handler: async (request) => {
      const { recallId } = request.params;
      const { rows } = await deps.pool.query<RecallRow>(`${RECALL_SELECT} WHERE r.recall_id = $1`, [recallId]);
      const row = rows[0];
      if (!row) throw notFound(`no recall ${recallId}`);
      authorizeSite(request, { site: row.site });
      const [lots, deliveries, findings, containment] = await Promise.all([
        deps.pool.query<{ class: string | null; reached_by: string; n: number }>(
          `SELECT class, reached_by, count(*)::int AS n FROM holdfast.recall_lot WHERE recall_id = $1
            GROUP BY class, reached_by`,
          [recallId],
        ),
        deps.pool.query<{ delivery: string; item: string; customer: string; shipTo: string; lotKey: string }>(
          `SELECT d->>'delivery' AS delivery, d->>'item' AS item, d->>'customer' AS customer,
                  d->>'shipTo' AS "shipTo", r.lot_key AS "lotKey"
             FROM holdfast.recall_lot r, jsonb_array_elements(r.deliveries) d
            WHERE r.recall_id = $1 ORDER BY 1, 2`,
          [recallId],
        ),
        deps.pool.query<{ kind: string; subject: string; detail: Record<string, unknown> }>(
          `SELECT kind, subject, detail FROM holdfast.recall_finding WHERE recall_id = $1 ORDER BY kind, subject
            LIMIT 1000`,
          [recallId],
        ),
        deps.pool.query<ContainmentRow>(
          `SELECT lot_key, state, mes_state, hold_id, erp_state, erp_blocks, error, contained_at,
                  count(*) OVER (PARTITION BY state)::int AS in_state,
                  count(*) FILTER (WHERE erp_state = 'blocked') OVER ()::int AS blocked
             FROM holdfast.recall_containment WHERE recall_id = $1 ORDER BY lot_key`,
          [recallId],
        ),
      ]);
      const sum = (key: 'class' | 'reached_by') => {
        const out: Record<string, number> = {};
        for (const r of lots.rows) out[r[key] ?? 'unclassified'] = (out[r[key] ?? 'unclassified'] ?? 0) + r.n;
        return out;
      };
      return {
        ...summary(row),
        workflowId: row.workflow_id,
        stages: row.report?.stages ?? [],
        lots: { byClass: sum('class'), byReach: sum('reached_by') },
        deliveries: deliveries.rows,
        findings: findings.rows,
        containment: row.kind === 'real' ? containmentView(containment.rows) : null,
        signatures: await verifiedRecallSignatures(deps, recallSigned(row)),
      };
    },
  });

  app.get('/v1/recalls/:recallId/reinspections', {
    config: { access: { roles: READERS, machine: ['lots:read'] } },
    schema: {
      summary: "A model recall's re-inspection: per part and per lot, what the corrected model found",
      description:
        'Counts of parts that now fail, still pass or have no image (manual re-inspection), every lot with its ' +
        'containment decision, and the parts, a page at a time. docs/recall.md#model-recall.',
      tags: ['recalls'],
      params: RecallParamsSchema,
      querystring: ReinspectionQuerySchema,
      response: { 200: ReinspectionViewSchema, 400: ProblemSchema, 403: ProblemSchema, 404: ProblemSchema },
    },
    handler: async (request) => {
      const { recallId } = request.params;
      const { outcome, limit, cursor } = request.query;
      const { rows } = await deps.pool.query<{ site: string; scope: { kind: string }; corrected: string | null }>(
        'SELECT site, scope, corrected_model_version AS corrected FROM holdfast.recall WHERE recall_id = $1',
        [recallId],
      );
      const row = rows[0];
      if (!row) throw notFound(`no recall ${recallId}`);
      authorizeSite(request, { site: row.site });
      if (row.scope.kind !== 'model-version') throw notFound(`recall ${recallId} is not a model recall`);
      const [counts, lots, parts] = await Promise.all([
        deps.pool.query<{ outcome: string; n: number }>(
          `SELECT outcome, count(*)::int AS n FROM holdfast.recall_reinspection WHERE recall_id = $1 GROUP BY outcome`,
          [recallId],
        ),
        deps.pool.query<{ lotKey: string; reachedBy: string; needsContainment: boolean; reason: string }>(
          `SELECT lot_key AS "lotKey", reached_by AS "reachedBy", needs_containment AS "needsContainment",
                  contain_reason AS reason
             FROM holdfast.recall_lot WHERE recall_id = $1 AND contain_reason IS NOT NULL
            ORDER BY needs_containment DESC, lot_key LIMIT 10000`,
          [recallId],
        ),
        deps.pool.query<ReinspectionRow>(
          `SELECT event_id, lot_key, site, line, station, part_id, image_ref, outcome, defects, model_version,
                  recipe_version, detail
             FROM holdfast.recall_reinspection
            WHERE recall_id = $1 AND ($2::text IS NULL OR outcome = $2) AND ($3::text IS NULL OR event_id > $3)
            ORDER BY event_id LIMIT $4`,
          [recallId, outcome ?? null, cursor ?? null, limit + 1],
        ),
      ]);
      const page = parts.rows.slice(0, limit);
      const last = page[page.length - 1];
      return {
        recallId,
        correctedModelVersion: row.corrected,
        parts: Object.fromEntries(counts.rows.map((c) => [c.outcome, c.n])),
        lots: lots.rows,
        reinspected: page.map((p) => ({
          eventId: p.event_id,
          lotKey: p.lot_key,
          site: p.site,
          line: p.line,
          station: p.station,
          partId: p.part_id,
          imageRef: p.image_ref,
          outcome: p.outcome,
          defects: p.defects,
          modelVersion: p.model_version,
          recipeVersion: p.recipe_version,
          detail: p.detail,
        })),
        next: parts.rows.length > limit && last ? last.event_id : null,
      };
    },
  });

  app.post('/v1/recalls/:recallId/cancel', {
    // Stopping a recall is a quality manager's decision, as much as starting one.
    config: { access: { roles: ['quality-manager'] } },
    schema: {
      summary: 'Cancel a running recall: no new hold or block; what was placed stays, for disposition',
      description:
        'The recall records the cancel at once (its contain stage starts no lot after it and finishes the lots in ' +
        'hand), skips the stages left, and still writes its report, with state `cancelled`. 409 when it has ' +
        'finished already. docs/recall.md#cancel.',
      tags: ['recalls'],
      params: RecallParamsSchema,
      body: RecallCancelBodySchema,
      response: {
        202: RecallCancelledSchema,
        400: ProblemSchema,
        403: ProblemSchema,
        404: ProblemSchema,
        409: ProblemSchema,
        503: ProblemSchema,
      },
    },
    handler: async (request, reply) => {
      const { recallId } = request.params;
      const { rows } = await deps.pool.query<RecallRow & { cancel_requested_at: Date | null }>(
        'SELECT * FROM holdfast.recall WHERE recall_id = $1',
        [recallId],
      );
      const row = rows[0];
      if (!row) throw notFound(`no recall ${recallId}`);
      authorizeSite(request, { site: row.site });
      const closed = () =>
        new ProblemError({
          type: problemType('recall-closed'),
          title: 'Recall finished',
          status: 409,
          detail: `recall ${recallId} is ${row.state}; only a running recall can be cancelled`,
        });
      if (row.state !== 'running') throw closed();
      const gateway = deps.gateway;
      if (!gateway.cancelRecall) {
        throw workflowServiceUnavailable();
      }
      // Recorded first, so the running batches stop even before the workflow hears of it; the first cancel counts.
      await deps.audit.inTransaction(async (client) => {
        const first = await client.query(
          `UPDATE holdfast.recall SET cancel_requested_at = now() WHERE recall_id = $1 AND cancel_requested_at IS NULL`,
          [recallId],
        );
        const entry: AuditEntry = {
          actor: requestActor(request),
          action: 'recall.cancel',
          recordType: 'recall',
          recordId: recallId,
          old: { state: row.state },
          new: { cancelRequested: true },
          reason: request.body.reason,
          outcome: 'accepted',
          detail: null,
        };
        return { result: undefined, audit: first.rowCount === 1 ? [entry] : [] };
      });
      try {
        await gateway.cancelRecall(recallId);
      } catch (err) {
        if (err instanceof WorkflowNotFoundError) throw closed();
        request.log.warn({ err }, 'recall cancel not delivered');
        throw workflowServiceUnavailable(
          'the cancel is recorded; the workflow service could not be reached to deliver it, retry',
        );
      }
      return reply.code(202).send({ recallId, workflowId: row.workflow_id, state: 'cancelling' });
    },
  });

  app.get('/v1/recalls', {
    config: {
      access: { roles: READERS, machine: ['lots:read'] },
      accessTargets: (request) => [{ site: (request.query as { site: string }).site }],
    },
    schema: {
      summary: "A site's recalls, newest first (`kind=mock`: the mock recall history an auditor asks for)",
      description:
        'Each with its stage timings and score; `origin` says whether a request or a scheduled drill opened it, and ' +
        "a drill's recall carries the drill: when it was due, its result, how long it took and what it escalated. " +
        'docs/recall.md#drills.',
      tags: ['recalls'],
      querystring: RecallListQuerySchema,
      response: { 200: RecallPageSchema, 400: ProblemSchema, 403: ProblemSchema },
    },
    handler: async (request) => {
      const { site, kind, limit, cursor } = request.query;
      const after = cursor !== undefined ? parseCursor(cursor) : null;
      const { rows } = await deps.pool.query<RecallRow>(
        `${RECALL_SELECT}
          WHERE r.site = $1 AND ($2::text IS NULL OR r.kind = $2)
            AND ($3::timestamptz IS NULL OR (r.created_at, r.recall_id) < ($3::timestamptz, $4::text))
          ORDER BY r.created_at DESC, r.recall_id DESC LIMIT $5`,
        [site, kind ?? null, after?.[0] ?? null, after?.[1] ?? null, limit + 1],
      );
      const page = rows.slice(0, limit);
      const last = page[page.length - 1];
      return { recalls: page.map(summary), next: rows.length > limit && last ? cursorOf(last) : null };
    },
  });

  app.get('/v1/recalls/:recallId/notifications', {
    config: { access: { roles: READERS, machine: ['lots:read'] } },
    schema: {
      summary: "A real recall's customer notifications: lots, quantities and deliveries per customer and ship-to",
      description:
        'One per customer and ship-to that received affected lots, with when it was sent and through which ' +
        'target, its escalations, and who acknowledged it. Empty until the notify stage has planned them. ' +
        'docs/recall.md#notify.',
      tags: ['recalls'],
      params: RecallParamsSchema,
      response: { 200: RecallNotificationsSchema, 400: ProblemSchema, 403: ProblemSchema, 404: ProblemSchema },
    },
    handler: async (request) => {
      const { recallId } = request.params;
      const recall = await deps.pool.query<{ site: string }>('SELECT site FROM holdfast.recall WHERE recall_id = $1', [
        recallId,
      ]);
      if (!recall.rows[0]) throw notFound(`no recall ${recallId}`);
      authorizeSite(request, { site: recall.rows[0].site });
      const rows = await recallNotificationRows(deps.pool, recallId);
      return { recallId, notifications: rows.map(notificationView) };
    },
  });

  app.post('/v1/recalls/:recallId/notifications/:notificationId/acknowledge', {
    // A person records what a customer told them: no machine key.
    config: { access: { roles: ['quality-engineer', 'quality-manager'] } },
    schema: {
      summary: "Record a customer's acknowledgement of a recall notification (who at the customer, and how)",
      description:
        "Ends the notification's escalations: its workflow gets the `acknowledged` signal and completes. The first " +
        'acknowledgement is kept; a repeated request answers it with `recorded: false`. docs/recall.md#notify.',
      tags: ['recalls'],
      params: RecallNotificationParamsSchema,
      body: RecallAcknowledgeBodySchema,
      response: {
        200: RecallAcknowledgedSchema,
        400: ProblemSchema,
        403: ProblemSchema,
        404: ProblemSchema,
        503: ProblemSchema,
      },
    },
    handler: async (request) => {
      const { recallId, notificationId } = request.params;
      const recall = await deps.pool.query<{ site: string }>('SELECT site FROM holdfast.recall WHERE recall_id = $1', [
        recallId,
      ]);
      if (!recall.rows[0]) throw notFound(`no recall ${recallId}`);
      authorizeSite(request, { site: recall.rows[0].site });
      const find = async () => (await recallNotificationRows(deps.pool, recallId, notificationId))[0];
      const row = await find();
      if (!row) throw notFound(`recall ${recallId} has no notification ${notificationId}`);
      const actor = requestActor(request);
      const { contact, channel, note, acknowledgedAt } = request.body;
      const ack: RecallAcknowledgement = {
        recordedBy: actor.id,
        contact,
        channel,
        ...(note ? { note } : {}),
        acknowledgedAt: new Date(acknowledgedAt ?? Date.now()).toISOString(),
      };
      if (row.acknowledged_at === null) {
        // The workflow first, so that an unreachable Temporal leaves nothing recorded and the request can be repeated;
        // a closed workflow (terminated, or acknowledged a moment ago) takes no signal and needs none.
        try {
          if (!deps.gateway.acknowledgeRecallNotification) throw new Error('this API signals no recall notifications');
          await deps.gateway.acknowledgeRecallNotification(row.workflow_id, ack);
        } catch (err) {
          if (!(err instanceof WorkflowNotFoundError)) {
            request.log.warn({ err }, 'recall acknowledgement not signalled');
            throw workflowServiceUnavailable(
              'the workflow service could not be reached; nothing was recorded, repeat the request',
            );
          }
        }
      }
      const recorded = await deps.audit.inTransaction(async (client) => {
        await createRecallNotificationStore(client).recordAcknowledgement(recallId, notificationId, ack);
        // The workflow, signalled above, records the acknowledgement too and may have stored this very one first: this
        // request recorded it when the stored acknowledgement is its own and nobody audited one yet (the row's lock
        // keeps a concurrent request from auditing it twice).
        const { rowCount } = await client.query(
          `SELECT 1 FROM holdfast.recall_notification
            WHERE recall_id = $1 AND notification_id = $2 AND acknowledged_at = $3 AND acknowledged_by = $4
              AND NOT EXISTS (SELECT 1 FROM holdfast.audit_record
                               WHERE record_type = 'recall-notification' AND record_id = $5)
              FOR UPDATE`,
          [recallId, notificationId, ack.acknowledgedAt, ack.recordedBy, `${recallId}/${notificationId}`],
        );
        const done = (rowCount ?? 0) > 0;
        return {
          result: done,
          audit: done
            ? [
                {
                  actor,
                  action: 'recall-notification.acknowledge',
                  recordType: 'recall-notification',
                  recordId: `${recallId}/${notificationId}`,
                  old: null,
                  new: ack,
                  reason: note ?? null,
                  outcome: 'done' as const,
                  detail: { workflowId: row.workflow_id, customer: row.customer, shipTo: row.ship_to },
                },
              ]
            : [],
        };
      });
      return { ...notificationView((await find())!), recorded };
    },
  });

  app.get('/v1/recall-drills', {
    config: {
      access: { roles: READERS, machine: ['lots:read'] },
      accessTargets: (request) => [{ site: (request.query as { site: string }).site }],
    },
    schema: {
      summary: "A site's scheduled mock-recall drills, latest due first, with each one's result and escalations",
      description:
        'Every drill the schedule ran, including one that failed before it could open its recall (with the error). ' +
        '`next` is the `before` of the following page. docs/recall.md#drills.',
      tags: ['recalls'],
      querystring: RecallDrillListQuerySchema,
      response: { 200: RecallDrillPageSchema, 400: ProblemSchema, 403: ProblemSchema },
    },
    handler: async (request) => {
      const { site, limit, before } = request.query;
      const { rows } = await deps.pool.query<{
        drill_id: string;
        site: string;
        schedule_id: string;
        workflow_id: string;
        scheduled_at: Date;
        state: RecallDrillState;
        recall_id: string | null;
        scope: Record<string, unknown> | null;
        complete_within_ms: string;
        duration_ms: string | null;
        error: string | null;
        escalations: { reason: RecallDrillEscalation; target: string; text: string; at: string }[];
        started_at: Date;
        completed_at: Date | null;
      }>(
        `SELECT * FROM holdfast.recall_drill WHERE site = $1 AND ($2::timestamptz IS NULL OR scheduled_at < $2)
          ORDER BY scheduled_at DESC LIMIT $3`,
        [site, before ?? null, limit + 1],
      );
      const page = rows.slice(0, limit);
      return {
        drills: page.map((d) => ({
          drillId: d.drill_id,
          site: d.site,
          scheduleId: d.schedule_id,
          workflowId: d.workflow_id,
          scheduledAt: d.scheduled_at.toISOString(),
          state: d.state,
          recallId: d.recall_id,
          scope: d.scope,
          completeWithinMs: Number(d.complete_within_ms),
          durationMs: d.duration_ms === null ? null : Number(d.duration_ms),
          error: d.error,
          escalations: d.escalations.map((e) => ({ ...e, at: new Date(e.at).toISOString() })),
          startedAt: d.started_at.toISOString(),
          completedAt: d.completed_at?.toISOString() ?? null,
          links: { recall: d.recall_id ? `/v1/recalls/${d.recall_id}` : null },
        })),
        next: rows.length > limit ? (page[page.length - 1]?.scheduled_at.toISOString() ?? null) : null,
      };
    },
  });
};

function notificationView(r: RecallNotificationRow) {
  const lots = r.lots.map((l) => ({ ...l, quantity: Number(l.quantity) }));
  return {
    notificationId: r.notification_id,
    customer: r.customer,
    shipTo: r.ship_to,
    workflowId: r.workflow_id,
    lots,
    quantity: Number(r.quantity),
    deliveries: [...new Set(lots.flatMap((l) => l.deliveries.map((d) => `${d.delivery}/${d.item}`)))].sort(),
    target: r.target,
    reference: r.reference,
    sentAt: r.sent_at?.toISOString() ?? null,
    acknowledgedAt: r.acknowledged_at?.toISOString() ?? null,
    acknowledgedBy: r.acknowledged_by,
    acknowledgement: r.acknowledgement,
    escalations: r.escalations,
  };
}

export default recallRoutes;
