import type {
  ErpDefectItem,
  ErpGoodsMovementRequest,
  ErpPort,
  ErpQualityNotificationRequest,
  EscalationMessage,
  EscalationPort,
  MesHoldRequest,
  MesLot,
  MesPort,
  MesQualityEventRequest,
  MesReleaseRequest,
  MesWorkOrderQuality,
} from '../../activities/ports';
import { ExternalSystemError } from '../../activities/errors';

/**
 * In-memory MES and ERP typed against the real ports, for workflow tests that need no vendor simulator.
 * Like the connectors, they honour idempotency keys (lookup before create) and record every call.
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

  async holdLot(req: MesHoldRequest): Promise<{ holdId: string }> {
    this.calls.push(`holdLot ${req.lotId}`);
    takeFailure(this.failures, 'holdLot');
    const existing = [...this.holds.values()].find((h) => h.idempotencyKey === req.idempotencyKey);
    if (existing) return { holdId: existing.holdId };
    const holdId = `H-${this.holds.size + 1}`;
    this.holds.set(holdId, { ...req, holdId, status: 'ACTIVE' });
    this.lots.get(req.lotId)!.status = 'ON_HOLD';
    return { holdId };
  }

  async recordQualityEvent(req: MesQualityEventRequest): Promise<MesWorkOrderQuality> {
    this.calls.push(`recordQualityEvent ${req.partId}`);
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
  readonly notifications = new Map<
    string,
    ErpQualityNotificationRequest & { number: string; items: (ErpDefectItem & { item: string })[]; completed: boolean }
  >();
  readonly documents: (ErpGoodsMovementRequest & { materialDocument: string; materialDocumentYear: string })[] = [];
  readonly calls: string[] = [];
  readonly failures: FailOnce = new Map();

  async raiseQualityNotification(req: ErpQualityNotificationRequest): Promise<{ notification: string; item: string }> {
    this.calls.push(`raiseQualityNotification ${req.batch}`);
    takeFailure(this.failures, 'raiseQualityNotification');
    const existing = [...this.notifications.values()].find((n) => n.idempotencyKey === req.idempotencyKey);
    if (existing) return { notification: existing.number, item: existing.items[0]!.item };
    const number = String(200000001 + this.notifications.size);
    this.notifications.set(number, { ...req, number, items: [{ ...req.firstItem, item: '0001' }], completed: false });
    return { notification: number, item: '0001' };
  }

  async addNotificationItem(notification: string, item: ErpDefectItem): Promise<{ item: string }> {
    this.calls.push(`addNotificationItem ${notification}`);
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
  ): Promise<{ materialDocument: string; materialDocumentYear: string }> {
    this.calls.push(`postGoodsMovement ${req.movementType} ${req.quantity}`);
    takeFailure(this.failures, 'postGoodsMovement');
    const existing = this.documents.find((d) => d.idempotencyKey === req.idempotencyKey);
    if (existing)
      return { materialDocument: existing.materialDocument, materialDocumentYear: existing.materialDocumentYear };
    const doc = { ...req, materialDocument: String(4900000001 + this.documents.length), materialDocumentYear: '2026' };
    this.documents.push(doc);
    return { materialDocument: doc.materialDocument, materialDocumentYear: doc.materialDocumentYear };
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
