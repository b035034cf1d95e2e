import type {
  GenealogyFacts,
  GenealogyScope,
  GenealogyFeed,
  GenealogyPage,
  GenealogyRecorder,
  CreateIntent,
  CreateOptions,
  ErpDefectItem,
  ErpGoodsMovementRequest,
  ErpBatchRef,
  ErpPort,
  ErpQualityNotificationRequest,
  ErpStock,
  EscalationMessage,
  EscalationPort,
  IntentLedger,
  IntentRecord,
  JobOrderEvent,
  JobOrderEventPage,
  JobOrderEventType,
  JobOrderFeed,
  MesHoldRequest,
  MesLineOrder,
  MesLot,
  MesPort,
  MesProductionRelease,
  MesProductionReleaseRequest,
  MesResequencing,
  MesResequencingRequest,
  MesQualityEventRequest,
  MesReleaseRequest,
  MesWorkOrderQuality,
  ContainmentCounts,
  ContainmentLot,
  RecallContainmentStore,
  RecallNotice,
  RecallNoticePort,
} from '../../activities/ports';
import { ExternalSystemError, IntentConflictError } from '../../activities/errors';

/**
 * In-memory MES and ERP typed against the real ports, for workflow tests that need no vendor simulator.
 * Like the connectors, they honour idempotency keys (lookup before create) and record every call, and the options
 * of every create by its key (`createOptions`), so a test sees whether the caller allowed the look-up to be skipped.
 */
type FailOnce = Map<string, ExternalSystemError>;

function takeFailure(failures: FailOnce, op: string): void {
  const err = failures.get(op);
  if (err) {
    failures.delete(op);
    throw err;
  }
}

export class FakeMes implements MesPort {
  readonly system = 'fake-mes';
  readonly lots = new Map<string, MesLot>();
  readonly holds = new Map<string, MesHoldRequest & { holdId: string; status: string; disposition?: string }>();
  readonly qualityEvents = new Map<string, MesQualityEventRequest & { id: string }>();
  readonly calls: string[] = [];
  readonly failures: FailOnce = new Map();
  readonly createOptions = new Map<string, CreateOptions | undefined>();

  addLot(lot: Partial<MesLot> & { lotId: string }): MesLot {
    const full: MesLot = {
      sku: 'BRKT-200',
      workOrder: '1000100',
      quantity: 100,
      unit: 'PC',
      status: 'RELEASED',
      erpPlant: '1010',
      storageLocation: '0001',
      batch: `B-${lot.lotId}`,
      ...lot,
    };
    this.lots.set(lot.lotId, full);
    return full;
  }

  async getLot(lotId: string): Promise<MesLot> {
    this.calls.push(`getLot ${lotId}`);
    takeFailure(this.failures, 'getLot');
    const lot = this.lots.get(lotId);
    if (!lot) throw new ExternalSystemError(this.system, 'not-found', `lot ${lotId} not found`, 404);
    return lot;
  }

  async holdLot(req: MesHoldRequest, opts?: CreateOptions): Promise<{ holdId: string }> {
    this.calls.push(`holdLot ${req.lotId}`);
    this.createOptions.set(req.idempotencyKey, opts);
    takeFailure(this.failures, 'holdLot');
    const existing = [...this.holds.values()].find((h) => h.idempotencyKey === req.idempotencyKey);
    if (existing) return { holdId: existing.holdId };
    const holdId = `H-${this.holds.size + 1}`;
    this.holds.set(holdId, { ...req, holdId, status: 'ACTIVE' });
    this.lots.get(req.lotId)!.status = 'ON_HOLD';
    return { holdId };
  }

  async recordQualityEvent(req: MesQualityEventRequest, opts?: CreateOptions): Promise<MesWorkOrderQuality> {
    this.calls.push(`recordQualityEvent ${req.partId}`);
    this.createOptions.set(req.idempotencyKey, opts);
    takeFailure(this.failures, 'recordQualityEvent');
    if (!this.qualityEvents.has(req.idempotencyKey)) {
      this.qualityEvents.set(req.idempotencyKey, { ...req, id: `QE-${this.qualityEvents.size + 1}` });
    }
    const events = [...this.qualityEvents.values()].filter((e) => e.workOrder === req.workOrder);
    return {
      qualityEventId: this.qualityEvents.get(req.idempotencyKey)!.id,
      workOrder: req.workOrder,
      qualityStatus: 'NONCONFORMING',
      nonconformingQuantity: events.reduce((n, e) => n + e.nonconformingQuantity, 0),
      goodQuantity: 0,
    };
  }

  async releaseHold(req: MesReleaseRequest): Promise<{ lotStatus: string }> {
    this.calls.push(`releaseHold ${req.holdId} ${req.disposition}`);
    takeFailure(this.failures, 'releaseHold');
    const hold = this.holds.get(req.holdId)!;
    hold.status = 'CLOSED';
    hold.disposition = req.disposition;
    const status = { 'use-as-is': 'RELEASED', rework: 'REWORK', scrap: 'SCRAPPED', 'return-to-vendor': 'RETURNED' }[
      req.disposition
    ];
    this.lots.get(req.lotId)!.status = status;
    return { lotStatus: status };
  }

  // Feedback layer: job orders, production release, line sequence, resequencing ---------------------------------

  /** Orders by work order, with their line position (`sequence`) and revision, as the MES would keep them. */
  readonly orders = new Map<string, MesLineOrder & { site: string; revision: number }>();
  /** Every job-order event the fake MES raised, in the order recorded (the feed's cursor is the index). */
  readonly jobOrderEvents: JobOrderEvent[] = [];
  readonly releases = new Map<string, MesProductionRelease[]>();
  readonly resequencings = new Map<string, MesResequencing>();

  /** The cursor feed over `jobOrderEvents`, as the mes-rest connector reads the MES's. */
  readonly jobOrders: JobOrderFeed = {
    read: async (after: string | undefined, limit: number): Promise<JobOrderEventPage> => {
      this.calls.push(`jobOrders.read ${after ?? '-'}`);
      takeFailure(this.failures, 'jobOrders.read');
      const from = after === undefined ? 0 : Number(after);
      const items = this.jobOrderEvents.slice(from, from + limit);
      return { items, nextCursor: items.length > 0 ? String(from + items.length) : (after ?? null) };
    },
  };

  /**
   * Drives an order as the MES would (`released` creates it, last on its line): the order's revision goes up and one
   * event is recorded and returned. `at` sets publishedAt.
   */
  orderEvent(
    eventType: JobOrderEventType,
    order: { workOrder: string; site?: string; line?: string; sku?: string; customerCriticality?: number },
    at = new Date().toISOString(),
  ): JobOrderEvent {
    let o = this.orders.get(order.workOrder);
    if (!o) {
      const line = order.line ?? 'L1';
      o = {
        workOrder: order.workOrder,
        site: order.site ?? 'PLANT1',
        line,
        sku: order.sku ?? 'BRKT-200',
        status: 'RELEASED',
        sequence: this.openOrders(line).length + 1,
        customerCriticality: order.customerCriticality ?? 5,
        plannedQuantity: 100,
        revision: 0,
      };
      this.orders.set(o.workOrder, o);
    }
    if (order.customerCriticality !== undefined) o.customerCriticality = order.customerCriticality;
    if (order.line !== undefined) o.line = order.line;
    o.status = { released: 'RELEASED', started: 'IN_PROGRESS', changed: o.status, completed: 'COMPLETED' }[eventType];
    o.revision += 1;
    const event: JobOrderEvent = {
      eventId: `JO-${o.workOrder}-r${o.revision}`,
      eventType,
      revision: o.revision,
      publishedAt: at,
      site: o.site,
      line: o.line,
      workOrder: o.workOrder,
      sku: o.sku,
      plannedQuantity: o.plannedQuantity,
      customerCriticality: o.customerCriticality,
    };
    this.jobOrderEvents.push(event);
    return event;
  }

  private openOrders(line: string) {
    return [...this.orders.values()]
      .filter((o) => o.line === line && o.status !== 'COMPLETED')
      .sort((a, b) => a.sequence - b.sequence);
  }

  async releaseForProduction(req: MesProductionReleaseRequest, opts?: CreateOptions): Promise<MesProductionRelease> {
    this.calls.push(`releaseForProduction ${req.workOrder}`);
    this.createOptions.set(req.idempotencyKey, opts);
    takeFailure(this.failures, 'releaseForProduction');
    const existing = this.releases.get(req.workOrder) ?? [];
    const same = existing.find((r) => r.externalReference === req.idempotencyKey);
    if (same) return same;
    // Like the connector: an order already released answers its release (when the caller looks first), unless that
    // release was on another line.
    if (existing[0] && opts?.lookupFirst !== false) {
      if (existing[0].line !== req.line) {
        throw new ExternalSystemError(
          this.system,
          'validation',
          `${req.workOrder} was released on ${existing[0].line}`,
        );
      }
      return existing[0];
    }
    const order = this.orders.get(req.workOrder);
    if (order && order.line !== req.line) {
      throw new ExternalSystemError(this.system, 'validation', `work order ${req.workOrder} runs on ${order.line}`);
    }
    const release = {
      workOrder: req.workOrder,
      line: req.line,
      releasedAt: new Date().toISOString(),
      externalReference: req.idempotencyKey,
    };
    this.releases.set(req.workOrder, [...existing, release]);
    return release;
  }

  async getProductionRelease(workOrder: string): Promise<MesProductionRelease | undefined> {
    this.calls.push(`getProductionRelease ${workOrder}`);
    takeFailure(this.failures, 'getProductionRelease');
    return this.releases.get(workOrder)?.[0];
  }

  async lineOrders(line: string): Promise<MesLineOrder[]> {
    this.calls.push(`lineOrders ${line}`);
    takeFailure(this.failures, 'lineOrders');
    return this.openOrders(line).map((o, i) => ({
      workOrder: o.workOrder,
      sku: o.sku,
      line: o.line,
      status: o.status,
      sequence: i + 1,
      customerCriticality: o.customerCriticality,
      plannedQuantity: o.plannedQuantity,
    }));
  }

  /** Applied at once, as the simulator does: the lot put on hold, or the named orders moved up behind running ones. */
  async requestResequencing(req: MesResequencingRequest, opts?: CreateOptions): Promise<MesResequencing> {
    this.calls.push(`requestResequencing ${req.componentLot} ${req.action}`);
    this.createOptions.set(req.idempotencyKey, opts);
    takeFailure(this.failures, 'requestResequencing');
    const existing = [...this.resequencings.values()].find((r) => r.externalReference === req.idempotencyKey);
    if (existing && opts?.lookupFirst !== false) {
      if (existing.componentLot !== req.componentLot || existing.line !== req.line) {
        throw new ExternalSystemError(this.system, 'validation', `key ${req.idempotencyKey} already used`);
      }
      return existing;
    }
    const { idempotencyKey, ...rest } = req;
    let statusReason: string | undefined;
    const lot = this.lots.get(req.componentLot);
    if (!lot) statusReason = `component lot ${req.componentLot} is unknown to the MES`;
    else if (req.action === 'hold-remaining') lot.status = 'ON_HOLD';
    else {
      const open = this.openOrders(req.line);
      const named = req.orders ?? [];
      const missing = named.filter((wo) => !open.some((o) => o.workOrder === wo));
      if (named.length === 0) statusReason = 'use-on-less-critical names no orders';
      else if (missing.length > 0) statusReason = `not open on line ${req.line}: ${missing.join(', ')}`;
      else {
        const running = open.filter((o) => o.status === 'IN_PROGRESS' && !named.includes(o.workOrder));
        const others = open.filter((o) => o.status !== 'IN_PROGRESS' && !named.includes(o.workOrder));
        const order = [...running, ...named.map((wo) => this.orders.get(wo)!), ...others];
        order.forEach((o, i) => {
          if (o.sequence !== i + 1) {
            o.sequence = i + 1;
            this.orderEvent('changed', o);
          }
        });
      }
    }
    const requestId = `RS-${this.resequencings.size + 1}`;
    const answer: MesResequencing = {
      ...rest,
      requestId,
      externalReference: idempotencyKey,
      status: statusReason === undefined ? 'ACCEPTED' : 'REJECTED',
      ...(statusReason !== undefined ? { statusReason } : {}),
      createdAt: new Date().toISOString(),
    };
    this.resequencings.set(requestId, answer);
    return answer;
  }

  async getResequencing(requestId: string): Promise<MesResequencing> {
    this.calls.push(`getResequencing ${requestId}`);
    takeFailure(this.failures, 'getResequencing');
    const found = this.resequencings.get(requestId);
    if (!found) throw new ExternalSystemError(this.system, 'not-found', `resequencing ${requestId} not found`, 404);
    return found;
  }
}

export class FakeErp implements ErpPort {
  readonly system = 'fake-erp';
  /** Set by a test that syncs genealogy from this ERP. */
  genealogy?: GenealogyFeed;
  readonly notifications = new Map<
    string,
    ErpQualityNotificationRequest & { number: string; items: (ErpDefectItem & { item: string })[]; completed: boolean }
  >();
  readonly documents: (ErpGoodsMovementRequest & { materialDocument: string; materialDocumentYear: string })[] = [];
  readonly calls: string[] = [];
  readonly failures: FailOnce = new Map();
  readonly createOptions = new Map<string, CreateOptions | undefined>();

  async raiseQualityNotification(
    req: ErpQualityNotificationRequest,
    opts?: CreateOptions,
  ): Promise<{ notification: string; item: string }> {
    this.calls.push(`raiseQualityNotification ${req.batch}`);
    this.createOptions.set(req.idempotencyKey, opts);
    takeFailure(this.failures, 'raiseQualityNotification');
    const existing = [...this.notifications.values()].find((n) => n.idempotencyKey === req.idempotencyKey);
    if (existing) return { notification: existing.number, item: existing.items[0]!.item };
    const number = String(200000001 + this.notifications.size);
    this.notifications.set(number, { ...req, number, items: [{ ...req.firstItem, item: '0001' }], completed: false });
    return { notification: number, item: '0001' };
  }

  async addNotificationItem(
    notification: string,
    item: ErpDefectItem,
    opts?: CreateOptions,
  ): Promise<{ item: string }> {
    this.calls.push(`addNotificationItem ${notification}`);
    this.createOptions.set(item.idempotencyKey, opts);
    takeFailure(this.failures, 'addNotificationItem');
    const qn = this.notifications.get(notification)!;
    const existing = qn.items.find((i) => i.idempotencyKey === item.idempotencyKey);
    if (existing) return { item: existing.item };
    const no = String(qn.items.length + 1).padStart(4, '0');
    qn.items.push({ ...item, item: no });
    return { item: no };
  }

  async postGoodsMovement(
    req: ErpGoodsMovementRequest,
    opts?: CreateOptions,
  ): Promise<{ materialDocument: string; materialDocumentYear: string }> {
    this.calls.push(`postGoodsMovement ${req.movementType} ${req.quantity}`);
    this.createOptions.set(req.idempotencyKey, opts);
    takeFailure(this.failures, 'postGoodsMovement');
    const existing = this.documents.find((d) => d.idempotencyKey === req.idempotencyKey);
    if (existing)
      return { materialDocument: existing.materialDocument, materialDocumentYear: existing.materialDocumentYear };
    const doc = { ...req, materialDocument: String(4900000001 + this.documents.length), materialDocumentYear: '2026' };
    this.documents.push(doc);
    return { materialDocument: doc.materialDocument, materialDocumentYear: doc.materialDocumentYear };
  }

  /** Unrestricted stock per batch (`material/batch`), set by a test; a 344 takes its quantity out. */
  readonly stock = new Map<string, ErpStock[]>();

  async unrestrictedStock(ref: ErpBatchRef): Promise<ErpStock[]> {
    this.calls.push(`unrestrictedStock ${ref.batch}`);
    takeFailure(this.failures, 'unrestrictedStock');
    const blocked = (sloc: string) =>
      this.documents
        .filter((d) => d.movementType === '344' && d.batch === ref.batch && d.storageLocation === sloc)
        .reduce((sum, d) => sum + d.quantity, 0);
    return (this.stock.get(`${ref.material}/${ref.batch}`) ?? [])
      .map((s) => ({ ...s, quantity: s.quantity - blocked(s.storageLocation) }))
      .filter((s) => s.quantity > 0);
  }

  async completeNotification(notification: string): Promise<void> {
    this.calls.push(`completeNotification ${notification}`);
    takeFailure(this.failures, 'completeNotification');
    this.notifications.get(notification)!.completed = true;
  }
}

export class RecordingEscalation implements EscalationPort {
  readonly messages: EscalationMessage[] = [];
  async escalate(message: EscalationMessage): Promise<void> {
    this.messages.push(message);
  }
}

/**
 * The intent ledger in memory, for units that check the activities' use of it (the PostgreSQL one is checked against
 * PostgreSQL). Requests are compared as JSON, in the order the activity built them.
 */
export class MemoryIntentLedger implements IntentLedger {
  readonly intents = new Map<string, { step: string; system: string; request: string; outcome?: unknown }>();

  async begin({ key, step, system, request }: CreateIntent): Promise<IntentRecord> {
    const known = this.intents.get(key);
    if (!known) {
      this.intents.set(key, { step, system, request: JSON.stringify(request) });
      return { fresh: true };
    }
    if (known.request !== JSON.stringify(request)) throw new IntentConflictError(key, known.step);
    return known.outcome === undefined ? { fresh: false } : { fresh: false, outcome: known.outcome };
  }

  async complete(key: string, outcome: unknown): Promise<void> {
    const known = this.intents.get(key);
    if (known) known.outcome = outcome;
  }
}

/** An ERP's documents, one movement each, read after a cursor that is the index of the last one read. */
export class ScriptedGenealogyFeed implements GenealogyFeed {
  readonly documents: string[] = [];
  readonly reads: (string | undefined)[] = [];
  failNext = 0;

  async readGenealogy(_scope: GenealogyScope, after: string | undefined, limit: number): Promise<GenealogyPage> {
    this.reads.push(after);
    if (this.failNext > 0) {
      this.failNext -= 1;
      throw new ExternalSystemError('fake-erp', 'transient', 'ECONNRESET');
    }
    const from = after === undefined ? 0 : Number(after);
    const docs = this.documents.slice(from, from + limit);
    return {
      lots: [],
      movements: docs.map((edgeKey) => ({
        edgeKey,
        kind: 'consumed' as const,
        from: `lot:${edgeKey}`,
        to: 'wo:PLANT1/1000100',
        occurredAt: '2026-12-01T00:00:00Z',
        site: 'PLANT1',
        sourceSystem: 'erp' as const,
        document: edgeKey,
      })),
      deliveries: [],
      parts: [],
      cursor: String(from + docs.length),
      documents: docs.length,
      more: from + docs.length < this.documents.length,
    };
  }
}

/** Keeps each movement once, by its document, as the store does. */
export class RecordingGenealogy implements GenealogyRecorder {
  readonly edges = new Set<string>();
  readonly sources: string[] = [];
  async record(source: string, facts: GenealogyFacts) {
    this.sources.push(source);
    const added = facts.movements.filter((m) => !this.edges.has(m.edgeKey)).length;
    facts.movements.forEach((m) => this.edges.add(m.edgeKey));
    return { added, updated: 0, unchanged: facts.movements.length - added, gapsOpened: 0, gapsResolved: 0 };
  }

  readonly reconciled: string[] = [];
  async reconcile(source: string) {
    this.reconciled.push(source);
    return { added: 0, updated: 0, unchanged: 0, gapsOpened: 0, gapsResolved: 0 };
  }
}

/** The rows in memory, as infra/recall/recall-containment-store.ts keeps them in PostgreSQL. */
export class MemoryContainment implements RecallContainmentStore {
  readonly lots = new Map<string, ContainmentLot & { batch: number; error?: string }>();
  cancelled = false;

  add(lot: Partial<ContainmentLot> & { lotKey: string }, batch = 0) {
    this.lots.set(lot.lotKey, {
      state: 'pending',
      mesState: 'pending',
      erpState: 'pending',
      erpBlocks: [],
      batch,
      ...lot,
    });
  }
  async plan(_recallId: string, batchSize: number) {
    [...this.lots.values()].forEach((l, i) => (l.batch = Math.floor(i / batchSize)));
    return { lots: this.lots.size, batches: Math.ceil(this.lots.size / batchSize) };
  }
  async batch(_recallId: string, batch: number) {
    return [...this.lots.values()].filter((l) => l.batch === batch).map((l) => structuredClone(l));
  }
  async update(_recallId: string, lotKey: string, update: Partial<ContainmentLot> & { error?: string }) {
    Object.assign(this.lots.get(lotKey)!, structuredClone(update));
  }
  async cancelRequested() {
    return this.cancelled;
  }
  async cancel() {
    this.cancelled = true;
  }
  async abandon() {
    for (const l of this.lots.values()) if (l.state === 'pending') l.state = 'cancelled';
  }
  async counts(): Promise<ContainmentCounts> {
    const all = [...this.lots.values()];
    const n = (s: string) => all.filter((l) => l.state === s).length;
    return {
      lots: all.length,
      pending: n('pending'),
      held: n('held'),
      alreadyHeld: n('already-held'),
      nothingToBlock: n('nothing-to-block'),
      failed: n('failed'),
      cancelled: n('cancelled'),
      blocked: all.filter((l) => l.erpState === 'blocked').length,
    };
  }
}

/** A recall notice target that keeps what it was given; the reference is the notice's key. */
export class RecordingRecallNotice implements RecallNoticePort {
  readonly notices: RecallNotice[] = [];
  async deliver(notice: RecallNotice): Promise<{ reference: string }> {
    this.notices.push(notice);
    return { reference: notice.idempotencyKey };
  }
}
