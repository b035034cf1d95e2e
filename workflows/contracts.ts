/**
 * The contract between workflow code and everything that talks to it (API, outbox dispatcher, workers, tests).
 * Workflow sandbox rules apply: no Node built-ins, no zod, only types and cheap constants.
 */
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

export const DEFAULT_QUALITY_TASK_QUEUE = 'holdfast-quality';

/**
 * Custom search attributes. The dev server's SQLite visibility has 10 Keyword slots; these use 8.
 * Registered at start by infra/local (dev server) or with `temporal operator search-attribute create` elsewhere.
 */
export const SearchAttributes = {
  site: defineSearchAttributeKey('Site', SearchAttributeType.KEYWORD),
  line: defineSearchAttributeKey('Line', SearchAttributeType.KEYWORD),
  station: defineSearchAttributeKey('Station', SearchAttributeType.KEYWORD),
  lot: defineSearchAttributeKey('Lot', SearchAttributeType.KEYWORD),
  workOrder: defineSearchAttributeKey('WorkOrder', SearchAttributeType.KEYWORD),
  sku: defineSearchAttributeKey('Sku', SearchAttributeType.KEYWORD),
  defectClass: defineSearchAttributeKey('DefectClass', SearchAttributeType.KEYWORD),
  dispositionState: defineSearchAttributeKey('DispositionState', SearchAttributeType.KEYWORD),
  detectedAt: defineSearchAttributeKey('DetectedAt', SearchAttributeType.DATETIME),
} as const;

export const ALL_SEARCH_ATTRIBUTES = Object.values(SearchAttributes);

/** Error type names shared by activities (which throw them) and workflows (which decide what to do). */
export const ErrorType = {
  /** The request itself is wrong (bad master data, unknown material): retrying cannot help. */
  Validation: 'HoldfastValidation',
  /** The external system understood and refused (lot already scrapped, posting period closed). */
  BusinessRejection: 'HoldfastBusinessRejection',
  /** A referenced object does not exist in the external system. */
  NotFound: 'HoldfastNotFound',
  /** Configuration names something that does not exist (unknown site or connector). */
  Configuration: 'HoldfastConfiguration',
} as const;
export type ErrorTypeName = (typeof ErrorType)[keyof typeof ErrorType];
export const NON_RETRYABLE_ERROR_TYPES: string[] = Object.values(ErrorType);

// ---------------------------------------------------------------------------------------------------------------
// Inputs

export interface BoundingBox {
  x: number;
  y: number;
  width: number;
  height: number;
}

export interface DetectedDefect {
  class: string;
  score: number;
  bbox?: BoundingBox;
}

/** One failed inspection, as stored by ingest and handed to the defect workflow by the outbox dispatcher. */
export interface DefectDetection {
  eventId: string;
  site: string;
  line: string;
  station: string;
  partId: string;
  sku: string;
  lotId: string;
  workOrder: string;
  defects: DetectedDefect[];
  modelVersion: string;
  recipeVersion: string;
  /** ISO-8601 instant the camera inspected the part. */
  inspectedAt: string;
  imageRef?: string;
}

/** Temporal retry policy as plain data (durations as Temporal duration strings such as '200ms', '30s'). */
export interface RetryPreset {
  initialInterval: string;
  backoffCoefficient: number;
  maximumInterval: string;
  maximumAttempts?: number;
}

export interface ActivityPreset {
  startToCloseTimeout: string;
  scheduleToCloseTimeout?: string;
  retry: RetryPreset;
}

/** Named activity option presets, read from temporal.yaml and passed in workflow input so history records them. */
export interface ActivityPresets {
  mesCall: ActivityPreset;
  erpPost: ActivityPreset;
  traceWrite: ActivityPreset;
  notify: ActivityPreset;
}

export type BlockQuantityPolicy = 'defective-parts' | 'whole-lot';

/** The part of a site's configuration the workflows act on (resolved by the dispatcher from temporal.yaml). */
export interface SitePolicy {
  site: string;
  blockQuantity: BlockQuantityPolicy;
  /** SAP notification type, e.g. F3 (internal problem, production). */
  notificationType: string;
  /** How long a held lot may wait for a disposition before escalation, as a Temporal duration. */
  dispositionTimeout: string;
  presets: ActivityPresets;
}

export interface DefectWorkflowInput {
  detection: DefectDetection;
  policy: SitePolicy;
  taskQueue: string;
  /**
   * The station's mode when the part was inspected. `shadow` (parallel monitoring during validation): the workflow
   * records what it would do and does nothing outside Holdfast. Absent means production.
   */
  mode?: StationMode;
}

export type StationMode = 'production' | 'shadow';

export interface LotCaseInput {
  site: string;
  line: string;
  lotId: string;
  sku: string;
  workOrder: string;
  policy: SitePolicy;
  /** Parts that arrived while the previous case of this lot was executing its disposition: they open this one. */
  carriedParts?: PartDefect[];
}

/** A defective part, handed to its lot case by the outbox dispatcher next to the start of its defect workflow. */
export type PartDefect = DefectDetection & { defectWorkflowId: string };

/** What a signal-with-start needs to hand a detection's part to its lot case: the one place this is worked out. */
export function lotCaseEnrolment(
  part: PartDefect,
  policy: SitePolicy,
  taskQueue: string,
): { workflowId: string; taskQueue: string; input: LotCaseInput; part: PartDefect } {
  const input: LotCaseInput = {
    site: part.site,
    line: part.line,
    lotId: part.lotId,
    sku: part.sku,
    workOrder: part.workOrder,
    policy,
  };
  return { workflowId: lotCaseWorkflowId(part.site, part.lotId), taskQueue, input, part };
}

// ---------------------------------------------------------------------------------------------------------------
// Dispositions

export const DISPOSITION_DECISIONS = ['use-as-is', 'rework', 'scrap', 'return-to-vendor'] as const;
export type DispositionDecision = (typeof DISPOSITION_DECISIONS)[number];

export interface DispositionRequest {
  decision: DispositionDecision;
  reason: string;
  /** The deciding user. Authenticated identity and e-signature plug in here (later issue). */
  decidedBy: string;
  /** Placeholder for the 21 CFR Part 11 e-signature manifestation; carried through unchanged today. */
  signature?: { meaning: string; signedAt: string };
  /** Idempotency key of the API request (also used as the Temporal update id). */
  requestId: string;
}

export interface DispositionOutcome {
  /** completed: every follow-up ran; needs-attention: a follow-up failed for good and waits for retryFailedStep. */
  status: 'completed' | 'needs-attention';
  decision: DispositionDecision;
  decidedBy: string;
  reason: string;
  requestId: string;
  /** ERP material documents posted by the disposition follow-ups. */
  materialDocuments: MaterialDocumentRef[];
  lotStatus: string;
  notificationClosed: boolean;
}

// ---------------------------------------------------------------------------------------------------------------
// Lot case state (the lot-level workflow: one MES hold, one ERP quality notification per hold cycle)

/**
 * Stages of a lot case. Legal moves: containing → awaiting-disposition → executing-disposition → closed;
 * any stage → needs-attention when a step fails for good; needs-attention → (retry) the stage it failed in.
 */
export type LotCaseStage =
  'containing' | 'awaiting-disposition' | 'executing-disposition' | 'needs-attention' | 'closed';

export interface MaterialDocumentRef {
  materialDocument: string;
  materialDocumentYear: string;
  movementType: string;
  quantity: number;
}

export interface ContainedPart {
  eventId: string;
  partId: string;
  defectClass: string;
  station: string;
  defectWorkflowId: string;
  notificationItem?: string;
  materialDocument?: MaterialDocumentRef;
}

export interface StepFailure {
  step: string;
  errorType: string;
  message: string;
  at: string;
}

export interface LotCaseState {
  site: string;
  line: string;
  lotId: string;
  sku: string;
  stage: LotCaseStage;
  holdId?: string;
  notification?: string;
  parts: ContainedPart[];
  /** Parts signalled but not yet contained. */
  pendingParts: number;
  lotBlocked: boolean;
  blockedQuantity: number;
  materialDocuments: MaterialDocumentRef[];
  disposition?: DispositionOutcome;
  escalatedAt?: string;
  /**
   * Every step waiting for an operator, in the order they failed: the notification and the block run side by side
   * and can both be refused (a batch the ERP does not know). One retry runs all of them again.
   */
  failures?: StepFailure[];
  openedAt: string;
  closedAt?: string;
}

/** A defect workflow ends once its part-level steps are done and the lot case has the part; containment is the lot case's. */
export type DefectWorkflowResult =
  | {
      eventId: string;
      workOrderQualityStatus: string;
      lotCaseWorkflowId: string;
    }
  | ShadowDefectResult;

/** What a production station would have done for this defect; nothing of it was done. */
export interface ShadowDefectResult {
  eventId: string;
  mode: 'shadow';
  wouldDo: string[];
}

export interface DefectState {
  stage: 'recording' | 'needs-attention' | 'handed-to-lot-case' | 'shadow-recorded';
  lotCaseWorkflowId: string;
  /** While needs-attention: every step waiting for an operator, in the order they failed. */
  failures?: StepFailure[];
}

export const partDefectSignal = defineSignal<[PartDefect]>('partDefect');
export const dispositionUpdate = defineUpdate<DispositionOutcome, [DispositionRequest]>('disposition');
export interface RetryFailedStepResult {
  /** Every step that runs again, in the order they failed. */
  steps: string[];
}
export const retryFailedStepUpdate = defineUpdate<RetryFailedStepResult, [{ requestedBy: string }]>('retryFailedStep');
export const lotCaseStateQuery = defineQuery<LotCaseState>('lotCaseState');
export const defectStateQuery = defineQuery<DefectState>('defectState');

// ---------------------------------------------------------------------------------------------------------------
// Workflow ids: deterministic business keys. They are the first line of de-duplication (a replayed detection
// finds its workflow already there); the permanent record is the inspection table in PostgreSQL.

export function defectWorkflowId(eventId: string): string {
  return `defect-${eventId}`;
}

export function lotCaseWorkflowId(site: string, lotId: string): string {
  return `lot-${site}-${lotId}`;
}
