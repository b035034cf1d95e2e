import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { requestActor } from '../../../infra/http/request-actor';
import { authorizeSite } from '../../../infra/identity/route-access';
import { ProblemError, notFound, problemType, validationProblem } from '../../../infra/http/problem-details';
import { ProblemSchema } from '../../../infra/http/schemas';
import { openRecall } from '../../../infra/recall/recall-starter';
import type { RecallReport } from '../../../infra/recall/recall-store';
import {
  createRecallNotificationStore,
  recallNotificationRows,
  type RecallNotificationRow,
} from '../../../infra/recall/recall-notification-store';
import { WorkflowNotFoundError } from '../../../infra/temporal/gateway';
import type { RecallAcknowledgement } from '../../../workflows/contracts';
import type { ApiDeps } from '../../deps';
import { DispositionHeadersSchema } from '../../schemas/disposition.schema';
import {
  RecallAcknowledgeBodySchema,
  RecallAcknowledgedSchema,
  RecallBodySchema,
  RecallListQuerySchema,
  RecallNotificationParamsSchema,
  RecallNotificationsSchema,
  RecallPageSchema,
  RecallParamsSchema,
  RecallStartedSchema,
  RecallViewSchema,
} from '../../schemas/recall.schema';
import { authenticateSigner } from '../../services/e-signature.service';
import { READERS } from '../../support/access';

interface RecallRow {
  recall_id: string;
  site: string;
  kind: 'mock' | 'real';
  scope: Record<string, unknown>;
  reason: string;
  requested_by: string;
  workflow_id: string;
  state: string;
  report: RecallReport | null;
  created_at: Date;
  completed_at: Date | null;
}

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

const recallRoutes: FastifyPluginAsyncZod<{ deps: ApiDeps }> = async (app, { deps }) => {
  app.post('/v1/recalls', {
    // A person's decision: no machine key may start a recall (OWASP API6).
    config: { access: { roles: ['quality-engineer', 'quality-manager'] } },
    schema: {
      summary: 'Start a recall or a mock recall of a scope (lots, parts, serials, supplier lots, work orders, a model)',
      description:
        'Requires an `Idempotency-Key` header: the same key and body answer the same recall; the same key with ' +
        'another body gets 422. A mock recall traces, classifies, reconciles and reports, scored against the ' +
        "site's targets. A real recall needs the requester's electronic signature; its containment and " +
        'notification are not built yet, so it answers 501 after the signature is checked. docs/recall.md.',
      tags: ['recalls'],
      headers: DispositionHeadersSchema,
      body: RecallBodySchema,
      response: {
        202: RecallStartedSchema,
        400: ProblemSchema,
        403: ProblemSchema,
        422: ProblemSchema,
        501: ProblemSchema,
        503: ProblemSchema,
      },
    },
    handler: async (request, reply) => {
      const { site, kind, scope, reason, signature } = request.body;
      authorizeSite(request, { site });
      const actor = requestActor(request);
      if (kind === 'real') {
        if (!signature) {
          throw new ProblemError(
            validationProblem([
              { field: 'body.signature', message: 'required: a real recall is signed by its requester' },
            ]),
          );
        }
        await authenticateSigner(deps, request, signature);
        throw new ProblemError({
          type: problemType('not-implemented'),
          title: 'Not Implemented',
          status: 501,
          detail: 'a real recall needs containment and notification, which are not built yet; run a mock recall',
        });
      }
      const gateway = deps.gateway;
      if (!gateway.startRecall) {
        throw new ProblemError({
          type: problemType('workflow-service-unavailable'),
          title: 'Service Unavailable',
          status: 503,
        });
      }
      const started = await openRecall(
        deps.pool,
        deps.config,
        { site, kind, scope, reason, requestedBy: actor.id, idempotencyKey: request.headers['idempotency-key'] },
        (input) => gateway.startRecall!(input),
        { trail: deps.audit, actor },
      ).catch((err: unknown) => {
        if (err instanceof ProblemError) throw err;
        request.log.warn({ err }, 'recall not started');
        throw new ProblemError(
          {
            type: problemType('workflow-service-unavailable'),
            title: 'Service Unavailable',
            status: 503,
            detail: 'the workflow service could not be reached; retry with the same Idempotency-Key',
          },
          { 'retry-after': '5' },
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
      const { rows } = await deps.pool.query<RecallRow>('SELECT * FROM holdfast.recall WHERE recall_id = $1', [
        recallId,
      ]);
      const row = rows[0];
      if (!row) throw notFound(`no recall ${recallId}`);
      authorizeSite(request, { site: row.site });
      const [lots, deliveries, findings] = await Promise.all([
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
      };
    },
  });

  app.get('/v1/recalls', {
    config: {
      access: { roles: READERS, machine: ['lots:read'] },
      accessTargets: (request) => [{ site: (request.query as { site: string }).site }],
    },
    schema: {
      summary: "A site's recalls, newest first (`kind=mock`: the mock recall history an auditor asks for)",
      tags: ['recalls'],
      querystring: RecallListQuerySchema,
      response: { 200: RecallPageSchema, 400: ProblemSchema, 403: ProblemSchema },
    },
    handler: async (request) => {
      const { site, kind, limit, cursor } = request.query;
      const after = cursor !== undefined ? parseCursor(cursor) : null;
      const { rows } = await deps.pool.query<RecallRow>(
        `SELECT * FROM holdfast.recall
          WHERE site = $1 AND ($2::text IS NULL OR kind = $2)
            AND ($3::timestamptz IS NULL OR (created_at, recall_id) < ($3::timestamptz, $4::text))
          ORDER BY created_at DESC, recall_id DESC LIMIT $5`,
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
            throw new ProblemError(
              {
                type: problemType('workflow-service-unavailable'),
                title: 'Service Unavailable',
                status: 503,
                detail: 'the workflow service could not be reached; nothing was recorded, repeat the request',
              },
              { 'retry-after': '5' },
            );
          }
        }
      }
      const recorded = await deps.audit.inTransaction(async (client) => {
        const done = await createRecallNotificationStore(client).recordAcknowledgement(recallId, notificationId, ack);
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
