import { z } from 'zod';

export const TraceLinkSchema = z.object({
  fromKind: z.string(),
  fromId: z.string(),
  relation: z.string(),
  toKind: z.string(),
  toId: z.string(),
  system: z.string().optional(),
  attributes: z.record(z.string(), z.unknown()),
  createdAt: z.string(),
});
export type TraceLinkView = z.infer<typeof TraceLinkSchema>;

export const WorkflowViewSchema = z.object({
  workflowId: z.string(),
  runId: z.string().optional(),
  status: z.string().optional(),
  type: z.string().optional(),
  startTime: z.string().optional(),
  closeTime: z.string().optional(),
  temporalUiUrl: z.string(),
});
export type WorkflowView = z.infer<typeof WorkflowViewSchema>;

const MaterialDocument = z.object({
  materialDocument: z.string(),
  materialDocumentYear: z.string(),
  movementType: z.string(),
  quantity: z.number(),
});

export const MaterialDocumentSchema = MaterialDocument;

export const StepFailureSchema = z.object({
  step: z.string(),
  errorType: z.string(),
  message: z.string(),
  at: z.string(),
  /** The part whose step it is; absent for the lot's own steps. */
  eventId: z.string().optional(),
  partId: z.string().optional(),
});
