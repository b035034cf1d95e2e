import { z } from 'zod';
import { MaterialDocumentSchema, StepFailureSchema, TraceLinkSchema, WorkflowViewSchema } from './common.schema';
import { Identifier } from '../../infra/ingest/inspection.schema';
import { DispositionOutcomeSchema, SignatureViewSchema } from './disposition.schema';
import { DISPOSITION_DECISIONS } from '../../workflows/contracts';

/** The signed decision as the case holds it from acceptance on (a use-as-is waits here for its second signature). */
export const SignedDecisionSchema = z.object({
  decision: z.enum(DISPOSITION_DECISIONS),
  reason: z.string(),
  decidedBy: z.string(),
  requestId: z.string(),
  signatures: z.array(SignatureViewSchema),
});

export const LotParamsSchema = z.strictObject({ lotId: Identifier });
export const LotQuerySchema = z.strictObject({ site: Identifier.optional() });

export const LotCasePartSchema = z.object({
  eventId: z.string(),
  partId: z.string(),
  station: z.string(),
  workOrder: z.string(),
  defectClass: z.string(),
  /** containing: its steps run or wait for an operator; contained: item, block and work-order count are done. */
  status: z.enum(['containing', 'contained']),
  notificationItem: z.string().optional(),
  materialDocument: MaterialDocumentSchema.optional(),
  /** The work order's quality status after this part was counted. */
  workOrderQuality: z.string().optional(),
});

export const LotCaseStateSchema = z.object({
  site: z.string(),
  line: z.string(),
  lotId: z.string(),
  sku: z.string(),
  stage: z.string(),
  holdId: z.string().optional(),
  notification: z.string().optional(),
  parts: z.array(LotCasePartSchema),
  pendingParts: z.number(),
  lotBlocked: z.boolean(),
  blockedQuantity: z.number(),
  materialDocuments: z.array(MaterialDocumentSchema),
  decision: SignedDecisionSchema.optional(),
  disposition: DispositionOutcomeSchema.optional(),
  escalatedAt: z.string().optional(),
  /** Every step that failed for good and waits for an operator, in the order they failed. */
  failures: z.array(StepFailureSchema).optional(),
  openedAt: z.string(),
  closedAt: z.string().optional(),
});

export const LotCaseViewSchema = z.object({
  workflowId: z.string(),
  runId: z.string(),
  line: z.string(),
  sku: z.string(),
  stage: z.string(),
  holdId: z.string().optional(),
  notification: z.string().optional(),
  materialDocuments: z.array(MaterialDocumentSchema),
  decision: SignedDecisionSchema.optional(),
  disposition: DispositionOutcomeSchema.optional(),
  openedAt: z.string(),
  updatedAt: z.string(),
  closedAt: z.string().optional(),
  temporalUiUrl: z.string(),
});
export type LotCaseView = z.infer<typeof LotCaseViewSchema>;

export const LotViewSchema = z.object({
  site: z.string(),
  lotId: z.string(),
  inspections: z.object({ pass: z.number().int(), fail: z.number().int(), total: z.number().int() }),
  cases: z.array(LotCaseViewSchema),
  /** The lot-case workflow for this lot, when Temporal knows it. */
  workflow: WorkflowViewSchema.optional(),
  /** Live state of the open case, queried from the running workflow. */
  live: LotCaseStateSchema.optional(),
  trace: z.array(TraceLinkSchema),
  /** False when Temporal could not be asked; stored data is still returned. */
  temporalAvailable: z.boolean(),
});
export type LotView = z.infer<typeof LotViewSchema>;
