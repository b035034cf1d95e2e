/**
 * The contract between workflow code and everything that talks to it (API, outbox dispatcher, workers, tests).
 * Workflow sandbox rules apply: no Node built-ins, no zod, only types and cheap constants.
 */
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import { defineSearchAttributeKey, SearchAttributeType, type SearchAttributePair } from '@temporalio/common';

export const DEFAULT_QUALITY_TASK_QUEUE = 'holdfast-quality';

/**
 * Custom search attributes. A lot case holds parts of several stations, work orders and defect classes, so those three
 * are keyword lists (`WorkOrder = '1000100'` matches a case with that work order among its parts). The dev server's
 * SQLite visibility has 10 Keyword and 3 KeywordList slots; these use 5 and 3.
 * Registered at start by infra/local (dev server) or with `temporal operator search-attribute create` elsewhere.
 */
export const SearchAttributes = {
  site: defineSearchAttributeKey('Site', SearchAttributeType.KEYWORD),
  line: defineSearchAttributeKey('Line', SearchAttributeType.KEYWORD),
  station: defineSearchAttributeKey('Station', SearchAttributeType.KEYWORD_LIST),
  lot: defineSearchAttributeKey('Lot', SearchAttributeType.KEYWORD),
  workOrder: defineSearchAttributeKey('WorkOrder', SearchAttributeType.KEYWORD_LIST),
  sku: defineSearchAttributeKey('Sku', SearchAttributeType.KEYWORD),
  defectClass: defineSearchAttributeKey('DefectClass', SearchAttributeType.KEYWORD_LIST),
  dispositionState: defineSearchAttributeKey('DispositionState', SearchAttributeType.KEYWORD),
  detectedAt: defineSearchAttributeKey('DetectedAt', SearchAttributeType.DATETIME),
  // A recall (with Site): three more of the Keyword slots, 8 of 10 in all.
  recallKind: defineSearchAttributeKey('RecallKind', SearchAttributeType.KEYWORD),
  recallState: defineSearchAttributeKey('RecallState', SearchAttributeType.KEYWORD),
  /** The recall's scope as one keyword (recallScopeLabel): `RecallScope = 'supplier-lot:V100/B7'`. */
  recallScope: defineSearchAttributeKey('RecallScope', SearchAttributeType.KEYWORD),
  // A changeover (with Site, Line, WorkOrder, Sku): one more Keyword slot, 9 of 10.
  changeoverState: defineSearchAttributeKey('ChangeoverState', SearchAttributeType.KEYWORD),
  // Supplier quality (receipts and SCARs): the last Keyword slot, 10 of 10.
  supplier: defineSearchAttributeKey('Supplier', SearchAttributeType.KEYWORD),
} as const;

export const ALL_SEARCH_ATTRIBUTES = Object.values(SearchAttributes);

/**
 * The search attributes a workflow starts with, from the detection that opens it: a lot case (which adds the stations,
 * work orders and defect classes of later parts itself) or a shadow defect.
 */
export function detectionSearchAttributes(d: DefectDetection, dispositionState = 'containing'): SearchAttributePair[] {
  return [
    { key: SearchAttributes.site, value: d.site },
    { key: SearchAttributes.line, value: d.line },
    { key: SearchAttributes.station, value: [d.station] },
    { key: SearchAttributes.lot, value: d.lotId },
    { key: SearchAttributes.workOrder, value: [d.workOrder] },
    { key: SearchAttributes.sku, value: d.sku },
    { key: SearchAttributes.defectClass, value: [d.defects[0]?.class ?? 'unknown'] },
    { key: SearchAttributes.dispositionState, value: dispositionState },
    { key: SearchAttributes.detectedAt, value: new Date(d.inspectedAt) },
  ];
}

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

/** One failed inspection, as stored by ingest and handed to its lot's case by the outbox dispatcher. */
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

/**
 * What an outbox row carries: a failed inspection with the site policy and task queue in force when it was stored.
 * The dispatcher hands it to the lot's case (production) or to a shadow workflow.
 */
export interface DetectionDispatch {
  detection: DefectDetection;
  policy: SitePolicy;
  taskQueue: string;
  /**
   * The station's mode when the part was inspected. `shadow` (parallel monitoring during validation): its workflow
   * records what would be done and does nothing outside Holdfast. Absent means production.
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
  carriedParts?: DefectDetection[];
}

/** What a signal-with-start needs to hand a detection's part to its lot case: the one place this is worked out. */
export function lotCaseEnrolment(
  part: DefectDetection,
  policy: SitePolicy,
  taskQueue: string,
): { workflowId: string; taskQueue: string; input: LotCaseInput; part: DefectDetection } {
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
  /** The deciding person: the authenticated principal's id (never a name the request body claims). */
  decidedBy: string;
  /**
   * Electronic signatures (21 CFR Part 11 §11.50, docs/e-signatures.md), sealed by the API after the signer re-entered
   * their credentials: the decider's first; `use-as-is` needs a second, by a quality manager, before the case acts.
   */
  signatures: SignatureManifest[];
  /** Idempotency key of the API request (also used as the Temporal update id). */
  requestId: string;
}

/** What a signer declares by signing (§11.50(a)(3)). */
export const SIGNATURE_MEANINGS = ['approval', 'review', 'responsibility'] as const;
export type SignatureMeaning = (typeof SIGNATURE_MEANINGS)[number];

/**
 * One electronic signature's manifestation (§11.50): the printed name of the signer, when and what the signature
 * means; `contentSha256` binds it to the signed record (§11.70) and `seal` (a JWS by the API's signature key over all
 * the other fields) makes a changed manifestation or a signature moved to another record fail verification.
 */
export interface SignatureManifest {
  signatureId: string;
  signer: { id: string; name: string; roles: string[] };
  meaning: SignatureMeaning;
  /** Server time at signing, ISO 8601 with offset. */
  signedAt: string;
  /** How the signer proved it was them at signing: a re-entered password, or a recent sign-in at the provider. */
  method: 'password' | 'recent-sign-in';
  /** sha256 (hex) of the canonical JSON of the signed content (docs/e-signatures.md#what-is-signed). */
  contentSha256: string;
  seal: string;
}

/** Decisions that release nonconforming material: a second person, a quality manager, must sign too. */
export const TWO_PERSON_DECISIONS: readonly DispositionDecision[] = ['use-as-is'];
export const signaturesRequired = (decision: DispositionDecision): number =>
  TWO_PERSON_DECISIONS.includes(decision) ? 2 : 1;

export interface CountersignRequest {
  signature: SignatureManifest;
  /** Idempotency key of the API request (the Temporal update id). */
  requestId: string;
}

export interface DispositionOutcome {
  /**
   * completed: every follow-up ran; needs-attention: a follow-up failed for good and waits for retryFailedStep;
   * awaiting-second-signature: signed once, the case waits for a quality manager's countersignature before it acts.
   */
  status: 'completed' | 'needs-attention' | 'awaiting-second-signature';
  decision: DispositionDecision;
  decidedBy: string;
  reason: string;
  requestId: string;
  signatures: SignatureManifest[];
  /** ERP material documents posted by the disposition follow-ups. */
  materialDocuments: MaterialDocumentRef[];
  lotStatus: string;
  notificationClosed: boolean;
}

// ---------------------------------------------------------------------------------------------------------------
// Lot case state (the lot-level workflow: one MES hold, one ERP quality notification per hold cycle)

/**
 * Stages of a lot case. Legal moves: containing → awaiting-disposition → (awaiting-second-signature →)
 * executing-disposition → closed;
 * any stage → needs-attention when a step fails for good; needs-attention → (retry) the stage it failed in.
 */
export type LotCaseStage =
  | 'containing'
  | 'awaiting-disposition'
  | 'awaiting-second-signature'
  | 'executing-disposition'
  | 'needs-attention'
  | 'closed';

export interface MaterialDocumentRef {
  materialDocument: string;
  materialDocumentYear: string;
  movementType: string;
  quantity: number;
}

/** A part the lot case has taken: its own documents, and whether its steps are done. */
export interface LotCasePart {
  eventId: string;
  partId: string;
  station: string;
  workOrder: string;
  defectClass: string;
  /** containing: its steps run (or wait for an operator); contained: its item, block and work-order count are done. */
  status: 'containing' | 'contained';
  notificationItem?: string;
  materialDocument?: MaterialDocumentRef;
  /** The work order's quality status after this part was counted. */
  workOrderQuality?: string;
}

export interface StepFailure {
  step: string;
  errorType: string;
  message: string;
  at: string;
  /** The part whose step it is; absent for the lot's own steps (hold, notification, whole-lot block, disposition). */
  eventId?: string;
  partId?: string;
}

export interface LotCaseState {
  site: string;
  line: string;
  lotId: string;
  sku: string;
  stage: LotCaseStage;
  holdId?: string;
  notification?: string;
  /** Every part taken, in the order they arrived, each with its status and documents. */
  parts: LotCasePart[];
  /** Parts signalled but not yet taken (they wait for the batch before them). */
  pendingParts: number;
  lotBlocked: boolean;
  blockedQuantity: number;
  materialDocuments: MaterialDocumentRef[];
  /** The signed decision, from the moment the case accepted it (a use-as-is waits here for its second signature). */
  decision?: DispositionRequest;
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

/** What a production station would have done for this defect; nothing of it was done. */
export interface ShadowDefectResult {
  eventId: string;
  mode: 'shadow';
  wouldDo: string[];
}

export const partDefectSignal = defineSignal<[DefectDetection]>('partDefect');
export const dispositionUpdate = defineUpdate<DispositionOutcome, [DispositionRequest]>('disposition');
export interface RetryFailedStepResult {
  /** Every step that runs again, in the order they failed. */
  steps: string[];
}
export const countersignDispositionUpdate = defineUpdate<DispositionOutcome, [CountersignRequest]>(
  'countersignDisposition',
);
export const retryFailedStepUpdate = defineUpdate<RetryFailedStepResult, [{ requestedBy: string }]>('retryFailedStep');
export const lotCaseStateQuery = defineQuery<LotCaseState>('lotCaseState');

// ---------------------------------------------------------------------------------------------------------------
// Genealogy sync (docs/traceability.md#sync): one workflow per site and system, reading that system's genealogy
// documents in pages after a cursor and applying them to Holdfast's genealogy, for as long as the site runs.

export interface GenealogySyncTotals {
  pages: number;
  documents: number;
  added: number;
  updated: number;
  unchanged: number;
  gapsOpened: number;
  gapsResolved: number;
}

export interface GenealogySyncInput {
  site: string;
  /** The ERP plant whose batches the site's lots are (sites[].erpPlant). */
  erpPlant: string;
  /** Which system states production movements; the other one's feed leaves them out. */
  production: 'erp' | 'mes';
  system: 'erp' | 'mes';
  /** Where the previous run stopped (continue-as-new carries it); absent: from the system's first document. */
  cursor?: string;
  pageSize: number;
  /** How long to wait after a page that left nothing more to read (a Temporal duration). */
  pollInterval: string;
  preset: ActivityPreset;
  /** Totals of earlier runs, carried across continue-as-new so the Web UI shows the whole sync. */
  totals?: GenealogySyncTotals;
}

export interface GenealogySyncStatus {
  site: string;
  system: 'erp' | 'mes';
  cursor?: string;
  totals: GenealogySyncTotals;
  /** When the last page was applied (workflow time). */
  lastPageAt?: string;
  /** true while the last page left documents to read. */
  catchingUp: boolean;
}

export const genealogySyncStatusQuery = defineQuery<GenealogySyncStatus>('genealogySyncStatus');
/** Read now instead of after the poll interval (a plant history was just loaded; an operator wants it current). */
export const syncNowSignal = defineSignal('syncNow');

export function genealogySyncWorkflowId(system: 'erp' | 'mes', site: string): string {
  return `genealogy-sync-${system}-${site}`;
}

// ---------------------------------------------------------------------------------------------------------------
// Workflow ids: deterministic business keys. They are the first line of de-duplication (a re-sent detection
// finds its workflow already there, and the lot case drops event ids it has taken); the permanent record is the
// inspection table in PostgreSQL.

/** A shadow station's defect: the record of what would have been done, one workflow per failed inspection. */
export function shadowWorkflowId(eventId: string): string {
  return `shadow-${eventId}`;
}

export function lotCaseWorkflowId(site: string, lotId: string): string {
  return `lot-${site}-${lotId}`;
}

// Recall (docs/recall.md): one workflow per recall, tracing forward and backward from a scope through the genealogy,
// classifying what it reached, reconciling the scope's quantities and reporting. The findings stay in PostgreSQL
// (holdfast.recall_lot); the workflow carries counts and timings only.

export type RecallKind = 'mock' | 'real';

/** Where a genealogy trace starts (infra/genealogy/trace-queries.ts): one identifier of one kind. */
export type TraceStart =
  | { kind: 'lot-key'; lotKey: string }
  | { kind: 'mes-lot'; site: string; lotId: string }
  | { kind: 'erp-batch'; plant: string; material: string; batch: string }
  | { kind: 'supplier-lot'; supplier: string; supplierBatch: string }
  | { kind: 'part'; site: string; partId: string }
  | { kind: 'serial'; serial: string }
  | { kind: 'work-order'; site: string; order: string }
  | { kind: 'delivery'; delivery: string; item: string }
  /**
   * The lots a model version (name@version) inspected, optionally at one site and between two instants (ISO 8601,
   * both included): where a model recall starts.
   */
  | { kind: 'model-version'; modelVersion: string; site?: string; from?: string; to?: string }
  /** The lots of a material (SKU) produced or received between two instants (ISO 8601, both included). */
  | { kind: 'sku'; material: string; site?: string; from: string; to: string };

/** Where a recall starts: any trace start but a delivery. */
export type RecallScope = Exclude<TraceStart, { kind: 'delivery' }>;

/** The scope as one keyword, its kind then its values in the order they are written: `erp-batch:1010/RM-1/B7`. */
export function recallScopeLabel(scope: RecallScope): string {
  const { kind, ...values } = scope;
  return `${kind}:${Object.values(values).join('/')}`;
}

/** A site's recall targets (sites[].recall in temporal.yaml). */
export interface RecallTargets {
  /** The full trace (trace and classify) within this Temporal duration, e.g. '8m'. */
  traceWithin: string;
  /** Share of the scope's produced quantity accounted for, 0..1. */
  reconciliationAtLeast: number;
}

export interface RecallInput {
  recallId: string;
  site: string;
  kind: RecallKind;
  scope: RecallScope;
  reason: string;
  requestedBy: string;
  targets: RecallTargets;
  preset: ActivityPreset;
  /**
   * A model recall's corrected model (name@version): what the reinspect stage runs on the stored images. Absent: each
   * station's active recipe's model.
   */
  correctedModelVersion?: string;
  /** A real recall's contain stage (recall.contain in temporal.yaml); absent: its defaults. */
  contain?: RecallContainOptions;
}

/** How a real recall's contain stage fans out (docs/recall.md#contain). */
export interface RecallContainOptions {
  batchSize: number;
  parallelBatches: number;
  lotConcurrency: number;
  /** Temporal durations. */
  batchTimeout: string;
  heartbeatTimeout: string;
}

/** The contain stage's progress: lots by outcome so far, batches done. */
export interface RecallContainProgress {
  lots: number;
  batches: number;
  batchesDone: number;
  held: number;
  alreadyHeld: number;
  blocked: number;
  nothingToBlock: number;
  failed: number;
  cancelled: number;
}

export type RecallStageName = 'trace' | 'classify' | 'reinspect' | 'contain' | 'notify' | 'reconcile' | 'report';

export interface RecallStage {
  name: RecallStageName;
  state: 'pending' | 'running' | 'done' | 'skipped' | 'cancelled';
  startedAt?: string;
  finishedAt?: string;
  durationMs?: number;
  /** What the stage found, as counts (the rows are in holdfast.recall_lot). */
  counts?: Record<string, number>;
}

export type RecallState = 'running' | 'completed' | 'failed' | 'cancelled';

export interface RecallStatus {
  recallId: string;
  state: RecallState;
  stages: RecallStage[];
  /** A real recall's containment, once its contain stage has begun. */
  contain?: RecallContainProgress;
}

export const recallStatusQuery = defineQuery<RecallStatus>('recallStatus');

/** A recall's workflow id, from the id the API assigns it. */
export function recallWorkflowId(recallId: string): string {
  return `recall-${recallId}`;
}

// A real recall's customer notifications (docs/recall.md#notify): the notify stage plans one notification per
// customer and ship-to and starts a child workflow for each, which sends it, then waits for the customer's
// acknowledgement and escalates while none comes. The children outlive the recall (they are abandoned at its close).

/** How a site's notifications are sent and chased (sites[].recall.notify in temporal.yaml). */
export interface RecallNotifyPolicy {
  /** The connector the notifications go through (role recall-notice). */
  target: string;
  /** Temporal durations: the first escalation after `ackWithin` without an acknowledgement, then every `escalateEvery`. */
  ackWithin: string;
  escalateEvery: string;
  /** Escalations per notification at most; the child keeps waiting after the last. */
  escalationLimit: number;
  /** Notifications a recall sends at once. */
  concurrency: number;
}

/** One planned notification, as the notify stage hands it to its child. */
export interface PlannedRecallNotification {
  notificationId: string;
  customer: string;
  shipTo: string;
  workflowId: string;
  lots: number;
  quantity: number;
  /** Set when an earlier run of the stage already sent it. */
  sentAt: string | null;
}

export interface RecallNotificationInput {
  recallId: string;
  site: string;
  notificationId: string;
  customer: string;
  shipTo: string;
  policy: RecallNotifyPolicy;
  preset: ActivityPreset;
}

export type RecallNotificationStage = 'sending' | 'awaiting-acknowledgement' | 'escalated' | 'acknowledged';

/** A customer's acknowledgement as a quality engineer records it (POST .../notifications/{id}/acknowledge). */
export interface RecallAcknowledgement {
  /** The Holdfast user who recorded it. */
  recordedBy: string;
  /** Who at the customer acknowledged, and how (phone, e-mail, portal, …). */
  contact: string;
  channel: string;
  note?: string;
  acknowledgedAt: string;
}

export interface RecallNotificationStatus {
  notificationId: string;
  customer: string;
  shipTo: string;
  stage: RecallNotificationStage;
  sentAt?: string;
  reference?: string;
  escalations: { level: number; at: string }[];
  acknowledgement?: RecallAcknowledgement;
}

export const recallAcknowledgedSignal = defineSignal<[RecallAcknowledgement]>('acknowledged');
/** From a notification's child to its recall: this notification went out (the stage waits for every one). */
export const recallNotificationSentSignal =
  defineSignal<[{ notificationId: string; sentAt: string }]>('recallNotificationSent');
export const recallNotificationStatusQuery = defineQuery<RecallNotificationStatus>('recallNotificationStatus');

/**
 * A notification's id within its recall: customer and ship-to, each with every character but letters, digits and
 * `.` written as `_` and its hex code, joined by `-`. The escape is reversible, so two pairs never share an id, and
 * the id fits a URL path segment and a workflow id as it is.
 */
export function recallNotificationId(customer: string, shipTo: string): string {
  const escape = (s: string) =>
    [...s].map((c) => (/[A-Za-z0-9.]/.test(c) ? c : `_${c.codePointAt(0)!.toString(16)}_`)).join('');
  return `${escape(customer)}-${escape(shipTo)}`;
}

/** A notification's workflow id: one per recall, customer and ship-to, so a second start is refused. */
export function recallNotificationWorkflowId(recallId: string, notificationId: string): string {
  return `recall-${recallId}-notify-${notificationId}`;
}

// Recall drills (docs/recall.md#drills): a Temporal Schedule per site starts recallDrillWorkflow, which opens a mock
// recall, runs it as a child, keeps the drill's result in holdfast.recall_drill and escalates a drill that failed, ran
// late or followed a missed one.

/** What a drill recalls: a supplier lot picked for the drill, or a configured scope. */
export type RecallDrillScope = 'random-supplier-lot' | RecallScope;

export interface RecallDrillInput {
  site: string;
  /** The schedule that starts it: the drill's `requestedBy`. */
  scheduleId: string;
  /**
   * When the drill was due (ISO). Absent, the schedule's `TemporalScheduledStartTime`; a drill started by hand uses its
   * start time. The drill's recall is keyed by it, so a drill run again for the same time opens the same recall.
   */
  scheduledAt?: string;
  scope: RecallDrillScope;
  /** The drill is overdue when not finished this long (a Temporal duration) after it started. */
  completeWithin: string;
  /** The previous drill older than this when a drill starts: a missed drill. */
  missedAfter: string;
  preset: ActivityPreset;
}

/** passed: on time and the recall's score passed; overdue: late but passed; failed: the recall failed or scored low. */
export type RecallDrillState = 'running' | 'passed' | 'overdue' | 'failed';
export type RecallDrillEscalation = 'missed' | 'overdue' | 'failed';

export interface RecallDrillResult {
  drillId: string;
  site: string;
  scheduledAt: string;
  recallId: string | null;
  state: RecallDrillState;
  durationMs: number;
  escalations: RecallDrillEscalation[];
}

/** Temporal's own, set on a workflow a schedule starts: when the action was due (before jitter or catch-up). */
export const scheduledStartTimeKey = defineSearchAttributeKey(
  'TemporalScheduledStartTime',
  SearchAttributeType.DATETIME,
);

/** The site's drill schedule: one per site, so creating it again at every worker start finds the same one. */
export function recallDrillScheduleId(site: string): string {
  return `recall-drill-${site}`;
}

/** A drill's id: the site and the time it was due (one drill per site and time). */
export function recallDrillId(site: string, scheduledAt: string): string {
  return `${site}@${scheduledAt}`;
}

// ---------------------------------------------------------------------------------------------------------------
// Scheduling advice (docs/changeover.md#scheduling-advice)

/** The rule a line's lots are held to (temporal.yaml `advice`), the window in milliseconds. */
export interface LineQualityRule {
  windowMs: number;
  thresholdRate: number;
  minParts: number;
  significance: number;
}

export interface LineQualityAdvisorInput {
  site: string;
  line: string;
  rule: LineQualityRule;
  /** How long between evaluations (a Temporal duration string, e.g. `15m`). */
  evaluationInterval: string;
  preset: ActivityPreset;
  /** Carried across continue-as-new. */
  totals?: LineQualityAdvisorTotals;
}

export interface LineQualityAdvisorTotals {
  evaluations: number;
  proposed: number;
  sent: number;
}

export interface LineQualityAdvisorStatus {
  site: string;
  line: string;
  totals: LineQualityAdvisorTotals;
  lastEvaluatedAt?: string;
  /** Lots over the minimum in the last evaluation, and which of them tripped. */
  lastLots?: { lotKey: string; parts: number; defective: number; pValue: number; tripped: boolean }[];
  /** Why the last send of accepted advice failed (an MES without resequencing, a refusal); absent once one worked. */
  sendFailure?: string;
}

/**
 * One rule per line: the id is the line, so the worker's start at every boot and the accept route's wake-up find the
 * same workflow instead of starting a second one.
 */
export function lineQualityAdvisorWorkflowId(site: string, line: string): string {
  return `line-quality-advisor-${site}-${line}`;
}

/** An advice of the line was decided (accepted): send what is accepted now rather than at the next evaluation. */
export const adviceDecidedSignal = defineSignal<[string]>('adviceDecided');
export const lineQualityAdvisorStatusQuery = defineQuery<LineQualityAdvisorStatus>('lineQualityAdvisorStatus');
// Changeover (docs/changeover.md): one workflow per line and work order switches every station of the line to the
// order's recipe, holds the line's release interlock until the first article passed, then releases the order in the
// MES. Failed or cancelled, it puts every station back as it was and leaves the line interlocked.

/** A station of the line as the changeover's input names it (from temporal.yaml when the changeover started). */
export interface ChangeoverStationConfig {
  station: string;
  /** An external vision system (OPC 40100); absent: a Holdfast inference station. */
  vision?: {
    connector: string;
    system: string;
    /** The vision system's recipe for the order's SKU (vision.recipes[sku]); null: none configured. */
    externalRecipeId: string | null;
  };
}

/** How long each step may take and how often it is tried (changeover in temporal.yaml). */
export interface ChangeoverOptions {
  /** Temporal durations. */
  prepareTimeout: string;
  /**
   * How long any one step's call may take, its retries included (the interlock, a read-back, the MES release): past
   * it the changeover fails, reverts and escalates rather than retry for ever.
   */
  stepTimeout: string;
  verifyAttempts: number;
  /** Between two read-backs that did not yet agree. */
  verifyInterval: string;
  /** First-article parts when the recipe names none. */
  firstArticleParts: number;
  firstArticleEscalateAfter: string;
  firstArticleTimeout: string;
  /** How often the first-article activity reads the parts inspected so far. */
  firstArticlePollInterval: string;
}

export type ChangeoverTriggerKind = 'order-event' | 'manual';

export interface ChangeoverInput {
  site: string;
  line: string;
  workOrder: string;
  sku: string;
  trigger: ChangeoverTriggerKind;
  /** The MES event's id, or the API request's Idempotency-Key. */
  requestId: string;
  /** Who asked: the MES (its system name) or the signed-in person. */
  requestedBy: string;
  reason: string;
  /** When the order was due on the line: the MES event's publishedAt, or the request's time. */
  dueAt: string;
  stations: ChangeoverStationConfig[];
  /** Whether the site has a release interlock (sites[].lineControl); false: the changeover runs without one. */
  interlock: boolean;
  options: ChangeoverOptions;
  preset: ActivityPreset;
  /** A manual changeover's sealed signature of its request. */
  signature?: SignatureManifest;
}

/** What a station is to apply, resolved from its recipe (Holdfast) or its configured external recipe (OPC 40100). */
export type ChangeoverStationPlan =
  | {
      kind: 'holdfast';
      station: string;
      recipeVersion: string;
      model: { name: string; version: string };
      /** From the model manifest: what the station's read-back must report. */
      modelSha256: string;
      firstArticleParts?: number;
    }
  | { kind: 'opc40100'; station: string; connector: string; system: string; externalRecipeId: string };

/** What a station applied, as read back from it. */
export interface ChangeoverStationSnapshot {
  /** Holdfast: the order, SKU, recipe and model; OPC 40100: the vision system's state and recipe ids. */
  workOrder?: string;
  sku?: string;
  recipeVersion?: string;
  modelKey?: string;
  modelSha256?: string;
  /** Holdfast: armed (waiting for the order's first frame) or active. */
  assignment?: 'armed' | 'active' | 'none';
  state?: string;
  externalRecipeId?: string | null;
  internalRecipeId?: string | null;
}

export interface ChangeoverStationStatus {
  station: string;
  kind: ChangeoverStationPlan['kind'];
  /** What is asked: `<recipeVersion> (<model>)` or the external recipe id. */
  target?: string;
  before?: ChangeoverStationSnapshot;
  after?: ChangeoverStationSnapshot;
  prepared: boolean;
  verified: boolean;
  reverted: boolean;
  /** Why the last read-back disagreed, or why revert failed. */
  problem?: string;
}

export type ChangeoverStage =
  | 'interlocking'
  | 'resolving'
  | 'preparing'
  | 'verifying'
  | 'first-article'
  | 'releasing'
  | 'released'
  | 'reverting'
  | 'failed'
  | 'cancelled';

export interface ChangeoverTiming {
  step: 'interlock' | 'resolve' | 'prepare' | 'verify' | 'first-article' | 'release' | 'revert';
  startedAt: string;
  finishedAt?: string;
  durationMs?: number;
}

export interface FirstArticleApproval {
  /** The approving quality engineer: the authenticated principal's id. */
  approvedBy: string;
  reason: string;
  /** The approver's sealed signature (docs/e-signatures.md). */
  signature: SignatureManifest;
  /** The API request's Idempotency-Key (the update id). */
  requestId: string;
}

export interface ChangeoverStatus {
  workflowId: string;
  site: string;
  line: string;
  workOrder: string;
  sku: string;
  trigger: ChangeoverTriggerKind;
  stage: ChangeoverStage;
  dueAt: string;
  interlock: 'held' | 'released' | 'not-configured';
  stations: ChangeoverStationStatus[];
  firstArticle?: {
    required: number;
    parts: { partId: string; result: 'pass' | 'fail'; lotId: string; inspectedAt: string }[];
    outcome?: 'passed' | 'failed' | 'approved' | 'timed-out';
    approval?: FirstArticleApproval;
    /** The MES hold of the first lot after a failed first article. */
    holdId?: string;
    escalations: number;
  };
  release?: { releasedAt: string; externalReference: string };
  timings: ChangeoverTiming[];
  /** Why it failed or was cancelled. */
  error?: string;
}

export const changeoverStatusQuery = defineQuery<ChangeoverStatus>('changeoverStatus');
/** A quality engineer's signed approval ends the first-article wait as approved. */
export const approveFirstArticleUpdate = defineUpdate<ChangeoverStatus, [FirstArticleApproval]>('approveFirstArticle');

/** One changeover per line and work order: a replayed `started` event or a second manual request finds it. */
export function changeoverWorkflowId(site: string, line: string, workOrder: string): string {
  return `changeover-${site}-${line}-${workOrder}`;
}

/** The changeover's idempotency keys, derived from its workflow id and step. */
export const changeoverKeys = {
  release: (workflowId: string) => `changeover:${workflowId}:release`,
  firstLotHold: (workflowId: string) => `changeover:${workflowId}:first-article-hold`,
  escalation: (workflowId: string, reason: string) => `changeover:${workflowId}:escalate:${reason}`,
};

// ---------------------------------------------------------------------------------------------------------------
// The ERP feed (docs/analytics.md#the-erp-feed)

/** The site's feed schedule: one per site, so creating it again at every worker start finds the same one. */
export function erpFeedScheduleId(site: string): string {
  return `erp-feed-${site}`;
}

export interface ErpFeedInput {
  site: string;
  /** The ERP calls' options (temporal.yaml activityPresets.erpPost), fixed in the run's history. */
  preset: ActivityPreset;
  /** The instant the run posts up to (less the settle time); default: the run's own start. */
  asOf?: string;
}

export interface ErpFeedIntervalResult {
  from: string;
  to: string;
  confirmations: number;
  costDocument: string | null;
  costTotal: number;
}

export interface ErpFeedResult {
  site: string;
  posted: ErpFeedIntervalResult[];
  /** The interval the run stopped at, when one could not be posted (the next run starts there). */
  stoppedAt?: { from: string; to: string; error: string };
}
// Statistical escalation (docs/analytics.md#statistical-escalation): one evaluator per line reads the line's new
// inspections and evaluates every active rule; each trip starts one escalation workflow, which alerts, holds the line
// or order in the MES by site policy and waits for a signed release.

export type QualityEscalationPolicy = 'alert' | 'hold-line' | 'hold-order';

export interface LineRuleEvaluatorTotals {
  evaluations: number;
  inspections: number;
  trips: number;
}

export interface LineRuleEvaluatorInput {
  site: string;
  line: string;
  /** How long the evaluator waits between passes (a Temporal duration). */
  evaluationInterval: string;
  /** Inspections per transaction, and transactions per pass. */
  batchSize: number;
  maxBatches: number;
  /** Holdfast's own tables (evaluation, escalation records). */
  preset: ActivityPreset;
  /** What each escalation it starts runs with. */
  escalation: Omit<
    QualityEscalationInput,
    'escalationId' | 'site' | 'line' | 'station' | 'ruleId' | 'version' | 'policy' | 'summary'
  >;
  /** Carried across continue-as-new. */
  totals?: LineRuleEvaluatorTotals;
}

export interface LineRuleEvaluatorStatus {
  site: string;
  line: string;
  totals: LineRuleEvaluatorTotals;
  lastEvaluatedAt?: string;
  /** Why the last pass failed; absent once one worked. */
  failure?: string;
}

export interface QualityEscalationInput {
  escalationId: string;
  site: string;
  line: string;
  station: string | null;
  ruleId: string;
  version: number;
  policy: QualityEscalationPolicy;
  summary: string;
  /** Holdfast's tables; the MES hold and release; the alert. */
  presets: { store: ActivityPreset; mes: ActivityPreset; notify: ActivityPreset };
  /** The workflow also reads the decision this often, in case the release route's wake-up was lost. */
  releaseCheckInterval: string;
}

export interface QualityEscalationStatus {
  escalationId: string;
  state: 'open' | 'alerted' | 'held' | 'released';
  holdId?: string;
  /** The step that is failing, while it is retried. */
  failure?: string;
}

/** One evaluator per line: the worker's start at every boot finds the running one instead of starting a second. */
export function lineRuleEvaluatorWorkflowId(site: string, line: string): string {
  return `quality-rule-evaluator-${site}-${line}`;
}

/** One workflow per trip: the id is the escalation's, itself from the rule, its version and the trip's first point. */
export function qualityEscalationWorkflowId(escalationId: string): string {
  return `quality-escalation-${escalationId}`;
}

/** A signed release was stored for the escalation: release the MES hold now. */
export const qualityEscalationReleasedSignal = defineSignal<[string]>('qualityEscalationReleased');
export const lineRuleEvaluatorStatusQuery = defineQuery<LineRuleEvaluatorStatus>('lineRuleEvaluatorStatus');
export const qualityEscalationStatusQuery = defineQuery<QualityEscalationStatus>('qualityEscalationStatus');
// Supplier quality (docs/analytics.md#supplier-quality): incoming receipts, SCARs and the supplier evaluation feed.

export type ReceiptDecision = 'accepted' | 'rejected';

/** One decided receipt, as the receipt relay hands it to its workflow. */
export interface IncomingReceiptInput {
  site: string;
  lotId: string;
  /** The site's ERP plant (sites[].erpPlant): where the received batch is kept. */
  plant: string;
  decision: ReceiptDecision;
  reason: string;
  decidedAt: string;
  erpPost: ActivityPreset;
  traceWrite: ActivityPreset;
  /** The complaint's notification type and first item's defect code (supplierQuality in temporal.yaml). */
  complaint: { notificationType: string; defectCodeGroup: string; defectCode: string };
  /** When a rejection requests a SCAR by itself, and the SCAR's settings. */
  scarThreshold: ScarThreshold;
  scar: ScarSettings;
  notify: ActivityPreset;
  taskQueue: string;
}

export interface ScarThreshold {
  auto: boolean;
  lotRejectionRate: number;
  minReceipts: number;
  window: string;
}

export interface IncomingReceiptResult {
  decision: ReceiptDecision;
  supplier?: string;
  complaintNotification?: string;
  blockDocument?: string;
  purchaseOrderHold?: string;
  /** The SCAR this receipt was counted towards (verification) or requested. */
  scarWorkflowId?: string;
}

/** Dedupes the receipt's workflow: one per received lot and site, whatever triggers it again. */
export const incomingReceiptWorkflowId = (site: string, lotId: string) => `incoming-receipt-${site}-${lotId}`;

/** Dedupes a SCAR's workflow: its row id is unique, and a supplier has at most one open at a time. */
export const scarWorkflowId = (supplier: string, id: string) => `scar-${supplier}-${id}`;

export interface ScarSettings {
  responseDue: string;
  remindEvery: string;
  escalateAfter: string;
  verifyReceipts: number;
  /** The site whose escalation connector announces a late response; absent: not escalated beyond the state. */
  escalationSite?: string;
}

export interface ScarInput {
  scarId: string;
  supplier: string;
  trigger: 'threshold' | 'engineer';
  reason: string;
  requestedBy?: string;
  material?: string;
  /** What the request rests on (receipts, figures), sent to the supplier with it. */
  evidence?: unknown;
  settings: ScarSettings;
  notify: ActivityPreset;
  traceWrite: ActivityPreset;
}

export type ScarStage = 'requested' | 'awaiting-response' | 'response-received' | 'verifying' | 'closed';

/** The supplier's 8D response, as recorded by POST /v1/scars/{id}/response. */
export interface ScarResponse {
  /** Dedupes a re-sent response. */
  responseId: string;
  receivedAt: string;
  recordedBy: string;
  /** The 8D disciplines the supplier filled in: D1 … D8 → text. */
  disciplines: Record<string, string>;
  rootCause: string;
  correctiveAction: string;
  attachments?: string[];
}

/** A quality engineer's signed decision on a response. */
export interface ScarDecision {
  decision: 'accept' | 'reject';
  reason: string;
  decidedBy: string;
  signatureId: string;
  decidedAt: string;
}

/** An incoming receipt of the supplier, decided after the SCAR's response was accepted. */
export interface ScarReceipt {
  site: string;
  lotId: string;
  decision: ReceiptDecision;
  decidedAt: string;
}

export interface ScarState {
  scarId: string;
  supplier: string;
  stage: ScarStage;
  round: number;
  reopened: number;
  responseDue?: string;
  remindersSent: number;
  escalated: boolean;
  responses: ScarResponse[];
  decisions: ScarDecision[];
  /** Receipts counted in the current verification. */
  verification: { needed: number; receipts: ScarReceipt[] };
  notices: string[];
  closedAt?: string;
}

export const scarResponseSignal = defineSignal<[ScarResponse]>('scarResponse');
export const scarDecisionSignal = defineSignal<[ScarDecision]>('scarDecision');
export const scarReceiptSignal = defineSignal<[ScarReceipt]>('scarReceipt');
export const scarStateQuery = defineQuery<ScarState>('scarState');

export interface SupplierEvaluationInput {
  /** The period each run scores, ending at the run's scheduled time. */
  period: string;
  erpSite: string;
  erpPost: ActivityPreset;
  traceWrite: ActivityPreset;
}
