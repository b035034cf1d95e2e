import type { FastifyRequest } from 'fastify';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { AuditEntry } from '../../../infra/audit/audit-record';
import { requestActor } from '../../../infra/http/request-actor';
import { ProblemError, notFound, problemType, workflowServiceUnavailable } from '../../../infra/http/problem-details';
import { ProblemSchema } from '../../../infra/http/schemas';
import type { AccessTarget } from '../../../infra/identity/access';
import { UnknownLineError, type ChangeoverControl } from '../../../infra/temporal/changeover-starter';
import { UpdateRejectedError, WorkflowNotFoundError } from '../../../infra/temporal/gateway';
import { changeoverWorkflowId, type FirstArticleApproval } from '../../../workflows/contracts';
import type { ApiDeps } from '../../deps';
import {
  ChangeoverBodySchema,
  ChangeoverCancelBodySchema,
  ChangeoverCancelledSchema,
  ChangeoverParamsSchema,
  ChangeoverStartedSchema,
  ChangeoverStatusSchema,
  ChangeoverViewSchema,
  FirstArticleApprovalBodySchema,
  LineParamsSchema,
} from '../../schemas/changeover.schema';
import { DispositionHeadersSchema } from '../../schemas/disposition.schema';
import {
  changeoverRequestContent,
  firstArticleApprovalContent,
  signChangeoverContent,
  changeoverStatusView,
} from '../../services/changeover.service';
import { authenticateSigner } from '../../services/e-signature.service';
import { READERS } from '../../support/access';
import { temporalUiWorkflowUrl } from '../../support/temporal-ui';

/** Who decides a line's changeover and its first article: people responsible for quality (admins always may). */
const CHANGEOVER_DECIDERS = ['quality-engineer', 'quality-manager'] as const;

const lineTarget = (request: FastifyRequest): AccessTarget[] => {
  const { site, line } = request.params as { site: string; line: string };
  return [{ site, line }];
};

/**
 * A line's changeovers (docs/changeover.md#routes): a signed manual changeover, its status with every station's
 * before / after, a quality engineer's signed first-article approval, and a cancel (which reverts the stations).
 */
const lineRoutes: FastifyPluginAsyncZod<{ deps: ApiDeps }> = async (app, { deps }) => {
  const control = (): ChangeoverControl => {
    if (!deps.changeovers) throw workflowServiceUnavailable();
    return deps.changeovers;
  };
  const links = (site: string, line: string, workOrder: string) => {
    const workflowId = changeoverWorkflowId(site, line, workOrder);
    return {
      self: `/v1/lines/${encodeURIComponent(site)}/${encodeURIComponent(line)}/changeovers/${encodeURIComponent(workOrder)}`,
      temporalUi: temporalUiWorkflowUrl(deps.config.api.temporalUiUrl, deps.namespace, workflowId),
    };
  };
  /** Temporal could not be reached, or answered with an error of its own: the client retries with the same key. */
  const unavailable = (request: FastifyRequest, err: unknown, what: string): never => {
    if (err instanceof ProblemError) throw err;
    request.log.warn({ err }, what);
    throw workflowServiceUnavailable('the workflow service could not be reached; retry with the same Idempotency-Key');
  };

  app.post('/v1/lines/:site/:line/changeover', {
    // A person's decision, signed: no machine key may switch a line's recipes.
    config: { access: { roles: CHANGEOVER_DECIDERS }, accessTargets: lineTarget },
    schema: {
      summary: 'Change a line over to a work order by hand (signed)',
      description:
        "Interlocks the line, switches every station to the order's recipe, verifies each by read-back, waits for " +
        'the first article and releases the order in the MES (docs/changeover.md). Requires an `Idempotency-Key` ' +
        "header and the requester's electronic signature. A line has one changeover per work order: a second " +
        'request answers `already-running`; a failed or cancelled one may be started again.',
      tags: ['changeovers'],
      headers: DispositionHeadersSchema,
      params: LineParamsSchema,
      body: ChangeoverBodySchema,
      response: {
        202: ChangeoverStartedSchema,
        400: ProblemSchema,
        401: ProblemSchema,
        403: ProblemSchema,
        404: ProblemSchema,
        423: ProblemSchema,
        503: ProblemSchema,
      },
    },
    handler: async (request, reply) => {
      const { site, line } = request.params;
      const { workOrder, sku, reason, signature } = request.body;
      if (!deps.config.sites.find((s) => s.id === site)?.lines.some((l) => l.id === line)) {
        throw notFound(`line ${site}/${line} is not configured`);
      }
      const changeovers = control();
      const signer = await authenticateSigner(deps, request, signature);
      const actor = requestActor(request);
      const requestId = request.headers['idempotency-key'];
      const workflowId = changeoverWorkflowId(site, line, workOrder);
      const sealed = await signChangeoverContent(
        deps,
        signer,
        signature.meaning,
        changeoverRequestContent(
          { site, line, workOrder, workflowId },
          { sku, reason, requestedBy: actor.id, requestId },
        ),
      );
      const started = await changeovers
        .start({
          site,
          line,
          workOrder,
          sku,
          trigger: 'manual',
          requestId,
          requestedBy: actor.id,
          reason,
          dueAt: new Date().toISOString(),
          signature: sealed,
        })
        .catch((err: unknown) => {
          if (err instanceof UnknownLineError) throw notFound(err.message);
          return unavailable(request, err, 'changeover not started');
        });
      const entry: AuditEntry = {
        actor,
        action: 'changeover.start',
        recordType: 'changeover',
        recordId: workflowId,
        old: null,
        new: { site, line, workOrder, sku, requestId, signatureId: sealed.signatureId },
        reason,
        outcome: started.outcome === 'started' ? 'accepted' : 'refused',
        detail: started.outcome === 'started' ? null : { outcome: started.outcome },
      };
      await deps.audit.append([entry]);
      return reply.code(202).send({
        workflowId,
        outcome: started.outcome,
        ...(started.outcome === 'started' ? { signature: sealed } : {}),
        links: links(site, line, workOrder),
      });
    },
  });

  app.get('/v1/lines/:site/:line/changeovers/:workOrder', {
    config: { access: { roles: READERS, machine: ['lots:read'] }, accessTargets: lineTarget },
    schema: {
      summary: "A changeover's stage, every station's before / after / verified, first-article parts and timings",
      description:
        "From the changeover workflow's `changeoverStatus` query, with its Temporal execution status and a link to " +
        "it in the Temporal Web UI. A first article's approval signature is verified on every read. `status` is " +
        'null when no worker answered in time.',
      tags: ['changeovers'],
      params: ChangeoverParamsSchema,
      response: {
        200: ChangeoverViewSchema,
        400: ProblemSchema,
        401: ProblemSchema,
        403: ProblemSchema,
        404: ProblemSchema,
        503: ProblemSchema,
      },
    },
    handler: async (request) => {
      const { site, line, workOrder } = request.params;
      const view = await control()
        .view(site, line, workOrder)
        .catch((err: unknown) => unavailable(request, err, 'changeover not read'));
      if (!view) throw notFound(`no changeover of ${site}/${line} to work order ${workOrder}`);
      const place = { site, line, workOrder, workflowId: view.workflowId };
      const status = view.status ? await changeoverStatusView(deps, place, view.status) : null;
      return {
        workflowId: view.workflowId,
        runId: view.runId,
        execution: view.execution,
        status,
        links: {
          self: links(site, line, workOrder).self,
          temporalUi: temporalUiWorkflowUrl(deps.config.api.temporalUiUrl, deps.namespace, view.workflowId, view.runId),
        },
      };
    },
  });

  app.post('/v1/lines/:site/:line/changeovers/:workOrder/first-article/approve', {
    config: { access: { roles: CHANGEOVER_DECIDERS }, accessTargets: lineTarget },
    schema: {
      summary: "Approve a changeover's first article (signed): the order is released without waiting for more parts",
      description:
        'Only while the changeover awaits its first article (409 otherwise). Requires an `Idempotency-Key` header ' +
        "(the update's id: a repeat answers the first) and the approver's electronic signature.",
      tags: ['changeovers'],
      headers: DispositionHeadersSchema,
      params: ChangeoverParamsSchema,
      body: FirstArticleApprovalBodySchema,
      response: {
        200: ChangeoverStatusSchema,
        400: ProblemSchema,
        401: ProblemSchema,
        403: ProblemSchema,
        404: ProblemSchema,
        409: ProblemSchema,
        423: ProblemSchema,
        503: ProblemSchema,
      },
    },
    handler: async (request) => {
      const { site, line, workOrder } = request.params;
      const { reason, signature } = request.body;
      const changeovers = control();
      const signer = await authenticateSigner(deps, request, signature);
      const actor = requestActor(request);
      const requestId = request.headers['idempotency-key'];
      const workflowId = changeoverWorkflowId(site, line, workOrder);
      const place = { site, line, workOrder, workflowId };
      const content = firstArticleApprovalContent(place, { approvedBy: actor.id, reason, requestId });
      const approval: FirstArticleApproval = {
        approvedBy: actor.id,
        reason,
        requestId,
        signature: await signChangeoverContent(deps, signer, signature.meaning, content),
      };
      const audit = (outcome: 'accepted' | 'refused', detail: unknown) =>
        deps.audit.append([
          {
            actor,
            action: 'changeover.first-article.approve',
            recordType: 'changeover',
            recordId: workflowId,
            old: null,
            new: { requestId, signatureId: approval.signature.signatureId },
            reason,
            outcome,
            detail,
          },
        ]);
      let status;
      try {
        status = await changeovers.approveFirstArticle(site, line, workOrder, approval);
      } catch (err) {
        if (err instanceof UpdateRejectedError) {
          await audit('refused', { reason: err.message });
          throw new ProblemError({
            type: problemType('changeover-not-awaiting-first-article'),
            title: 'The changeover is not awaiting its first article',
            status: 409,
            detail: err.message,
          });
        }
        if (err instanceof WorkflowNotFoundError) {
          throw notFound(`no open changeover of ${site}/${line} to work order ${workOrder}`);
        }
        return unavailable(request, err, 'first-article approval not delivered');
      }
      await audit('accepted', null);
      return changeoverStatusView(deps, place, status);
    },
  });

  app.post('/v1/lines/:site/:line/changeovers/:workOrder/cancel', {
    // Also the line's operators: a cancel stops a changeover and puts every station back; it releases nothing.
    config: { access: { roles: ['operator', ...CHANGEOVER_DECIDERS] }, accessTargets: lineTarget },
    schema: {
      summary: 'Cancel a changeover: every prepared station is reverted and the line stays interlocked',
      tags: ['changeovers'],
      params: ChangeoverParamsSchema,
      body: ChangeoverCancelBodySchema,
      response: {
        202: ChangeoverCancelledSchema,
        400: ProblemSchema,
        401: ProblemSchema,
        403: ProblemSchema,
        404: ProblemSchema,
        503: ProblemSchema,
      },
    },
    handler: async (request, reply) => {
      const { site, line, workOrder } = request.params;
      const workflowId = changeoverWorkflowId(site, line, workOrder);
      try {
        await control().cancel(site, line, workOrder);
      } catch (err) {
        if (err instanceof WorkflowNotFoundError) {
          throw notFound(`no open changeover of ${site}/${line} to work order ${workOrder}`);
        }
        return unavailable(request, err, 'changeover cancel not delivered');
      }
      await deps.audit.append([
        {
          actor: requestActor(request),
          action: 'changeover.cancel',
          recordType: 'changeover',
          recordId: workflowId,
          old: null,
          new: { cancelRequested: true },
          reason: request.body.reason,
          outcome: 'accepted',
          detail: null,
        },
      ]);
      return reply.code(202).send({ workflowId, state: 'cancelling' as const });
    },
  });
};

export default lineRoutes;
