import { z } from 'zod';
import { StepFailureSchema, TraceLinkSchema, WorkflowViewSchema } from './common.schema';
import { DetectedDefectSchema } from '../../infra/ingest/inspection.schema';
import { LotCasePartSchema } from './lot.schema';
import { MaterialContextSchema } from './quality.schema';

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
  /** The component and supplier lots of the part's work order (docs/changeover.md#material-lot-context). */
  materialContext: MaterialContextSchema.optional(),
});

export const DispatchStatusSchema = z.object({
  /** pending: not handed over yet; dispatched: handed over, not yet recorded; confirmed: its workflow recorded it. */
  state: z.enum(['pending', 'dispatched', 'confirmed']),
  /** The workflow that takes the part: its lot's case, or a shadow station's record. */
  workflowId: z.string(),
  attempts: z.number().int(),
  createdAt: z.string(),
  nextAttemptAt: z.string().optional(),
  dispatchedAt: z.string().optional(),
  confirmedAt: z.string().optional(),
  /** How often it was sent again because no workflow recorded it in time. */
  redispatches: z.number().int(),
  runId: z.string().optional(),
  lastError: z.string().optional(),
});

export const DefectViewSchema = z.object({
  eventId: z.string(),
  inspection: StoredInspectionSchema,
  /** Present for failed inspections: the workflow that takes the part, with its Web UI link. */
  workflow: WorkflowViewSchema.optional(),
  dispatch: DispatchStatusSchema.optional(),
  /** The part in its lot case, as the case last recorded it in PostgreSQL; absent until the case's first record. */
  lotCase: z
    .object({
      workflowId: z.string(),
      runId: z.string(),
      stage: z.string(),
      holdId: z.string().optional(),
      notification: z.string().optional(),
      part: LotCasePartSchema,
      /** Steps waiting for an operator that hold this part up: its own and the lot's. */
      failures: z.array(StepFailureSchema),
      openedAt: z.string(),
      updatedAt: z.string(),
      closedAt: z.string().optional(),
    })
    .optional(),
  trace: z.array(TraceLinkSchema),
});
export type DefectView = z.infer<typeof DefectViewSchema>;
