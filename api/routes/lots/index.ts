import type { FastifyReply, FastifyRequest } from 'fastify';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { UpdateRejectedError, WorkflowNotFoundError } from '../../../infra/temporal/gateway';
import { lotCaseWorkflowId } from '../../../workflows/contracts';
import type { ApiDeps } from '../../deps';
import type { AuditActor } from '../../../infra/audit/audit-record';
import { requestActor } from '../../../infra/http/request-actor';
import { ProblemError, notFound, problemType } from '../../../infra/http/problem-details';
import { lotInspectionCounts, sitesOfLot } from '../../../infra/ingest/inspection.repository';
import { type LotCaseRecord, lotCasesOf } from '../../repositories/lot-case.repository';
import { traceLinksOf } from '../../repositories/trace.repository';
import { MaterialDocumentSchema, type WorkflowView } from '../../schemas/common.schema';
import { ProblemSchema } from '../../../infra/http/schemas';
import {
  CountersignBodySchema,
  DispositionBodySchema,
  DispositionHeadersSchema,
  DispositionOutcomeSchema,
  RetryStepBodySchema,
  RetryStepResultSchema,
  type SignatureInput,
} from '../../schemas/disposition.schema';
import {
  type LotCaseView,
  LotCaseStateSchema,
  LotParamsSchema,
  LotQuerySchema,
  type LotView,
  LotViewSchema,
  SignedDecisionSchema,
} from '../../schemas/lot.schema';
import {
  type LotAtSite,
  type StoredAnswer,
  countersignLotDisposition,
  submitLotDisposition,
} from '../../services/disposition.service';
import { type Signer, authenticateSigner, verifiedSignatures } from '../../services/e-signature.service';
import { authorizeSite, mayActAt } from '../../../infra/identity/route-access';
import { READERS } from '../../support/access';
import { temporalUiWorkflowUrl } from '../../support/temporal-ui';
import { LOT_DEFECTS_LIMIT, type LotDefectsResponse, LotDefectsResponseSchema } from '../../schemas/dashboard.schema';
import { allowedImageOrigin } from '../../services/frame-image';

const lotRoutes: FastifyPluginAsyncZod<{ deps: ApiDeps }> = async (app, { deps }) => {
  const uiUrl = (workflowId: string, runId?: string) =>
    temporalUiWorkflowUrl(deps.config.api.temporalUiUrl, deps.namespace, workflowId, runId);

  app.get('/v1/lots/:lotId', {
    config: { access: { roles: READERS, machine: ['lots:read'] } },
    schema: {
      summary: 'A lot: its cases (holds), live case state, inspection counts and trace documents',
      description: '`site` is needed only when the lot id has been seen at more than one site.',
      tags: ['lots'],
      params: LotParamsSchema,
      querystring: LotQuerySchema,
      response: { 200: LotViewSchema, 400: ProblemSchema, 404: ProblemSchema },
    },
    handler: async (request) => {
      const { lotId } = request.params;
      const site = await resolveSite(deps, lotId, request.query.site, request);
      authorizeSite(request, { site });
      const [counts, cases, trace] = await Promise.all([
        lotInspectionCounts(deps.pool, site, lotId),
        lotCasesOf(deps.pool, site, lotId),
        traceLinksOf(deps.pool, 'lot', `${site}/${lotId}`),
      ]);
      const view: LotView = {
        site,
        lotId,
        inspections: counts,
        cases: await Promise.all(cases.map((c) => lotCaseView(deps, c, uiUrl(c.workflowId, c.runId)))),
        trace,
        temporalAvailable: true,
      };
      const workflowId = lotCaseWorkflowId(site, lotId);
      try {
        const described = await deps.gateway.describe(workflowId);
        if (described) {
          const workflow: WorkflowView = { ...described, temporalUiUrl: uiUrl(workflowId, described.runId) };
          view.workflow = workflow;
          if (described.status === 'RUNNING') {
            const state = await deps.gateway.lotCaseState(workflowId);
            const live =
              state && LotCaseStateSchema.safeParse(await withVerifiedSignatures(deps, workflowId, { ...state }));
            if (live?.success) view.live = live.data;
          }
        }
      } catch (err) {
        request.log.warn({ err, workflowId }, 'temporal unavailable for lot read');
        view.temporalAvailable = false;
      }
      return view;
    },
  });

  app.get('/v1/lots/:lotId/defects', {
    config: { access: { roles: READERS, machine: ['lots:read'] } },
    schema: {
      summary: "A lot's failed inspections with their defects and frame images, newest first (the MRB console)",
      description:
        `The newest ${LOT_DEFECTS_LIMIT} failed production inspections of the lot (\`total\` counts them all), each ` +
        'with its defects and the frame’s image reference as stored. `imageUrl` is set when the API may fetch that ' +
        'image (its origin is in api.dashboard.imageOrigins): GET it with the same credentials. `site` is needed only ' +
        'when the lot id has been seen at more than one site. docs/dashboard.md#mrb-console-data.',
      tags: ['lots'],
      params: LotParamsSchema,
      querystring: LotQuerySchema,
      response: {
        200: LotDefectsResponseSchema,
        400: ProblemSchema,
        401: ProblemSchema,
        403: ProblemSchema,
        404: ProblemSchema,
      },
    },
    handler: async (request): Promise<LotDefectsResponse> => {
      const { lotId } = request.params;
      const site = await resolveSite(deps, lotId, request.query.site, request);
      authorizeSite(request, { site });
      const failed = `site = $1 AND lot_id = $2 AND result = 'fail' AND mode = 'production'`;
      const [rows, total] = await Promise.all([
        deps.pool.query<{
          event_id: string;
          line: string;
          station: string;
          part_id: string;
          inspected_at: Date;
          defects: { class: string; score: number }[];
          image_ref: string | null;
        }>(
          `SELECT event_id, line, station, part_id, inspected_at, defects, image_ref FROM holdfast.inspection
            WHERE ${failed} ORDER BY inspected_at DESC, event_id DESC LIMIT $3`,
          [site, lotId, LOT_DEFECTS_LIMIT],
        ),
        deps.pool.query<{ n: string }>(`SELECT count(*) AS n FROM holdfast.inspection WHERE ${failed}`, [site, lotId]),
      ]);
      const origins = deps.config.api.dashboard.imageOrigins;
      return {
        site,
        lotId,
        total: Number(total.rows[0]?.n ?? 0),
        limit: LOT_DEFECTS_LIMIT,
        defects: rows.rows.map((r) => ({
          eventId: r.event_id,
          line: r.line,
          station: r.station,
          partId: r.part_id,
          inspectedAt: r.inspected_at.toISOString(),
          defects: r.defects,
          imageUrl: allowedImageOrigin(r.image_ref, origins)
            ? `/v1/defects/${encodeURIComponent(r.event_id)}/image`
            : null,
          imageRef: r.image_ref,
        })),
      };
    },
  });

  app.post('/v1/lots/:lotId/disposition', {
    // A person's decision: no machine key may drive it (OWASP API6).
    config: { access: { roles: ['quality-engineer', 'quality-manager'] } },
    schema: {
      summary: 'Decide what happens to a held lot (use-as-is, rework, scrap, return-to-vendor)',
      description:
        'Requires an `Idempotency-Key` header (draft-ietf-httpapi-idempotency-key-header). A retry with the same key ' +
        'and body gets the stored answer; the same key with another body gets 422; while the first request runs, 409.',
      tags: ['lots'],
      params: LotParamsSchema,
      headers: DispositionHeadersSchema,
      body: DispositionBodySchema,
      response: SIGNED_DECISION_RESPONSES,
    },
    handler: (request, reply) => signedDecision(deps, request, reply, submitLotDisposition),
  });

  app.post('/v1/lots/:lotId/disposition/countersign', {
    // The two-person rule's second person; the lot case's validator checks the role and the person again.
    config: { access: { roles: ['quality-manager'] } },
    schema: {
      summary: 'Countersign a use-as-is: the second signature, by a quality manager other than the first signer',
      description:
        'Releasing nonconforming material (use-as-is) needs two signatures; the lot case waits in ' +
        '`awaiting-second-signature` until this one. Requires an `Idempotency-Key` header, as the disposition does. ' +
        '409 when no disposition waits, or the signer signed it already or is not a quality manager.',
      tags: ['lots'],
      params: LotParamsSchema,
      headers: DispositionHeadersSchema,
      body: CountersignBodySchema,
      response: SIGNED_DECISION_RESPONSES,
    },
    handler: (request, reply) => signedDecision(deps, request, reply, countersignLotDisposition),
  });

  app.post('/v1/lots/:lotId/retry', {
    config: { access: { roles: ['quality-engineer', 'quality-manager', 'integrator'] } },
    schema: {
      summary: 'Run again the steps a lot case is parked on (needs-attention), after their cause was fixed',
      description:
        'A business rejection or bad master data parks the case with each failed step in its state (`failures`). Fix ' +
        'the cause in the MES or ERP, then call this: every parked step runs again with its original idempotency ' +
        'key, and the answer names them. 409 when no step waits.',
      tags: ['lots'],
      params: LotParamsSchema,
      body: RetryStepBodySchema,
      response: { 200: RetryStepResultSchema, 400: ProblemSchema, 404: ProblemSchema, 409: ProblemSchema },
    },
    handler: async (request) => {
      const site = await resolveSite(deps, request.params.lotId, request.body.site, request);
      authorizeSite(request, { site });
      return retryStep(deps, request.params.lotId, request.body.requestedBy, site, requestActor(request));
    },
  });
};

/**
 * The retry is a Temporal update on the lot case, not a row of ours: it is recorded right after the update returns,
 * with the case's answer (accepted with the steps that run again, or refused). There is no idempotency key to hold
 * the answer until the record is written, so a database failure at that moment answers 500 while the steps run; the
 * case's Temporal history still shows the retry and who asked (docs/audit-trail.md#requests-to-a-workflow).
 */
async function retryStep(
  deps: ApiDeps,
  lotId: string,
  requestedBy: string,
  requestedSite: string | undefined,
  actor: AuditActor,
) {
  const site = await resolveSite(deps, lotId, requestedSite);
  const workflowId = lotCaseWorkflowId(site, lotId);
  const record = (outcome: 'accepted' | 'refused', detail: unknown) =>
    deps.audit.append([
      {
        actor,
        action: 'lot-case.retry',
        recordType: 'lot-case',
        recordId: workflowId,
        old: null,
        new: { requestedBy },
        reason: null,
        outcome,
        detail,
      },
    ]);
  let refusal: ProblemError;
  try {
    const result = await deps.gateway.retryFailedStep(workflowId, requestedBy);
    await record('accepted', result);
    return result;
  } catch (err) {
    if (err instanceof UpdateRejectedError) {
      refusal = new ProblemError({
        type: problemType('retry-rejected'),
        title: 'Nothing to retry',
        status: 409,
        detail: err.message,
      });
    } else if (err instanceof WorkflowNotFoundError) {
      refusal = notFound(`lot ${lotId} at site ${site} has no open lot case`);
    } else {
      throw err;
    }
  }
  await record('refused', refusal.problem);
  throw refusal;
}

/**
 * The site of a lot id: the one asked for, else the only one it was seen at. With a request, the sites its caller may
 * act at come first: a lot id seen at PLANT1 and PLANT2 is not ambiguous to a PLANT1 user (their site is meant); a lot
 * seen only elsewhere resolves to that site, and the caller's access check answers 403.
 */
async function resolveSite(
  deps: ApiDeps,
  lotId: string,
  requested: string | undefined,
  request?: FastifyRequest,
): Promise<string> {
  const seen = await sitesOfLot(deps.pool, lotId);
  const mine = request ? seen.filter((site) => mayActAt(request, { site })) : [];
  const sites = mine.length > 0 ? mine : seen;
  if (requested !== undefined) {
    if (!seen.includes(requested)) throw notFound(`lot ${lotId} has not been seen at site ${requested}`);
    return requested;
  }
  if (sites.length === 0) throw notFound(`lot ${lotId} has never been inspected`);
  if (sites.length > 1) {
    throw new ProblemError({
      type: problemType('ambiguous-lot'),
      title: 'Lot id exists at more than one site',
      status: 400,
      detail: `lot ${lotId} exists at sites ${sites.join(', ')}; add ?site=`,
      sites,
    });
  }
  return sites[0]!;
}

const SIGNED_DECISION_RESPONSES = {
  200: DispositionOutcomeSchema,
  400: ProblemSchema,
  404: ProblemSchema,
  409: ProblemSchema,
  422: ProblemSchema,
  503: ProblemSchema,
};

type SignedDecisionRequest<Body> = FastifyRequest & {
  params: { lotId: string };
  headers: { 'idempotency-key': string };
  body: Body;
};

/**
 * A signed decision on a lot (a disposition, a countersignature): the site as resolved for this caller (a lot id
 * also seen at a site they cannot see is not ambiguous to them), the signer's re-entered credentials, then the
 * service. The answer is pre-serialised canonical JSON, so a replay is byte-identical to the first.
 */
async function signedDecision<Body extends { site?: string; signature: SignatureInput }>(
  deps: ApiDeps,
  request: SignedDecisionRequest<Body>,
  reply: FastifyReply,
  submit: (
    deps: ApiDeps,
    lot: LotAtSite,
    idempotencyKey: string,
    body: Body,
    signer: Signer,
    actor: AuditActor,
  ) => Promise<StoredAnswer>,
) {
  const site = await resolveSite(deps, request.params.lotId, request.body.site, request);
  authorizeSite(request, { site });
  const signer = await authenticateSigner(deps, request, request.body.signature);
  const answer = await submit(
    deps,
    { site, lotId: request.params.lotId },
    request.headers['idempotency-key'],
    { ...request.body, site },
    signer,
    requestActor(request),
  );
  // The untyped reply lets a string through (fastify sends a string with a JSON media type without re-serialising it).
  const untyped: FastifyReply = reply;
  return untyped.code(answer.status).type(answer.contentType).send(answer.body);
}

/**
 * A case's state with every signature checked against the decision as this copy holds it (Part 11: verified on
 * every read; a copy altered after signing shows its signatures invalid).
 */
async function withVerifiedSignatures(
  deps: ApiDeps,
  lotCaseWorkflowId: string,
  state: Record<string, unknown>,
): Promise<Record<string, unknown>> {
  const place = { site: String(state.site), lotId: String(state.lotId), lotCaseWorkflowId };
  const verified = { ...state };
  for (const field of ['decision', 'disposition'] as const) {
    const recorded = state[field] as Parameters<typeof verifiedSignatures>[2] | undefined;
    if (recorded && typeof recorded === 'object') {
      verified[field] = { ...recorded, signatures: await verifiedSignatures(deps, place, recorded) };
    }
  }
  return verified;
}

async function lotCaseView(deps: ApiDeps, c: LotCaseRecord, temporalUiUrl: string): Promise<LotCaseView> {
  const state = await withVerifiedSignatures(deps, c.workflowId, { ...c.state, site: c.site, lotId: c.lotId });
  const materialDocuments = MaterialDocumentSchema.array().safeParse(state.materialDocuments);
  const decision = SignedDecisionSchema.safeParse(state.decision);
  const disposition = DispositionOutcomeSchema.safeParse(state.disposition);
  return {
    workflowId: c.workflowId,
    runId: c.runId,
    line: c.line,
    sku: c.sku,
    stage: c.stage,
    ...(c.holdId !== undefined ? { holdId: c.holdId } : {}),
    ...(c.notification !== undefined ? { notification: c.notification } : {}),
    materialDocuments: materialDocuments.success ? materialDocuments.data : [],
    ...(decision.success ? { decision: decision.data } : {}),
    ...(disposition.success ? { disposition: disposition.data } : {}),
    openedAt: c.openedAt,
    updatedAt: c.updatedAt,
    ...(c.closedAt !== undefined ? { closedAt: c.closedAt } : {}),
    temporalUiUrl,
  };
}

export default lotRoutes;
