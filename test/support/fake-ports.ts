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
  MesHoldRequest,
  MesLot,
  MesPort,
  MesQualityEventRequest,
  MesReleaseRequest,
  MesWorkOrderQuality,
  ContainmentCounts,
  ContainmentLot,
  RecallContainmentStore,
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
