import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { ApiDeps } from '../../deps';
import { authorizeSite } from '../../../infra/identity/route-access';
import { READERS } from '../../support/access';
import type { FastifyReply } from 'fastify';
import { z } from 'zod';
import { ProblemError, notFound, problemType } from '../../../infra/http/problem-details';
import { FrameImageError, allowedImageOrigin, fetchFrameImage } from '../../services/frame-image';
import { findInspection } from '../../../infra/ingest/inspection.repository';
import { materialContextOf } from '../../../infra/genealogy/material-context';
import { lotCaseOfPart } from '../../repositories/lot-case.repository';
import { outboxStatus } from '../../repositories/outbox-status.repository';
import { traceLinksOf } from '../../repositories/trace.repository';
import { StepFailureSchema } from '../../schemas/common.schema';
import { ProblemSchema } from '../../../infra/http/schemas';
import { DefectParamsSchema, type DefectView, DefectViewSchema } from '../../schemas/defect.schema';
import { LotCasePartSchema } from '../../schemas/lot.schema';
import { temporalUiWorkflowUrl } from '../../support/temporal-ui';

const defectRoutes: FastifyPluginAsyncZod<{ deps: ApiDeps }> = async (app, { deps }) => {
  app.get('/v1/defects/:id', {
    config: { access: { roles: READERS, machine: ['defects:read'] } },
    schema: {
      summary:
        'One inspection with its material-lot context, its hand-over, its part in the lot case and its trace documents',
      description:
        '`id` is the inspection eventId. Answered from PostgreSQL alone: the lot case records each part with its ' +
        'documents and parked steps, so the answer does not depend on Temporal being reachable.',
      tags: ['defects'],
      params: DefectParamsSchema,
      response: { 200: DefectViewSchema, 400: ProblemSchema, 404: ProblemSchema },
    },
    handler: async (request) => {
      const inspection = await findInspection(deps.pool, request.params.id);
      if (!inspection) throw notFound(`no inspection ${request.params.id}`);
      authorizeSite(request, { site: inspection.site, line: inspection.line, station: inspection.station });
      const { eventId } = inspection;

      const [trace, dispatch, lotCase, materialContext] = await Promise.all([
        traceLinksOf(deps.pool, 'inspection', eventId),
        inspection.result === 'fail' ? outboxStatus(deps.pool, eventId) : undefined,
        inspection.result === 'fail' ? lotCaseOfPart(deps.pool, inspection) : undefined,
        materialContextOf(deps.pool, eventId),
      ]);
      const view: DefectView = {
        eventId,
        inspection: { ...inspection, ...(materialContext ? { materialContext } : {}) },
        trace,
      };
      if (!dispatch) return view;

      view.dispatch = dispatch;
      const part = LotCasePartSchema.array()
        .safeParse(lotCase?.state.parts)
        .data?.find((p) => p.eventId === eventId);
      if (lotCase && part) {
        const failures = StepFailureSchema.array().safeParse(lotCase.state.failures).data ?? [];
        view.lotCase = {
          workflowId: lotCase.workflowId,
          runId: lotCase.runId,
          stage: lotCase.stage,
          ...(lotCase.holdId !== undefined ? { holdId: lotCase.holdId } : {}),
          ...(lotCase.notification !== undefined ? { notification: lotCase.notification } : {}),
          part,
          failures: failures.filter((f) => f.eventId === undefined || f.eventId === eventId),
          openedAt: lotCase.openedAt,
          updatedAt: lotCase.updatedAt,
          ...(lotCase.closedAt !== undefined ? { closedAt: lotCase.closedAt } : {}),
        };
      }
      const runId = lotCase && part ? lotCase.runId : dispatch.runId;
      view.workflow = {
        workflowId: dispatch.workflowId,
        ...(runId ? { runId } : {}),
        temporalUiUrl: temporalUiWorkflowUrl(deps.config.api.temporalUiUrl, deps.namespace, dispatch.workflowId, runId),
      };
      return view;
    },
  });

  app.get('/v1/defects/:id/image', {
    config: { access: { roles: READERS, machine: ['defects:read'] } },
    schema: {
      summary: "An inspection's frame image, fetched by the API from the frame's image reference",
      description:
        'Served only when the reference is an http or https URL whose origin is in api.dashboard.imageOrigins ' +
        '(exact match; 404 otherwise, and when the inspection has no image). The API fetches it without following ' +
        'redirects, within 2 s, at most 5 MB, and only an image content type (SVG excluded); anything else is a 502. ' +
        'The browser fetches it with its bearer token and shows it from a blob: URL. docs/dashboard.md#mrb-console-data.',
      tags: ['defects'],
      params: DefectParamsSchema,
      response: {
        200: z.unknown(),
        400: ProblemSchema,
        401: ProblemSchema,
        403: ProblemSchema,
        404: ProblemSchema,
        502: ProblemSchema,
      },
    },
    handler: async (request, reply) => {
      const inspection = await findInspection(deps.pool, request.params.id);
      if (!inspection) throw notFound(`no inspection ${request.params.id}`);
      authorizeSite(request, { site: inspection.site, line: inspection.line, station: inspection.station });
      const ref = inspection.imageRef;
      if (!ref) throw notFound(`inspection ${inspection.eventId} has no image reference`);
      if (!allowedImageOrigin(ref, deps.config.api.dashboard.imageOrigins)) {
        throw notFound(`the image of inspection ${inspection.eventId} is not at an origin this API may fetch from`);
      }
      try {
        const image = await fetchFrameImage(ref);
        const untyped: FastifyReply = reply;
        return untyped
          .type(image.contentType)
          .header('cache-control', 'private, max-age=300')
          .header('content-security-policy', "default-src 'none'; sandbox")
          .send(image.body);
      } catch (err) {
        if (!(err instanceof FrameImageError)) throw err;
        request.log.warn({ eventId: inspection.eventId, reason: err.message }, 'frame image not fetched');
        throw new ProblemError({
          type: problemType('image-unavailable'),
          title: 'Image not available',
          status: 502,
          detail: `the image of inspection ${inspection.eventId} could not be fetched: ${err.message}`,
        });
      }
    },
  });
};

export default defectRoutes;
