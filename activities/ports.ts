/**
 * Ports: what activities need from the outside world. Connectors (infra/connectors/<kind>) implement them;
 * unit tests pass typed fakes. Every create carries an `idempotencyKey` derived from the business event and step.
 * Unless the caller passes `{ lookupFirst: false }`, an implementation MUST look the key up in the external system
 * before creating, so a retry after a lost response returns the existing document instead of making a second one
 * (docs/reliability.md#lookup-before-create). Callers pass `false` only when the intent ledger says no attempt for
 * the key was ever begun (docs/reliability.md#intent-ledger).
 *
 * Implementations throw `ExternalSystemError` (activities/errors.ts) so activities can classify failures.
 */

import type {
  RecallAcknowledgement,
  RecallDrillEscalation,
  RecallDrillScope,
  RecallDrillState,
  RecallInput,
  RecallScope,
  RecallStage,
  RecallTargets,
} from '../workflows/contracts';

/** How a create on the MES or ERP may proceed. Omitted, the create looks its key up first. */
export interface CreateOptions {
  /**
   * true: look the idempotency key up in the system and return the document that carries it, creating only when
   * none does. false: create at once; the caller knows no earlier attempt for this key can have reached the system.
   */
  lookupFirst: boolean;
}

export interface MesLot {
  lotId: string;
  sku: string;
  workOrder: string;
  quantity: number;
  unit: string;
  status: string;
  /** Vendor of purchased material; absent for lots made in-house. */
  supplier?: string;
  /** Purchase order and item a bought lot was received on (a return to the vendor refers to them). */
  purchaseOrder?: string;
  purchaseOrderItem?: string;
  /** Where the ERP keeps this lot: plant, storage location and batch. */
  erpPlant: string;
  storageLocation: string;
  batch: string;
}

export interface MesHoldRequest {
  idempotencyKey: string;
  lotId: string;
  workOrder: string;
  reason: string;
  defectClass: string;
  line: string;
  station: string;
}

export interface MesQualityEventRequest {
  idempotencyKey: string;
  workOrder: string;
  lotId: string;
  partId: string;
  defectClass: string;
  nonconformingQuantity: number;
}

export interface MesWorkOrderQuality {
  qualityEventId: string;
  workOrder: string;
  qualityStatus: string;
  nonconformingQuantity: number;
  goodQuantity: number;
}

export type MesLotDisposition = 'use-as-is' | 'rework' | 'scrap' | 'return-to-vendor';

export interface MesReleaseRequest {
  idempotencyKey: string;
  holdId: string;
  lotId: string;
  disposition: MesLotDisposition;
  comment: string;
}

export interface MesPort {
  readonly system: string;
  getLot(lotId: string): Promise<MesLot>;
  /** Puts the lot on hold; returns the existing hold when one with this key already exists. */
  holdLot(req: MesHoldRequest, opts?: CreateOptions): Promise<{ holdId: string }>;
  /** Records a nonconforming part against the work order and returns the order's quality status and counts. */
  recordQualityEvent(req: MesQualityEventRequest, opts?: CreateOptions): Promise<MesWorkOrderQuality>;
  /** Closes the hold with the disposition's effect on the lot (released, rework, scrapped, returned). */
  releaseHold(req: MesReleaseRequest): Promise<{ lotStatus: string }>;
  /** Production events (consumed, produced, split, merged, parts) as genealogy facts; absent: not offered. */
  readonly genealogy?: GenealogyFeed;
  /** Job-order events with a cursor (docs/changeover.md#order-events); absent: the MES does not offer them. */
  // The feedback layer's operations below are optional: an MES that lacks one makes the step that needs it fail with
  // a message naming the MES, never silently skip.
  readonly jobOrders?: JobOrderFeed;
  /**
   * Releases the work order for production on its line once its changeover's first article passed. A second call
   * with the same key answers the first release.
   */
  releaseForProduction?(req: MesProductionReleaseRequest, opts?: CreateOptions): Promise<MesProductionRelease>;
  /** Reads the order's production release; undefined when it was not released. */
  getProductionRelease?(workOrder: string): Promise<MesProductionRelease | undefined>;
  /** The line's open orders in sequence, with their customers' criticality. */
  lineOrders?(line: string): Promise<MesLineOrder[]>;
  /** Asks the MES to resequence a line (scheduling advice); returns the existing request when one carries the key. */
  requestResequencing?(req: MesResequencingRequest, opts?: CreateOptions): Promise<MesResequencing>;
  getResequencing?(requestId: string): Promise<MesResequencing>;
  /**
   * Stops a line or a work order until released (statistical escalation, docs/analytics.md#statistical-escalation);
   * returns the existing hold when one carries the key.
   */
  holdProduction?(req: MesProductionHoldRequest, opts?: CreateOptions): Promise<MesProductionHold>;
  getProductionHold?(holdId: string): Promise<MesProductionHold>;
  /** Releases the hold; a repeat with the same key answers the release already made. */
  releaseProductionHold?(req: MesProductionHoldRelease): Promise<MesProductionHold>;
}

/** A line or work-order hold asked of the MES by an escalation. */
export interface MesProductionHoldRequest {
  idempotencyKey: string;
  scope: 'line' | 'work-order';
  line: string;
  /** The order held (scope work-order), or the order running when the line was held. */
  workOrder?: string;
  station?: string;
  reason: string;
}

export interface MesProductionHold {
  holdId: string;
  scope: 'line' | 'work-order';
  line: string;
  workOrder?: string;
  station?: string;
  status: 'ACTIVE' | 'RELEASED';
  reason: string;
  externalReference: string;
  createdAt: string;
  releaseReference?: string;
  releaseComment?: string;
  releasedAt?: string;
}

export interface MesProductionHoldRelease {
  idempotencyKey: string;
  holdId: string;
  comment: string;
}

export interface MesProductionReleaseRequest {
  idempotencyKey: string;
  workOrder: string;
  line: string;
  /** Who or what released it: the changeover's workflow id. */
  releasedBy: string;
  comment: string;
}

export interface MesProductionRelease {
  workOrder: string;
  line: string;
  releasedAt: string;
  externalReference: string;
}

/**
 * Scheduling advice sent to the MES (docs/changeover.md#scheduling-advice): hold what is left of a component lot, or
 * use it only on orders of lower customer criticality.
 */
export interface MesResequencingRequest {
  idempotencyKey: string;
  line: string;
  componentLot: string;
  action: 'hold-remaining' | 'use-on-less-critical';
  /** For use-on-less-critical: the orders the lot may still go to, in the sequence advised. */
  orders?: string[];
  /** The evidence, as text the MES shows its planner. */
  reason: string;
}

export interface MesResequencing extends Omit<MesResequencingRequest, 'idempotencyKey'> {
  requestId: string;
  externalReference: string;
  /** The MES's answer: `ACCEPTED` once its sequence changed, `REJECTED` with its reason. */
  status: 'PENDING' | 'ACCEPTED' | 'REJECTED';
  /** The MES's reason for a REJECTED request. */
  statusReason?: string;
  createdAt: string;
}

export interface ErpDefectItem {
  idempotencyKey: string;
  /** SAP defect code (catalog 9 code group / code); Holdfast maps vision classes onto it. */
  defectCodeGroup: string;
  defectCode: string;
  text: string;
}

export interface ErpQualityNotificationRequest {
  idempotencyKey: string;
  notificationType: string;
  text: string;
  material: string;
  plant: string;
  batch: string;
  supplier?: string;
  /** The purchase order and item a bought lot came on; the notification refers to them when given. */
  purchaseOrder?: string;
  purchaseOrderItem?: string;
  quantity: number;
  unit: string;
  firstItem: ErpDefectItem;
}

export type ErpMovementType = '344' | '343' | '555' | '122';

export interface ErpGoodsMovementRequest {
  idempotencyKey: string;
  movementType: ErpMovementType;
  material: string;
  plant: string;
  storageLocation: string;
  batch: string;
  quantity: number;
  unit: string;
  headerText: string;
  supplier?: string;
  /** Required for a return to vendor (122): the purchase order and item the batch was received on. */
  purchaseOrder?: string;
  purchaseOrderItem?: string;
}

export interface ErpMaterialDocument {
  materialDocument: string;
  materialDocumentYear: string;
}

/** A batch of a material at a plant, as the ERP keys its stock. */
export interface ErpBatchRef {
  material: string;
  plant: string;
  batch: string;
}

export interface ErpStock {
  storageLocation: string;
  quantity: number;
  unit: string;
}

export interface ErpPort {
  readonly system: string;
  /** Creates the notification with its first defect item, or returns the one already made with this key. */
  raiseQualityNotification(
    req: ErpQualityNotificationRequest,
    opts?: CreateOptions,
  ): Promise<{ notification: string; item: string }>;
  /** Adds a defect item to an existing notification, or returns the item already added with this key. */
  addNotificationItem(notification: string, item: ErpDefectItem, opts?: CreateOptions): Promise<{ item: string }>;
  /**
   * Posts the goods movement (block, release, scrap or return to vendor), or returns the document already posted with
   * this key.
   */
  postGoodsMovement(req: ErpGoodsMovementRequest, opts?: CreateOptions): Promise<ErpMaterialDocument>;
  /** Sets the notification to completed; completing a completed notification is not an error. */
  completeNotification(notification: string): Promise<void>;
  /** The batch's unrestricted-use stock, per storage location (none: an empty list). */
  unrestrictedStock(batch: ErpBatchRef): Promise<ErpStock[]>;
  /** Goods receipts, issues to production, transfers and deliveries as genealogy facts; absent: not offered. */
  readonly genealogy?: GenealogyFeed;
  /** Confirmations, standard prices and cost postings for the ERP feed; absent: the ERP takes no feed. */
  readonly feed?: ErpFeedPort;
  /** Quality holds on purchase order items (docs/analytics.md#supplier-quality); absent: not offered. */
  readonly purchasing?: ErpPurchasingPort;
  /** The ERP's supplier evaluation; absent: not offered. */
  readonly supplierEvaluation?: ErpSupplierEvaluationPort;
}

/** A purchase order item, as the ERP keys it. */
export interface ErpPurchaseOrderItemRef {
  purchaseOrder: string;
  purchaseOrderItem: string;
}

export interface ErpPurchaseOrderItemHold extends ErpPurchaseOrderItemRef {
  /** true: the item is blocked, so no further goods can be received or ordered on it. */
  blocked: boolean;
  /** The ERP's own code for the state (SAP: PurchasingDocumentDeletionCode, 'S' = blocked). */
  code: string;
}

export interface ErpPurchasingPort {
  /**
   * Blocks the item for quality reasons. Setting a state, not creating a document: a second call with the item already
   * blocked changes nothing and answers the same.
   */
  holdItem(ref: ErpPurchaseOrderItemRef, reason: string): Promise<ErpPurchaseOrderItemHold>;
  /** The item's hold as the ERP reads it back. */
  itemHold(ref: ErpPurchaseOrderItemRef): Promise<ErpPurchaseOrderItemHold>;
}

/** One supplier's quality score for a material and period, 0 to 100 (docs/analytics.md#supplier-quality). */
export interface ErpSupplierScore {
  idempotencyKey: string;
  supplier: string;
  material: string;
  periodStart: string;
  periodEnd: string;
  qualityScore: number;
  lotRejectionRate: number;
  ppm: number;
}

export interface ErpSupplierEvaluationPort {
  /** Records the score, or returns the reference of the one already recorded under this key. */
  postScore(score: ErpSupplierScore, opts?: CreateOptions): Promise<{ reference: string }>;
}

/** One supplier and material's scorecard over a period, as the ERP's supplier evaluation receives it. */
export interface SupplierScoreFigures {
  supplier: string;
  material: string;
  qualityScore: number;
  lotRejectionRate: number | null;
  ppm: number;
}

/** Scorecard figures per supplier and material over [from, to) (ISO instants). */
export type SupplierScoreSource = (period: { from: string; to: string }) => Promise<SupplierScoreFigures[]>;

/** A supplier corrective action request, or a step of one, as sent to the supplier. */
export interface SupplierNotice {
  /** The same on every attempt of one step: the file's name, the webhook's Idempotency-Key. */
  idempotencyKey: string;
  scarId: string;
  supplier: string;
  kind: 'request' | 'reminder' | 'response-rejected' | 'reopened' | 'closed';
  text: string;
  /** When the 8D response is due (ISO), where one is. */
  responseDue?: string;
  /** The receipts behind the request. */
  evidence?: unknown;
}

export interface SupplierNoticePort {
  deliver(notice: SupplierNotice): Promise<{ reference: string }>;
}

// ---------------------------------------------------------------------------------------------------------------
// The ERP feed (docs/analytics.md#the-erp-feed): what a site's production and its cost of quality come to per interval.

/** One production order's quantities for one interval, confirmed against one operation. */
export interface ErpOrderConfirmationRequest {
  /** From the site, the order and the interval (erpFeedConfirmationKey): one confirmation per order and interval. */
  idempotencyKey: string;
  order: string;
  operation: string;
  material: string;
  yieldQuantity: number;
  scrapQuantity: number;
  reworkQuantity: number;
  unit: string;
  /** YYYY-MM-DD, the interval's end in the site's time zone. */
  postingDate: string;
  /** Free text, e.g. the interval; the connector may add its token to it. */
  text: string;
}

export interface ErpOrderConfirmation {
  confirmationGroup: string;
  confirmationCount: string;
}

/** A material's standard price per one base unit, in `currency`. */
export interface ErpStandardPrice {
  material: string;
  plant: string;
  pricePerUnit: number;
  currency: string;
}

/** An interval's cost of quality as one balanced journal entry: each line debited, the total credited to `offset`. */
export interface ErpCostPostingRequest {
  idempotencyKey: string;
  companyCode: string;
  /** YYYY-MM-DD. */
  postingDate: string;
  text: string;
  currency: string;
  costCentre: string;
  offsetAccount: string;
  lines: { account: string; amount: number; text: string }[];
}

/** An interval of the feed, [from, to), as ISO-8601 instants. */
export interface FeedInterval {
  from: string;
  to: string;
}

/** A site's feed settings (temporal.yaml sites[].erpFeed), with each line's confirming station resolved. */
export interface ErpFeedSettings {
  site: string;
  plant: string;
  timezone: string;
  operation: string;
  unit: string;
  companyCode: string;
  costCentre: string;
  currency: string;
  accounts: { scrap: string; rework: string; inspection: string; externalFailure: string; offset: string };
  rates: { reworkPerHour: number; reworkMinutesPerPart: number; inspectionPerPart: number };
  /** line → station whose results are confirmed. */
  confirmingStations: Record<string, string>;
}

/** One work order's counts at its line's confirming station in an interval, as fixed for posting. */
export interface ConfirmationFigures {
  workOrder: string;
  line: string;
  station: string;
  sku: string;
  yieldQuantity: number;
  scrapQuantity: number;
  reworkQuantity: number;
  idempotencyKey: string;
  confirmationGroup: string | null;
  confirmationCount: string | null;
}

export type CostCategory = 'scrap' | 'rework' | 'inspection' | 'external-failure';

export interface CostRow {
  category: CostCategory;
  line: string | null;
  sku: string | null;
  workOrder: string | null;
  supplierLot: string | null;
  recallId: string | null;
  quantity: number;
  unitCost: number;
  amount: number;
  glAccount: string;
}

/** Inspections per line, station, SKU, order and supplier lot; a part from n supplier lots weighs 1/n in each. */
export interface InspectionCounts {
  line: string;
  station: string;
  sku: string;
  workOrder: string;
  supplierLot: string | null;
  inspections: number;
  passed: number;
  reworked: number;
  scrapped: number;
}

/** What an interval's figures are made from, read before they are fixed. */
export interface PendingFigures {
  counts: InspectionCounts[];
  /** Completed real recalls not yet charged: shipped quantity per material. */
  recalls: { recallId: string; material: string; shipped: number }[];
}

/** Holdfast's records of the feed (infra/erp-feed). */
export interface ErpFeedStore {
  /** The site's settings; throws ConfigError when the site has no feed. */
  settings(site: string): ErpFeedSettings;
  /** Intervals due at `asOf` and not yet posted, oldest first. */
  dueIntervals(site: string, asOf: number, limit?: number): Promise<FeedInterval[]>;
  pendingFigures(site: string, interval: FeedInterval): Promise<PendingFigures>;
  /** Whether the interval's figures are fixed already (by this run's earlier attempt or another run). */
  isFixed(site: string, interval: FeedInterval): Promise<boolean>;
  /** Stores the interval's figures unless a run already did (its figures then stand). */
  fixFigures(input: {
    site: string;
    interval: FeedInterval;
    confirmations: Omit<ConfirmationFigures, 'confirmationGroup' | 'confirmationCount'>[];
    costs: CostRow[];
  }): Promise<void>;
  confirmations(site: string, interval: FeedInterval): Promise<ConfirmationFigures[]>;
  recordConfirmation(
    site: string,
    interval: FeedInterval,
    workOrder: string,
    posted: ErpOrderConfirmation,
  ): Promise<void>;
  costByAccount(
    site: string,
    interval: FeedInterval,
  ): Promise<{ accounts: { account: string; category: string; amount: number }[]; document: string | null }>;
  recordPosted(site: string, interval: FeedInterval, costDocument: string | null): Promise<void>;
  /**
   * Runs `work` while no other run posts the same interval: two runs that overlap would otherwise both find no
   * document for a key whose create is still in flight, and both create.
   */
  exclusive<T>(site: string, interval: FeedInterval, work: () => Promise<T>): Promise<T>;
}

export interface ErpFeedPort {
  /** Posts the confirmation, or returns the one already posted with this key. */
  postOrderConfirmation(req: ErpOrderConfirmationRequest, opts?: CreateOptions): Promise<ErpOrderConfirmation>;
  /** The material's standard price in the plant; undefined when the ERP values it otherwise or not at all. */
  standardPrice(material: string, plant: string): Promise<ErpStandardPrice | undefined>;
  /** Posts the journal entry, or returns the one already posted with this key. */
  postCostOfQuality(req: ErpCostPostingRequest, opts?: CreateOptions): Promise<{ document: string }>;
}

// ---------------------------------------------------------------------------------------------------------------
// Genealogy (docs/traceability.md): what the ERP and the MES state about lots and the material moved between them,
// in Holdfast's terms. Each connector maps its vendor's documents to these; the store keys them by those documents.

/** A fact's origin system. */
export type GenealogySourceSystem = 'erp' | 'mes' | 'holdfast';

/** ISA-95 MaterialLot, as one system states it. */
export interface LotInput {
  /** From lotKey() (infra/genealogy/genealogy-keys.ts). */
  lotKey: string;
  /** The Holdfast site the lot belongs to (the site authorizeSite checks), e.g. `PLANT1`. */
  site: string;
  material: string;
  quantity?: number;
  unit?: string;
  origin: 'purchased' | 'produced';
  mes?: { site: string; lotId: string };
  erp?: { plant: string; material: string; batch: string };
  purchased?: {
    supplier: string;
    supplierBatch?: string;
    purchaseOrder?: string;
    purchaseOrderItem?: string;
    /** The goods receipt's material document key (erpMovementKey). */
    goodsReceipt?: string;
  };
  produced?: { workOrder: string; line?: string };
  sourceSystem: GenealogySourceSystem;
  /** The document that states the lot (a goods receipt, a MES lot event). */
  document: string;
  occurredAt?: string;
}

export type EdgeKind = 'consumed' | 'produced' | 'split' | 'merged' | 'reworked' | 'repacked' | 'delivered';

/**
 * ISA-95 MaterialActual: material moved between two nodes (lotNode, workOrderNode, deliveryNode). `consumed` is
 * lot → work order, `produced` work order → lot, `split` / `merged` / `reworked` / `repacked` lot → lot,
 * `delivered` lot → delivery (recorded with the delivery).
 */
export interface MovementInput {
  /** The business document that states it (erpMovementKey, mesEventKey): the same document is the same edge. */
  edgeKey: string;
  kind: EdgeKind;
  from: string;
  to: string;
  quantity?: number;
  unit?: string;
  occurredAt: string;
  /** The Holdfast site where it happened. */
  site: string;
  sourceSystem: GenealogySourceSystem;
  document: string;
}

/** An outbound delivery item: which lot left for which customer. */
export interface DeliveryInput {
  delivery: string;
  item: string;
  site: string;
  customer: string;
  shipTo: string;
  material?: string;
  lotKey: string;
  quantity?: number;
  unit?: string;
  shippedAt: string;
  sourceSystem: GenealogySourceSystem;
}

/** A part the MES reports produced. */
export interface PartInput {
  site: string;
  partId: string;
  serial?: string;
  lotKey: string;
  workOrder?: string;
  line?: string;
  producedAt?: string;
  sourceSystem: GenealogySourceSystem;
}

/** Facts read from one system, applied together. */
export interface GenealogyFacts {
  lots: LotInput[];
  movements: MovementInput[];
  deliveries: DeliveryInput[];
  parts: PartInput[];
}

/** One page of a system's genealogy documents after a cursor, in the order the system recorded them. */
export interface GenealogyPage extends GenealogyFacts {
  /** Where the next page starts; the same as the one asked for when nothing new was found. */
  cursor: string;
  /** Documents read (a document can state several facts, or none Holdfast keeps). */
  documents: number;
  /** More documents wait after this page: read again at once rather than after the poll interval. */
  more: boolean;
}

/** Which site's facts to read, and the ERP plant whose batches its lots are (the MES's lot ids are those batches). */
export interface GenealogyScope {
  site: string;
  erpPlant: string;
  /**
   * Which system states production (consumed, produced, split, merged): both record it (the MES as it happens, the
   * ERP as postings), and one movement must not be counted twice. The other system's feed leaves it out.
   */
  production: 'erp' | 'mes';
}

/**
 * A system that states genealogy facts (the ERP's goods movements and deliveries, the MES's production events),
 * read in pages after an opaque cursor of its own. `undefined` starts from the beginning.
 */
export interface GenealogyFeed {
  readGenealogy(scope: GenealogyScope, after: string | undefined, limit: number): Promise<GenealogyPage>;
}

export interface GenealogyApplied {
  added: number;
  updated: number;
  unchanged: number;
  gapsOpened: number;
  gapsResolved: number;
}

/** Holdfast's genealogy (infra/genealogy): applies facts idempotently, keyed by the documents that state them. */
export interface GenealogyRecorder {
  record(source: string, facts: GenealogyFacts): Promise<GenealogyApplied>;
  /** Resolves the gaps another writer explained meanwhile (a part's inspection arrived through ingest). */
  reconcile(source: string): Promise<GenealogyApplied>;
}

/** Where escalations go: a webhook, a log line, or (later) e-mail / MES andon. */
export interface EscalationPort {
  escalate(message: EscalationMessage): Promise<void>;
}

export interface EscalationMessage {
  idempotencyKey: string;
  site: string;
  line: string;
  lotId: string;
  lotCaseWorkflowId: string;
  waitingSince: string;
  text: string;
  /** Set when a recall drill escalates (docs/recall.md#drills); `lotId` is then its recall's id, if it opened one. */
  recallDrill?: { drillId: string; workflowId: string; reason: RecallDrillEscalation };
  /**
   * Set when a statistical rule tripped (docs/analytics.md#statistical-escalation): `lotId` is then the lot of the
   * part that tripped it, and `lotCaseWorkflowId` the escalation's workflow.
   */
  qualityEscalation?: {
    escalationId: string;
    ruleId: string;
    version: number;
    station: string | null;
    policy: 'alert' | 'hold-line' | 'hold-order';
    summary: string;
  };
}

/** One create on the MES or ERP that an activity is about to make. */
export interface CreateIntent {
  /** The create's idempotency key (business event and step): unique among all creates. */
  key: string;
  /** What the create is, e.g. `mes-hold`, `erp-goods-movement`. */
  step: string;
  /** The port's `system`: where the document is made. */
  system: string;
  /** The request as the port receives it; the ledger keeps a hash of it, not the request. */
  request: unknown;
}

/** What the ledger knew of a key when its intent was recorded. */
export interface IntentRecord {
  /** true: this call recorded the intent, so no attempt for the key has ever reached the system. */
  fresh: boolean;
  /** The document an earlier attempt created, once recorded by `complete`. */
  outcome?: unknown;
}

/**
 * The intent ledger: Holdfast's own record, in PostgreSQL, of every create on the MES or ERP, written before the call
 * (docs/reliability.md#intent-ledger). It replaces the look-up before every create by a look-up only when an earlier
 * attempt may have reached the system.
 */
export interface IntentLedger {
  /**
   * Records the intent unless one for its key exists. Rejects with `IntentConflictError` (activities/errors.ts) when
   * the key's recorded request differs from this one: two different creates under one key are a bug in the caller.
   */
  begin(intent: CreateIntent): Promise<IntentRecord>;
  /** Records the document the create made (or the look-up found) on the key's intent. */
  complete(key: string, outcome: unknown): Promise<void>;
}

// Recall (docs/recall.md): the stages' work over Holdfast's genealogy; each writes its rows and returns counts.

export interface RecallTraceCounts {
  scopeLots: number;
  forwardLots: number;
  backwardLots: number;
  deliveries: number;
  customers: number;
  gaps: number;
  cycles: number;
  truncated: number;
}

export interface RecallReconciliation {
  /** Sum of the quantities of the scope's lots and every lot made from them (those with a known quantity). */
  produced: number;
  accounted: number;
  unreconciledLots: number;
}

export interface RecallStore {
  trace(recallId: string, scope: RecallScope): Promise<RecallTraceCounts>;
  classify(recallId: string): Promise<Record<string, number>>;
  reconcile(recallId: string): Promise<RecallReconciliation>;
  report(
    recallId: string,
    state: 'completed' | 'failed' | 'cancelled',
    stages: RecallStage[],
    targets: RecallTargets,
  ): Promise<void>;
}

// A real recall's containment (docs/recall.md#contain): each affected lot's row, kept before and after each effect.

/** One affected lot as the contain stage works on it, with what is recorded of it so far. */
export interface ContainmentLot {
  lotKey: string;
  mes?: { site: string; lotId: string };
  erp?: ErpBatchRef;
  /** The lot's work order and line, as the genealogy knows them (the MES hold names them). */
  workOrder?: string;
  line?: string;
  state: ContainmentState;
  mesState: 'pending' | 'holding' | 'held' | 'lot-case' | 'mes-hold' | 'no-mes-lot' | 'lot-closed' | 'failed';
  holdId?: string;
  erpState: 'pending' | 'blocking' | 'blocked' | 'nothing-to-block' | 'no-erp-batch' | 'failed';
  erpBlocks: ContainmentBlock[];
  /** An open lot case of the lot that holds it in the MES: its hold. */
  openCaseHold?: string;
}

export type ContainmentState = 'pending' | 'held' | 'already-held' | 'nothing-to-block' | 'failed' | 'cancelled';

export interface ContainmentBlock {
  storageLocation: string;
  quantity: number;
  unit: string;
  materialDocument?: string;
  materialDocumentYear?: string;
}

/** What is recorded of a lot after a step: only the fields given change. */
export type ContainmentUpdate = Partial<
  Pick<ContainmentLot, 'state' | 'mesState' | 'holdId' | 'erpState' | 'erpBlocks'> & { error: string }
>;

/** Lots by outcome, for the stage's progress and counts. */
export interface ContainmentCounts {
  lots: number;
  pending: number;
  held: number;
  alreadyHeld: number;
  nothingToBlock: number;
  failed: number;
  cancelled: number;
  /** Lots whose ERP stock Holdfast blocked. */
  blocked: number;
}

export interface RecallContainmentStore {
  /**
   * Chooses the affected lots among those the recall reached (docs/recall.md#contain) and numbers them into batches;
   * a second call returns what the first chose.
   */
  plan(recallId: string, batchSize: number): Promise<{ lots: number; batches: number }>;
  /** A batch's lots with their records and any open lot case's hold. */
  batch(recallId: string, batch: number): Promise<ContainmentLot[]>;
  update(recallId: string, lotKey: string, update: ContainmentUpdate): Promise<void>;
  /** Whether the recall was cancelled: no new effect once it is. */
  cancelRequested(recallId: string): Promise<boolean>;
  /** Records the cancel (the first one counts): no new effect after it. */
  cancel(recallId: string): Promise<void>;
  /** Once the stage has stopped after a cancel: the lots it never reached become `cancelled`. */
  abandon(recallId: string): Promise<void>;
  counts(recallId: string, batch?: number): Promise<ContainmentCounts>;
}

// Model recall (docs/recall.md#model-recall): the reinspect stage, over the recalled model's stored images.

/** What re-inspecting one part found: the corrected model fails it, still passes it, or its image is not there. */
export type ReinspectionOutcome = 'now-fails' | 'still-passes' | 'no-image';

export interface ReinspectionBatch {
  counts: Record<ReinspectionOutcome, number>;
  /** Parts may remain: ask for another batch. */
  more: boolean;
}

export interface RecallReinspector {
  /**
   * Re-inspects up to `limit` of the parts the recalled model passed in the scope that have no outcome yet, and keeps
   * each outcome; `progress` hears how many of the batch are done. A retried batch re-inspects only what is left.
   */
  reinspectBatch(
    input: {
      recallId: string;
      scope: Extract<RecallScope, { kind: 'model-version' }>;
      correctedModelVersion?: string;
      limit: number;
    },
    progress: (done: number) => void,
  ): Promise<ReinspectionBatch>;
  /** Marks every lot of the recall for the contain stage (needs_containment, contain_reason); counts per reason. */
  conclude(recallId: string): Promise<Record<string, number>>;
}

// Recall notifications (docs/recall.md#notify): what a customer is told, through a connector of role recall-notice.

export interface RecallNoticeLot {
  lotKey: string;
  material: string | null;
  unit: string | null;
  /** The lot's quantity delivered to this ship-to: the sum of its delivery items. */
  quantity: number;
  deliveries: { delivery: string; item: string; quantity: number }[];
}

/** Whom a notification is for and what reached them: what the notice and its row both hold. */
interface RecallNotificationSubject {
  recallId: string;
  site: string;
  reason: string;
  notificationId: string;
  customer: string;
  shipTo: string;
  lots: RecallNoticeLot[];
}

/** One notification, as every target carries it (the webhook's body, the file, the e-mail's JSON attachment). */
export interface RecallNotice extends RecallNotificationSubject {
  /** The same for every attempt at this notification: recall, customer and ship-to. */
  idempotencyKey: string;
  /** The delivery documents, `delivery/item`, sorted. */
  deliveries: string[];
  /** Per unit, the sum of the lots' quantities. */
  quantities: { unit: string | null; quantity: number }[];
}

export interface RecallNoticeReceipt {
  /** What identifies the delivered notification at the target: a Message-ID, a file name, the webhook's answer. */
  reference: string;
}

/** A target for recall notifications: a webhook, an SMTP relay, a directory. */
export interface RecallNoticePort {
  /**
   * Delivers the notice. With `lookupFirst` (an earlier attempt may have delivered it) a target that can tell finds
   * the earlier delivery instead of repeating it; one that cannot repeats it under the same key (the webhook's
   * `Idempotency-Key`, the e-mail's Message-ID), for the receiver to drop.
   */
  deliver(notice: RecallNotice, opts: CreateOptions): Promise<RecallNoticeReceipt>;
}

/** One planned notification as holdfast.recall_notification keeps it. */
export interface RecallNotificationRecord extends RecallNotificationSubject {
  workflowId: string;
  quantity: number;
  sentAt: string | null;
}

/** A real recall's notifications in Holdfast's tables (infra/recall/recall-notification-store.ts). */
export interface RecallNotificationStore {
  /**
   * Groups the deliveries of the recall's scope and forward lots by customer and ship-to into one notification each
   * (kept as first planned: planning again adds nothing) and returns them all.
   */
  plan(recallId: string): Promise<RecallNotificationRecord[]>;
  find(recallId: string, notificationId: string): Promise<RecallNotificationRecord | undefined>;
  /** Records the send once; returns when it was first recorded. */
  markSent(recallId: string, notificationId: string, target: string, reference: string): Promise<string>;
  /** Records an escalation once per level. */
  recordEscalation(recallId: string, notificationId: string, level: number, at: string): Promise<void>;
  /** Records the first acknowledgement; true when this call recorded it. */
  recordAcknowledgement(recallId: string, notificationId: string, ack: RecallAcknowledgement): Promise<boolean>;
}

// Recall drills (docs/recall.md#drills): the drill's row, its scope and its mock recall, opened as the API opens one.

export interface RecallDrillStart {
  drillId: string;
  site: string;
  scheduleId: string;
  workflowId: string;
  scheduledAt: string;
  completeWithinMs: number;
}

export interface RecallDrillStore {
  /** Opens the drill's row (again: nothing changes); the time the site's previous drill was due, if any. */
  begin(drill: RecallDrillStart): Promise<{ previousScheduledAt: string | null }>;
  /** The configured scope, or a supplier lot with genealogy at the site, the same one for the same drill. */
  pickScope(drillId: string, site: string, scope: RecallDrillScope): Promise<RecallScope>;
  /** Opens the drill's mock recall (the same one for the same drill) and returns its workflow's input. */
  openRecall(drill: { drillId: string; scope: RecallScope }): Promise<RecallInput>;
  /** The drill's result from its recall's outcome and score (or the error that kept it from running one). */
  finish(
    drillId: string,
    outcome: { overdue: boolean; durationMs: number; error?: string },
  ): Promise<{ state: RecallDrillState }>;
  /** Whether this reason was escalated for this drill already. */
  escalated(drillId: string, reason: RecallDrillEscalation): Promise<boolean>;
  recordEscalation(
    drillId: string,
    escalation: { reason: RecallDrillEscalation; target: string; text: string },
  ): Promise<void>;
}

// Feedback layer (docs/changeover.md): production-order events from the MES, changeovers of every station of a line,
// the line's release interlock, and scheduling advice back to the MES.

/** A station of a line, as the changeover addresses it. */
export interface StationRef {
  site: string;
  line: string;
  station: string;
}

/**
 * What happened to a production order (an ISA-95 job order) in the MES: `released` for production planning,
 * `started` on a line (Holdfast's changeover trigger), `changed` (quantity, sequence or criticality), `completed`.
 */
export type JobOrderEventType = 'released' | 'started' | 'changed' | 'completed';

/** One job-order event, as Holdfast's intake normalises every MES's shape (docs/changeover.md#order-events). */
export interface JobOrderEvent {
  /** The MES's id of the event: the same event twice (MQTT redelivery, the REST fallback) is applied once. */
  eventId: string;
  eventType: JobOrderEventType;
  /**
   * The order's revision in the MES, increasing with each change. An event whose revision is not above the last one
   * applied for its order is recorded and changes nothing (a replayed or out-of-order event).
   */
  revision: number;
  publishedAt: string;
  site: string;
  line: string;
  workOrder: string;
  sku: string;
  plannedQuantity?: number;
  /** The order's customer criticality in the MES (higher: more critical); used by scheduling advice. */
  customerCriticality?: number;
}

export interface JobOrderEventPage {
  items: JobOrderEvent[];
  /** Pass as `after` for the next page; equal to `after` when nothing new arrived. */
  nextCursor: string | null;
}

/** The MES's job-order events with a cursor: the fallback for what the MQTT stream missed. */
export interface JobOrderFeed {
  read(after: string | undefined, limit: number): Promise<JobOrderEventPage>;
}

/** An order on a line, as the MES sequences it (for scheduling advice). */
export interface MesLineOrder {
  workOrder: string;
  sku: string;
  line: string;
  status: string;
  /** Position in the line's sequence, 1 first. */
  sequence: number;
  customerCriticality: number;
  plannedQuantity: number;
}

/** Starts the changeover an order event asks for; the intake calls it for every applied `started` event. */
export interface ChangeoverTrigger {
  /** 'already-running': the changeover of this line and order exists (a replayed event starts nothing). */
  orderStarted(event: JobOrderEvent): Promise<'started' | 'already-running'>;
}

/** What a Holdfast inference station is to apply for an order (the changeover's `prepare`). */
export interface StationRecipeTarget {
  changeoverId: string;
  workOrder: string;
  sku: string;
  recipeVersion: string;
  model: { name: string; version: string };
}

/** What a Holdfast station reports it applies, read back from the station itself (the inference worker). */
export interface StationAssignmentReport {
  workOrder: string;
  sku: string;
  recipeVersion: string;
  /** `<name>@<version>` of the model loaded. */
  modelKey: string;
  /** sha256 of the ONNX file the worker loaded. */
  modelSha256: string;
}

export interface StationReadBack {
  /** Loaded and waiting for the boundary: applied from the first frame of `workOrder` on. */
  armed?: StationAssignmentReport & { changeoverId: string; preparedAt: string };
  /** Applied now; absent before the station's first changeover (frames then use their SKU's active recipe). */
  active?: StationAssignmentReport & { activatedAt: string; firstFrameId?: string };
}

/** Holdfast's own inference stations (infra/vision/station-assignment): arm, read back, revert. */
export interface StationControlPort {
  /** Arms the station: the inference worker loads the model now and switches at the order's first frame. */
  arm(station: StationRef, target: StationRecipeTarget): Promise<void>;
  readBack(station: StationRef): Promise<StationReadBack>;
  /** Puts back what the station applied before `changeoverId` (compensation); nothing when it never changed. */
  revert(station: StationRef, changeoverId: string): Promise<void>;
}

/** The first parts of an order inspected on a line's Holdfast stations (the changeover's first article). */
export interface FirstArticlePart {
  partId: string;
  /** fail when any station failed it. */
  result: 'pass' | 'fail';
  eventIds: string[];
  lotId: string;
  inspectedAt: string;
}

export interface FirstArticleReader {
  /** Up to `parts` distinct parts of the order, first inspected first, each with every station's result so far. */
  /**
   * Only parts Holdfast received at or after `since` count (the changeover's start): a changeover started again after
   * a failed first article is judged on the parts made since, not on the part that failed the first one.
   */
  firstParts(
    line: { site: string; line: string },
    workOrder: string,
    parts: number,
    since?: string,
  ): Promise<FirstArticlePart[]>;
}

/** An external vision system's recipe state, read over OPC 40100 (docs/vendor-interfaces.md#opc-40100). */
export interface VisionSystemState {
  /** The VisionStateMachine's state, e.g. `Operational`, and the automatic mode's, e.g. `Ready`. */
  state: string;
  substate?: string;
  externalRecipeId: string | null;
  internalRecipeId: string | null;
}

/** An OPC UA for Machine Vision (OPC 40100) server hosting one or more vision systems, each named by `system`. */
export interface VisionSystemPort {
  readonly endpoint: string;
  /** RecipeManagement.PrepareRecipe, then the state machine brought to Ready; the vision system's internal id. */
  prepareRecipe(system: string, externalRecipeId: string): Promise<{ internalRecipeId: string }>;
  unprepareRecipe(system: string, internalRecipeId: string): Promise<void>;
  readState(system: string): Promise<VisionSystemState>;
}

/** A line's release interlock on its PLC: while not released, the line may not run product. */
export interface LineInterlockPort {
  setRelease(line: { site: string; line: string }, state: { released: boolean; workOrder: string }): Promise<void>;
  readRelease(line: { site: string; line: string }): Promise<{ released: boolean; workOrder: string }>;
}
