import { z } from 'zod';
import { StepFailureSchema, TraceLinkSchema, WorkflowViewSchema } from './common.schema';
import { DetectedDefectSchema } from '../../infra/ingest/inspection.schema';

export const DefectParamsSchema = z.strictObject({ id: z.string().min(1).max(220) });

export const StoredInspectionSchema = z.object({
  eventId: z.string(),
  site: z.string(),
  line: z.string(),
  station: z.string(),
  partId: z.string(),
  sku: z.string(),
  lotId: z.string(),
  workOrder: z.string(),
  result: z.enum(['pass', 'fail']),
  defects: z.array(DetectedDefectSchema),
  modelVersion: z.string(),
  recipeVersion: z.string(),
  inspectedAt: z.string(),
  imageRef: z.string().optional(),
  receivedAt: z.string(),
});

export const DispatchStatusSchema = z.object({
  state: z.enum(['pending', 'dispatched']),
  attempts: z.number().int(),
  createdAt: z.string(),
  nextAttemptAt: z.string().optional(),
  dispatchedAt: z.string().optional(),
  runId: z.string().optional(),
  lastError: z.string().optional(),
});

export const DefectViewSchema = z.object({
  eventId: z.string(),
  inspection: StoredInspectionSchema,
  /** Present for failed inspections: the defect workflow and how its start went. */
  workflow: WorkflowViewSchema.optional(),
  dispatch: DispatchStatusSchema.optional(),
  /** The defect workflow's own stage; containment (hold, notification, block) is the lot case's, see GET /v1/lots. */
  live: z
    .object({
      stage: z.string(),
      lotCaseWorkflowId: z.string(),
      /** While needs-attention: every step waiting for an operator, in the order they failed. */
      failures: z.array(StepFailureSchema).optional(),
    })
    .optional(),
  trace: z.array(TraceLinkSchema),
  /** False when Temporal could not be asked; stored data is still returned. */
  temporalAvailable: z.boolean(),
});
export type DefectView = z.infer<typeof DefectViewSchema>;
