import type { FastifyRequest } from 'fastify';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { AuditEntry } from '../../../infra/audit/audit-record';
import { requestActor } from '../../../infra/http/request-actor';
import {
  ProblemError,
  notFound,
  problemType,
  validationProblem,
  workflowServiceUnavailable,
} from '../../../infra/http/problem-details';
import { ProblemSchema } from '../../../infra/http/schemas';
import { signContent, verifySignature } from '../../../infra/identity/e-signature';
import { openScarRow, scarSettingsOf } from '../../../infra/supplier/scar-store';
import { supplierScorecard, supplierScores } from '../../../infra/supplier/scorecard';
import type { ScarState, SignatureManifest } from '../../../workflows/contracts';
import type { ApiDeps } from '../../deps';
import {
  PeriodQuerySchema,
  ScarDecisionBodySchema,
  ScarListQuerySchema,
  ScarListSchema,
  ScarParamsSchema,
  ScarRequestBodySchema,
  ScarResponseBodySchema,
  type ScarView,
  ScarViewSchema,
  ScorecardQuerySchema,
  ScorecardSchema,
  SupplierListSchema,
  SupplierParamsSchema,
} from '../../schemas/supplier.schema';
import type { SignatureView } from '../../schemas/disposition.schema';
import { authenticateSigner } from '../../services/e-signature.service';
import { READERS } from '../../support/access';
import { temporalUiWorkflowUrl } from '../../support/temporal-ui';

const SCAR_COLUMNS = `id::text AS id, supplier, workflow_id, trigger, reason, requested_by, material, state, rounds,
  opened_at, closed_at, request_signature, decision_signatures`;
const DEFAULT_PERIOD_MS = 90 * 86_400_000;
const SCAR_DECIDERS = ['quality-engineer', 'quality-manager'] as const;

interface ScarRow {
  id: string;
  supplier: string;
  workflow_id: string;
  trigger: 'threshold' | 'engineer';
  reason: string;
  requested_by: string | null;
  material: string | null;
  state: string;
  rounds: number;
  opened_at: Date;
  closed_at: Date | null;
  request_signature: SignatureManifest | null;
  decision_signatures: { manifest: SignatureManifest; content: Record<string, unknown> }[];
}

/** What an engineer's SCAR request signs: the supplier, the reason and material, and who asked. */
const requestContent = (r: { supplier: string; reason: string; material: string | null; requestedBy: string }) => ({
  record: 'scar-request',
  supplier: r.supplier,
  reason: r.reason,
  material: r.material,
  requestedBy: r.requestedBy,
});

function period(q: { from?: string | undefined; to?: string | undefined }) {
  const to = q.to ?? new Date().toISOString();
  const from = q.from ?? new Date(Date.parse(to) - DEFAULT_PERIOD_MS).toISOString();
  if (Date.parse(from) >= Date.parse(to)) {
    throw new ProblemError(validationProblem([{ field: 'from', message: 'must be before to' }]));
  }
  return { from, to };
}

const suppliersRoutes: FastifyPluginAsyncZod<{ deps: ApiDeps }> = async (app, { deps }) => {
  const control = () => {
    if (!deps.suppliers) throw workflowServiceUnavailable('this API has no SCAR control');
    return deps.suppliers;
  };
  const unavailable = (request: FastifyRequest, err: unknown, what: string): never => {
    if (err instanceof ProblemError) throw err;
    request.log.warn({ err }, what);
    throw workflowServiceUnavailable('the workflow service could not be reached; retry');
  };

  async function signatures(row: ScarRow): Promise<SignatureView[]> {
    const checks: SignatureView[] = [];
    const check = async (manifest: SignatureManifest, content: unknown) => {
      const result = await verifySignature([deps.signatureKey], manifest, content);
      checks.push({ ...manifest, signer: { ...manifest.signer, roles: [...manifest.signer.roles] }, ...result });
    };
    if (row.request_signature) {
      await check(
        row.request_signature,
        requestContent({
          supplier: row.supplier,
          reason: row.reason,
          material: row.material,
          requestedBy: row.requested_by ?? '',
        }),
      );
    }
    for (const d of row.decision_signatures) {
      // Bound to this SCAR: a decision moved onto another row does not verify.
      await check(d.manifest, { ...d.content, scarId: row.id, supplier: row.supplier });
    }
    return checks;
  }

  async function view(row: ScarRow, live?: ScarState): Promise<ScarView> {
    return {
      id: row.id,
      supplier: row.supplier,
      workflowId: row.workflow_id,
      trigger: row.trigger,
      reason: row.reason,
      requestedBy: row.requested_by,
      material: row.material,
      state: row.state,
      rounds: row.rounds,
      openedAt: row.opened_at.toISOString(),
      closedAt: row.closed_at?.toISOString() ?? null,
      signatures: await signatures(row),
      ...(live ? { live } : {}),
      links: { temporalUi: temporalUiWorkflowUrl(deps.config.api.temporalUiUrl, deps.namespace, row.workflow_id) },
    };
  }

  async function scarRow(id: string): Promise<ScarRow> {
    const { rows } = await deps.pool.query<ScarRow>(`SELECT ${SCAR_COLUMNS} FROM holdfast.scar WHERE id = $1`, [id]);
    if (!rows[0]) throw notFound(`no SCAR ${id}`);
    return rows[0];
  }

  app.get('/v1/suppliers', {
    config: { access: { roles: READERS, machine: ['lots:read'] } },
    schema: {
      summary: 'Every supplier and material with its scorecard figures over a period',
      description:
        'Lot rejection rate, ppm at incoming inspection, defects found later in production on parts made from the ' +
        "supplier's lots, defect classes and the quality score the ERP's supplier evaluation receives; default " +
        'period the last 90 days. docs/analytics.md#supplier-quality.',
      tags: ['suppliers'],
      querystring: PeriodQuerySchema,
      response: { 200: SupplierListSchema, 400: ProblemSchema, 401: ProblemSchema, 403: ProblemSchema },
    },
    handler: async (request) => {
      const p = period(request.query);
      return { ...p, suppliers: await supplierScores(deps.pool, p) };
    },
  });

  app.get('/v1/suppliers/:supplier/scorecard', {
    config: { access: { roles: READERS, machine: ['lots:read'] } },
    schema: {
      summary: "A supplier's scorecard: figures by material and period, defect classes and trend",
      description:
        'From the kept incoming receipts and lot aggregates, never from raw inspections. `bucket` sets the period ' +
        'of the series (day, week, month); `trend` compares the last two periods with receipts. ' +
        'docs/analytics.md#supplier-quality.',
      tags: ['suppliers'],
      params: SupplierParamsSchema,
      querystring: ScorecardQuerySchema,
      response: {
        200: ScorecardSchema,
        400: ProblemSchema,
        401: ProblemSchema,
        403: ProblemSchema,
        404: ProblemSchema,
      },
    },
    handler: async (request) => {
      const { supplier } = request.params;
      const p = period(request.query);
      const card = await supplierScorecard(
        deps.pool,
        { ...p, supplier, ...(request.query.material ? { material: request.query.material } : {}) },
        request.query.bucket,
      );
      if (!card) throw notFound(`no receipts or production figures for supplier ${supplier} in the period`);
      return card;
    },
  });

  app.post('/v1/suppliers/:supplier/scars', {
    // A person's request, signed: it goes to the supplier.
    config: { access: { roles: [...SCAR_DECIDERS] } },
    schema: {
      summary: 'Request a supplier corrective action (SCAR), signed',
      description:
        'Opens a SCAR and starts its workflow (scar-<supplier>-<id>), which sends the request to the supplier through ' +
        'supplierQuality.scar.channel and waits for the 8D response. A supplier has at most one open SCAR: 409 ' +
        'names it. Audited. docs/analytics.md#supplier-quality.',
      tags: ['suppliers'],
      params: SupplierParamsSchema,
      body: ScarRequestBodySchema,
      response: {
        201: ScarViewSchema,
        400: ProblemSchema,
        401: ProblemSchema,
        403: ProblemSchema,
        409: ProblemSchema,
        423: ProblemSchema,
        503: ProblemSchema,
      },
    },
    handler: async (request, reply) => {
      const { supplier } = request.params;
      const { reason, material, signature } = request.body;
      const actor = requestActor(request);
      const signer = await authenticateSigner(deps, request, signature);
      const content = requestContent({ supplier, reason, material: material ?? null, requestedBy: actor.id });
      const sealed = await signContent(deps.signatureKey, {
        signer: signer.principal,
        meaning: signature.meaning,
        method: signer.method,
        content,
      });
      const opened = await deps.audit.inTransaction(async (client) => {
        const scar = await openScarRow(client, {
          supplier,
          trigger: 'engineer',
          requestKey: `engineer:${sealed.signatureId}`,
          reason,
          requestedBy: actor.id,
          ...(material ? { material } : {}),
          requestSignature: sealed,
        });
        const entry: AuditEntry = {
          actor,
          action: 'scar.request',
          recordType: 'scar',
          recordId: scar.scarId,
          old: null,
          new: { supplier, state: 'requested', signatureId: sealed.signatureId },
          reason,
          outcome: scar.created ? 'accepted' : 'refused',
          detail: { workflowId: scar.workflowId },
        };
        return { result: scar, audit: [entry] };
      });
      const stored = await scarRow(opened.scarId);
      // A request whose row was written but whose workflow never started (Temporal was down): started now.
      const orphan =
        !opened.created &&
        stored.trigger === 'engineer' &&
        stored.requested_by === actor.id &&
        (await control()
          .scarState(stored.workflow_id)
          .catch((err: unknown) => unavailable(request, err, 'SCAR state not read'))) === undefined;
      if (!opened.created && !orphan) {
        throw new ProblemError({
          type: problemType('scar-open'),
          title: 'Supplier has an open SCAR',
          status: 409,
          detail: `supplier ${supplier} has SCAR ${opened.scarId} open (${opened.workflowId})`,
        });
      }
      await control()
        .startScar(opened.workflowId, {
          scarId: opened.scarId,
          supplier,
          trigger: 'engineer',
          reason: stored.reason,
          requestedBy: actor.id,
          ...(stored.material ? { material: stored.material } : {}),
          settings: scarSettingsOf(deps.config),
          notify: deps.config.activityPresets.notify,
          traceWrite: deps.config.activityPresets.traceWrite,
        })
        .catch((err: unknown) => unavailable(request, err, 'SCAR workflow not started'));
      return reply.code(201).send(await view(await scarRow(opened.scarId)));
    },
  });

  app.get('/v1/scars', {
    config: { access: { roles: READERS, machine: ['lots:read'] } },
    schema: {
      summary: 'SCARs, newest first',
      description: 'Filter by supplier and state. docs/analytics.md#supplier-quality.',
      tags: ['suppliers'],
      querystring: ScarListQuerySchema,
      response: { 200: ScarListSchema, 400: ProblemSchema, 401: ProblemSchema, 403: ProblemSchema },
    },
    handler: async (request) => {
      const { supplier, state, limit } = request.query;
      const { rows } = await deps.pool.query<ScarRow>(
        `SELECT ${SCAR_COLUMNS} FROM holdfast.scar
          WHERE ($1::text IS NULL OR supplier = $1) AND ($2::text IS NULL OR state = $2)
          ORDER BY opened_at DESC, holdfast.scar.id DESC LIMIT $3`,
        [supplier ?? null, state ?? null, limit],
      );
      return { scars: await Promise.all(rows.map((r) => view(r))) };
    },
  });

  app.get('/v1/scars/:id', {
    config: { access: { roles: READERS, machine: ['lots:read', 'scars:respond'] } },
    schema: {
      summary: 'A SCAR with its workflow’s live state: due date, responses, decisions, verification',
      description: 'docs/analytics.md#supplier-quality.',
      tags: ['suppliers'],
      params: ScarParamsSchema,
      response: { 200: ScarViewSchema, 400: ProblemSchema, 401: ProblemSchema, 403: ProblemSchema, 404: ProblemSchema },
    },
    handler: async (request) => {
      const row = await scarRow(request.params.id);
      const live = await deps.suppliers?.scarState(row.workflow_id).catch((err: unknown) => {
        request.log.warn({ err }, 'SCAR state not read');
        return undefined;
      });
      return view(row, live);
    },
  });

  app.post('/v1/scars/:id/response', {
    // The supplier's answer, entered by a quality engineer or sent by the supplier portal's key.
    config: { access: { roles: [...SCAR_DECIDERS], machine: ['scars:respond'] } },
    schema: {
      summary: "Record the supplier's 8D response to a SCAR",
      description:
        'Accepted only while the SCAR awaits a response (409 otherwise); a re-sent `responseId` is recorded once. ' +
        'Audited. docs/analytics.md#supplier-quality.',
      tags: ['suppliers'],
      params: ScarParamsSchema,
      body: ScarResponseBodySchema,
      response: {
        202: ScarViewSchema,
        400: ProblemSchema,
        401: ProblemSchema,
        403: ProblemSchema,
        404: ProblemSchema,
        409: ProblemSchema,
        503: ProblemSchema,
      },
    },
    handler: async (request, reply) => {
      const row = await scarRow(request.params.id);
      const live = await control()
        .scarState(row.workflow_id)
        .catch((err: unknown) => unavailable(request, err, 'SCAR state not read'));
      const known = live?.responses.some((r) => r.responseId === request.body.responseId) ?? false;
      if (!live || (live.stage !== 'awaiting-response' && !known)) {
        throw new ProblemError({
          type: problemType('scar-stage'),
          title: 'SCAR is not awaiting a response',
          status: 409,
          detail: `SCAR ${row.id} is ${live?.stage ?? row.state}`,
        });
      }
      const actor = requestActor(request);
      const response = {
        ...request.body,
        disciplines: request.body.disciplines as Record<string, string>,
        receivedAt: new Date().toISOString(),
        recordedBy: actor.id,
      };
      await deps.audit.append([
        {
          actor,
          action: 'scar.response',
          recordType: 'scar',
          recordId: row.id,
          old: { state: live.stage },
          new: { responseId: response.responseId },
          reason: null,
          outcome: 'accepted',
          detail: { rootCause: response.rootCause, correctiveAction: response.correctiveAction },
        },
      ]);
      if (!known) {
        await control()
          .recordResponse(row.workflow_id, response)
          .catch((err: unknown) => unavailable(request, err, 'SCAR response not delivered'));
      }
      return reply.code(202).send(await view(row, live));
    },
  });

  const decisionRoute = (decision: 'accept' | 'reject') =>
    app.post(`/v1/scars/:id/${decision}`, {
      config: { access: { roles: [...SCAR_DECIDERS] } },
      schema: {
        summary:
          decision === 'accept'
            ? "Accept the supplier's 8D response, signed: verification over the next receipts begins"
            : "Reject the supplier's 8D response, signed: the supplier is asked again with a new due date",
        description:
          'Only a SCAR whose response was received can be decided (409 otherwise). The signature covers the SCAR, ' +
          'the response, the decision and the reason. Audited. docs/analytics.md#supplier-quality.',
        tags: ['suppliers'],
        params: ScarParamsSchema,
        body: ScarDecisionBodySchema,
        response: {
          202: ScarViewSchema,
          400: ProblemSchema,
          401: ProblemSchema,
          403: ProblemSchema,
          404: ProblemSchema,
          409: ProblemSchema,
          423: ProblemSchema,
          503: ProblemSchema,
        },
      },
      handler: async (request, reply) => {
        const row = await scarRow(request.params.id);
        const live = await control()
          .scarState(row.workflow_id)
          .catch((err: unknown) => unavailable(request, err, 'SCAR state not read'));
        const lastResponse = live?.responses.at(-1);
        if (!live || live.stage !== 'response-received' || !lastResponse) {
          throw new ProblemError({
            type: problemType('scar-stage'),
            title: 'SCAR has no response to decide',
            status: 409,
            detail: `SCAR ${row.id} is ${live?.stage ?? row.state}`,
          });
        }
        const actor = requestActor(request);
        const { reason, signature } = request.body;
        const signer = await authenticateSigner(deps, request, signature);
        const content = {
          record: 'scar-decision',
          scarId: row.id,
          supplier: row.supplier,
          round: live.round,
          responseId: lastResponse.responseId,
          decision,
          reason,
          decidedBy: actor.id,
        };
        const sealed = await signContent(deps.signatureKey, {
          signer: signer.principal,
          meaning: signature.meaning,
          method: signer.method,
          content,
        });
        await deps.audit.inTransaction(async (client) => {
          await client.query(
            `UPDATE holdfast.scar SET decision_signatures = decision_signatures || $2::jsonb, updated_at = now()
              WHERE id = $1`,
            [row.id, JSON.stringify([{ manifest: sealed, content }])],
          );
          const entry: AuditEntry = {
            actor,
            action: `scar.${decision}`,
            recordType: 'scar',
            recordId: row.id,
            old: { state: live.stage, round: live.round },
            new: { decision, signatureId: sealed.signatureId },
            reason,
            outcome: 'accepted',
            detail: { responseId: lastResponse.responseId, supplier: row.supplier },
          };
          return { result: undefined, audit: [entry] };
        });
        await control()
          .decide(row.workflow_id, {
            decision,
            reason,
            decidedBy: actor.id,
            signatureId: sealed.signatureId,
            decidedAt: sealed.signedAt,
          })
          .catch((err: unknown) => unavailable(request, err, 'SCAR decision not delivered'));
        return reply.code(202).send(await view(await scarRow(row.id), live));
      },
    });
  decisionRoute('accept');
  decisionRoute('reject');
};

export default suppliersRoutes;
