import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { defectWorkflowId } from '../../../workflows/contracts';
import type { ApiDeps } from '../../deps';
import { notFound } from '../../../infra/http/problem-details';
import { findInspection } from '../../../infra/ingest/inspection.repository';
import { outboxStatus } from '../../repositories/outbox-status.repository';
import { traceLinksOf } from '../../repositories/trace.repository';
import { type WorkflowView } from '../../schemas/common.schema';
import { ProblemSchema } from '../../../infra/http/schemas';
import { DefectParamsSchema, type DefectView, DefectViewSchema } from '../../schemas/defect.schema';
import { temporalUiWorkflowUrl } from '../../support/temporal-ui';

const DEFECT_ID_PREFIX = defectWorkflowId('');

const defectRoutes: FastifyPluginAsyncZod<{ deps: ApiDeps }> = async (app, { deps }) => {
  app.get('/v1/defects/:id', {
    schema: {
      summary: 'One inspection with its defect workflow, live state and trace documents',
      description: '`id` is the inspection eventId or the defect workflow id (`defect-<eventId>`).',
      tags: ['defects'],
      params: DefectParamsSchema,
      response: { 200: DefectViewSchema, 400: ProblemSchema, 404: ProblemSchema },
    },
    handler: async (request) => {
      const { id } = request.params;
      const inspection =
        (await findInspection(deps.pool, id)) ??
        (id.startsWith(DEFECT_ID_PREFIX)
          ? await findInspection(deps.pool, id.slice(DEFECT_ID_PREFIX.length))
          : undefined);
      if (!inspection) throw notFound(`no inspection or defect workflow ${id}`);

      const trace = await traceLinksOf(deps.pool, 'inspection', inspection.eventId);
      const view: DefectView = { eventId: inspection.eventId, inspection, trace, temporalAvailable: true };
      if (inspection.result !== 'fail') return view;

      const workflowId = defectWorkflowId(inspection.eventId);
      const dispatch = await outboxStatus(deps.pool, inspection.eventId);
      if (dispatch) view.dispatch = dispatch;
      const workflow: WorkflowView = {
        workflowId,
        temporalUiUrl: temporalUiWorkflowUrl(deps.config.api.temporalUiUrl, deps.namespace, workflowId),
      };
      view.workflow = workflow;
      try {
        const described = await deps.gateway.describe(workflowId);
        if (described) {
          Object.assign(workflow, described, {
            temporalUiUrl: temporalUiWorkflowUrl(
              deps.config.api.temporalUiUrl,
              deps.namespace,
              workflowId,
              described.runId,
            ),
          });
          const live = await deps.gateway.defectState(workflowId);
          if (live) view.live = live;
        }
      } catch (err) {
        request.log.warn({ err, workflowId }, 'temporal unavailable for defect read');
        view.temporalAvailable = false;
      }
      return view;
    },
  });
};

export default defectRoutes;
