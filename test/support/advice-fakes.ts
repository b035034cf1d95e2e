/**
 * Typed fakes for scheduling advice: an MES with the resequencing methods the mes-rest connector offers (deduped by
 * idempotency key, read back as the MES's planner left it), and the advice store in memory.
 */
import type { AdviceStore, LotDefectCounts, NewAdvice, StoredAdvice } from '../../activities/advice/advice.ports';
import type {
  CreateOptions,
  MesLineOrder,
  MesPort,
  MesResequencing,
  MesResequencingRequest,
} from '../../activities/ports';
import { FakeMes } from './fake-ports';

/** Line orders as the test sets them, and resequencing read back as accepted by the planner. */
export class ResequencingMes extends FakeMes {
  readonly resequencings = new Map<string, MesResequencing>();
  readonly requests: MesResequencingRequest[] = [];
  lineOrderList: MesLineOrder[] = [];

  async lineOrders(line: string): Promise<MesLineOrder[]> {
    return this.lineOrderList.filter((o) => o.line === line);
  }

  async requestResequencing(req: MesResequencingRequest, _opts?: CreateOptions): Promise<MesResequencing> {
    this.requests.push(req);
    const { idempotencyKey, ...rest } = req;
    const known = [...this.resequencings.values()].find((r) => r.externalReference === idempotencyKey);
    if (known) return known;
    const created: MesResequencing = {
      ...rest,
      requestId: `RS-${this.resequencings.size + 1}`,
      externalReference: idempotencyKey,
      status: 'PENDING',
      createdAt: '2026-12-07T00:00:00Z',
    };
    this.resequencings.set(created.requestId, created);
    return created;
  }

  /** The planner has taken it by the time it is read back. */
  async getResequencing(requestId: string): Promise<MesResequencing> {
    const known = this.resequencings.get(requestId);
    if (!known) throw new Error(`no resequencing ${requestId}`);
    return { ...known, status: 'ACCEPTED' };
  }
}

/** The advice store in memory, with the PostgreSQL store's rule: one open advice per lot and line. */
export class MemoryAdviceStore implements AdviceStore {
  counts: LotDefectCounts[] = [];
  readonly advice: StoredAdvice[] = [];

  async lotDefectCounts(): Promise<LotDefectCounts[]> {
    return this.counts;
  }

  async propose(a: NewAdvice): Promise<string | undefined> {
    const open = this.advice.some(
      (o) => o.site === a.site && o.line === a.line && o.componentLot === a.componentLot && o.state === 'open',
    );
    if (open) return undefined;
    const adviceId = `adv-${this.advice.length + 1}`;
    this.advice.push({
      ...a,
      adviceId,
      state: 'open',
      createdAt: new Date().toISOString(),
      decidedAt: null,
      decidedBy: null,
      decisionReason: null,
      signature: null,
      resequencing: null,
      sentAt: null,
    });
    return adviceId;
  }

  /** What the accept route does to the row. */
  accept(adviceId: string): void {
    const a = this.advice.find((x) => x.adviceId === adviceId);
    if (!a) throw new Error(`no advice ${adviceId}`);
    Object.assign(a, { state: 'accepted', decidedAt: new Date().toISOString(), decidedBy: 'local:qe' });
  }

  async acceptedUnsent(site: string, line: string): Promise<StoredAdvice[]> {
    return this.advice.filter((a) => a.site === site && a.line === line && a.state === 'accepted');
  }

  async get(adviceId: string): Promise<StoredAdvice | undefined> {
    return this.advice.find((a) => a.adviceId === adviceId);
  }

  async recordSent(adviceId: string, resequencing: MesResequencing): Promise<void> {
    const a = this.advice.find((x) => x.adviceId === adviceId);
    if (a?.state === 'accepted') Object.assign(a, { state: 'sent', resequencing, sentAt: new Date().toISOString() });
  }
}

/** An MES that offers no resequencing requests (the port's operation is optional). */
export function mesWithoutResequencing(): MesPort {
  const mes = new FakeMes();
  return Object.assign(mes, { requestResequencing: undefined, getResequencing: undefined });
}
