/**
 * The MES connector contract: what every connector of role `mes` must do, whatever the MES behind it. A
 * `*.contract.test.ts` file calls `mesConnectorContract` with a sandbox (the in-repo simulator, or a vendor's test
 * system) and a way to open the connector against it; README.md says how to run it against your own.
 */
import type { MesHoldRequest, MesPort } from '../../activities/ports';
import {
  connectorUnderContract,
  externalError,
  requestsOfCreates,
  type ContractSandbox,
  type ContractSetup,
} from './contract-support';

/** A test system the contract drives, plus what it reads past the connector to check the outcome. */
export interface MesSandbox extends ContractSandbox {
  /** A lot in status RELEASED on its own work order, for the calling test alone. */
  newLot(): Promise<{ lotId: string; workOrder: string }>;
  /** A lot id the MES does not know. */
  unknownLotId: string;
  /** "Commit the change, then drop the response" for the next create of this kind (a POST, in a REST MES). */
  dropNextResponse(create: 'hold' | 'quality-event' | 'release' | 'production-release' | 'resequencing'): Promise<void>;
  /** How many holds / quality events in the MES carry this idempotency key. */
  holdsWithKey(key: string): Promise<number>;
  qualityEventsWithKey(workOrder: string, key: string): Promise<number>;
  /** The feedback layer's part of the test system, for a connector that implements those MesPort methods. */
  feedback?: MesFeedbackSandbox;
}

/** Drives orders in the test system as its planners and line would (docs/changeover.md#order-events). */
export interface MesFeedbackSandbox {
  /** A new order released to `line`, last in its sequence. */
  releaseOrder(line: string, customerCriticality: number): Promise<{ workOrder: string; sku: string }>;
  /** The line starts the order: the MES raises a started event. */
  startOrder(workOrder: string): Promise<void>;
  /** How many production releases the MES holds for the order. */
  productionReleases(workOrder: string): Promise<number>;
  resequencingsWithKey(key: string): Promise<number>;
}

export type MesContractSetup = ContractSetup<MesSandbox, MesPort>;

let keySeq = 0;
/** Idempotency keys unique to this run, so a sandbox kept between runs never answers from an earlier one. */
const newKey = (step: string) => `contract-${process.pid}-${Date.now().toString(36)}-${++keySeq}:${step}`;

const holdRequest = (lot: { lotId: string; workOrder: string }, idempotencyKey: string): MesHoldRequest => ({
  idempotencyKey,
  lotId: lot.lotId,
  workOrder: lot.workOrder,
  reason: 'vision: porosity',
  defectClass: 'porosity',
  line: 'L1',
  station: 'S1',
});

const qualityEvent = (lot: { lotId: string; workOrder: string }, idempotencyKey: string, partId = 'P-1') => ({
  idempotencyKey,
  workOrder: lot.workOrder,
  lotId: lot.lotId,
  partId,
  defectClass: 'porosity',
  nonconformingQuantity: 1,
});

let lineSeq = 0;
/** A line of its own per test, so sequences never mix. */
const newLine = () => `K-${process.pid}-${Date.now().toString(36)}-${++lineSeq}`;

/**
 * `feedback`: the connector implements the feedback layer's MesPort methods (job-order feed, production release,
 * line orders, resequencing), and the sandbox offers `feedback` to drive them.
 */
export function mesConnectorContract(name: string, setup: MesContractSetup, opts: { feedback?: boolean } = {}): void {
  describe(`MES connector contract: ${name}`, () => {
    const under = connectorUnderContract('MES', setup, async (mes, { sandbox }) => {
      const lot = await sandbox.newLot();
      await mes.port.getLot(lot.lotId);
      await mes.port.holdLot(holdRequest(lot, newKey('hold')));
    });

    describe('idempotency-key look-up: a retry with the same key (lookupFirst: true) finds the first result', () => {
      it('holdLot', async () => {
        const lot = await under.sandbox.newLot();
        const key = newKey('hold');

        const first = await under.connector.port.holdLot(holdRequest(lot, key), { lookupFirst: false });
        const again = await under.connector.port.holdLot(holdRequest(lot, key), { lookupFirst: true });

        expect(again).toEqual(first);
        expect(await under.sandbox.holdsWithKey(key)).toBe(1);
      });

      it('recordQualityEvent', async () => {
        const lot = await under.sandbox.newLot();
        const key = newKey('quality');

        const first = await under.connector.port.recordQualityEvent(qualityEvent(lot, key), { lookupFirst: false });
        const again = await under.connector.port.recordQualityEvent(qualityEvent(lot, key), { lookupFirst: true });

        expect(again).toEqual(first);
        expect(first.nonconformingQuantity).toBe(1);
        expect(await under.sandbox.qualityEventsWithKey(lot.workOrder, key)).toBe(1);
      });

      it('releaseHold', async () => {
        const lot = await under.sandbox.newLot();
        const { holdId } = await under.connector.port.holdLot(holdRequest(lot, newKey('hold')));
        const release = { idempotencyKey: newKey('release'), holdId, lotId: lot.lotId, comment: 'MRB' };

        const first = await under.connector.port.releaseHold({ ...release, disposition: 'rework' });
        const again = await under.connector.port.releaseHold({ ...release, disposition: 'rework' });

        expect(again).toEqual(first);
        expect((await under.connector.port.getLot(lot.lotId)).status).toBe(first.lotStatus);
      });

      it('refuses a key already used for another lot, as validation, and creates nothing', async () => {
        const a = await under.sandbox.newLot();
        const b = await under.sandbox.newLot();
        const key = newKey('hold');
        await under.connector.port.holdLot(holdRequest(a, key));

        const err = await externalError(under.connector.port.holdLot(holdRequest(b, key), { lookupFirst: true }));

        expect(err.kind).toBe('validation');
        expect(err.message).toContain(key);
        expect(await under.sandbox.holdsWithKey(key)).toBe(1);
        expect((await under.connector.port.getLot(b.lotId)).status).toBe('RELEASED');
      });
    });

    describe('lookupFirst: false (no earlier attempt): a fresh create is one request, the create itself', () => {
      it('holdLot', async () => {
        const lots = { true: await under.sandbox.newLot(), false: await under.sandbox.newLot() };
        const { lookedUp, direct } = await requestsOfCreates(under.sandbox.port, (lookupFirst) =>
          under.connector.port.holdLot(holdRequest(lots[`${lookupFirst}`], newKey('hold')), { lookupFirst }),
        );

        expect(direct).toEqual([expect.stringMatching(/^(POST|PUT|PATCH) /)]);
        expect(lookedUp.length).toBeGreaterThan(direct.length);
      });

      it('recordQualityEvent', async () => {
        const lot = await under.sandbox.newLot();
        const { lookedUp, direct } = await requestsOfCreates(under.sandbox.port, (lookupFirst) =>
          under.connector.port.recordQualityEvent(qualityEvent(lot, newKey('quality')), { lookupFirst }),
        );

        expect(direct).toEqual([expect.stringMatching(/^(POST|PUT|PATCH) /)]);
        expect(lookedUp.length).toBeGreaterThan(direct.length);
      });
    });

    describe('commit but drop the response: transient, naming the operation; the retry finds the committed document (exactly one)', () => {
      it('holdLot', async () => {
        const lot = await under.sandbox.newLot();
        const key = newKey('hold');
        await under.sandbox.dropNextResponse('hold');

        const lost = await externalError(under.connector.port.holdLot(holdRequest(lot, key), { lookupFirst: false }));
        const retried = await under.connector.port.holdLot(holdRequest(lot, key), { lookupFirst: true });

        expect(lost.kind).toBe('transient');
        expect(lost.message).toContain('holdLot');
        expect(retried.holdId).toEqual(expect.any(String));
        expect(await under.sandbox.holdsWithKey(key)).toBe(1);
      });

      it('recordQualityEvent', async () => {
        const lot = await under.sandbox.newLot();
        const key = newKey('quality');
        await under.sandbox.dropNextResponse('quality-event');

        const lost = await externalError(
          under.connector.port.recordQualityEvent(qualityEvent(lot, key), { lookupFirst: false }),
        );
        const retried = await under.connector.port.recordQualityEvent(qualityEvent(lot, key), { lookupFirst: true });

        expect(lost.kind).toBe('transient');
        expect(lost.message).toContain('recordQualityEvent');
        expect(retried.nonconformingQuantity).toBe(1);
        expect(await under.sandbox.qualityEventsWithKey(lot.workOrder, key)).toBe(1);
      });

      it('releaseHold', async () => {
        const lot = await under.sandbox.newLot();
        const { holdId } = await under.connector.port.holdLot(holdRequest(lot, newKey('hold')));
        const release = { idempotencyKey: newKey('release'), holdId, lotId: lot.lotId, comment: 'MRB' };
        await under.sandbox.dropNextResponse('release');

        const lost = await externalError(under.connector.port.releaseHold({ ...release, disposition: 'scrap' }));
        const retried = await under.connector.port.releaseHold({ ...release, disposition: 'scrap' });

        expect(lost.kind).toBe('transient');
        expect(lost.message).toContain('releaseHold');
        expect((await under.connector.port.getLot(lot.lotId)).status).toBe(retried.lotStatus);
      });
    });

    describe('retry classification: only transient is retried', () => {
      it('transient: the MES unavailable, for a read and a create', async () => {
        const lot = await under.sandbox.newLot();
        await under.sandbox.outage();

        const read = await externalError(under.connector.port.getLot(lot.lotId));
        const create = await externalError(under.connector.port.holdLot(holdRequest(lot, newKey('hold'))));

        expect([read.kind, create.kind]).toEqual(['transient', 'transient']);
      });

      it('validation: a quality event for a lot of another work order', async () => {
        const a = await under.sandbox.newLot();
        const b = await under.sandbox.newLot();

        const err = await externalError(
          under.connector.port.recordQualityEvent({ ...qualityEvent(a, newKey('quality')), workOrder: b.workOrder }),
        );

        expect(err.kind).toBe('validation');
      });

      it('rejected: a hold on a scrapped lot, and another disposition for a released hold', async () => {
        const lot = await under.sandbox.newLot();
        const { holdId } = await under.connector.port.holdLot(holdRequest(lot, newKey('hold')));
        const release = { idempotencyKey: newKey('release'), holdId, lotId: lot.lotId, comment: 'MRB' };
        await under.connector.port.releaseHold({ ...release, disposition: 'scrap' });

        const hold = await externalError(under.connector.port.holdLot(holdRequest(lot, newKey('hold'))));
        const changed = await externalError(under.connector.port.releaseHold({ ...release, disposition: 'use-as-is' }));

        expect([hold.kind, changed.kind]).toEqual(['rejected', 'rejected']);
      });

      it('not-found: an unknown lot, read or held', async () => {
        const read = await externalError(under.connector.port.getLot(under.sandbox.unknownLotId));
        const hold = await externalError(
          under.connector.port.holdLot(
            holdRequest({ lotId: under.sandbox.unknownLotId, workOrder: 'WO-NONE' }, newKey('hold')),
          ),
        );

        expect([read.kind, hold.kind]).toEqual(['not-found', 'not-found']);
      });
    });

    if (opts.feedback) feedbackContract(under);
  });
}

function feedbackContract(under: { readonly sandbox: MesSandbox; readonly connector: { port: MesPort } }): void {
  const drive = () => {
    const feedback = under.sandbox.feedback;
    if (!feedback) throw new Error('the MES sandbox offers no feedback driver (MesSandbox.feedback)');
    return feedback;
  };
  const port = () => {
    const mes = under.connector.port;
    const missing = (
      ['jobOrders', 'releaseForProduction', 'getProductionRelease', 'lineOrders', 'requestResequencing'] as const
    ).filter((m) => mes[m] === undefined);
    if (missing.length > 0) throw new Error(`the connector lacks ${missing.join(', ')}`);
    return mes as Required<MesPort>;
  };
  /** Every event after `after`, page by page (small pages, so paging is exercised). */
  const readAll = async (after: string | undefined) => {
    const items = [];
    let cursor = after;
    for (;;) {
      const page = await port().jobOrders.read(cursor, 50);
      items.push(...page.items);
      if (page.nextCursor !== null) cursor = page.nextCursor;
      if (page.items.length < 50) return { items, cursor };
    }
  };

  describe('feedback layer', () => {
    it('job-order feed: released and started events of an order, normalised, with rising revisions; then nothing new', async () => {
      const start = await readAll(undefined);
      const line = newLine();
      const order = await drive().releaseOrder(line, 7);
      await drive().startOrder(order.workOrder);

      const { items, cursor } = await readAll(start.cursor);
      const again = await port().jobOrders.read(cursor, 50);

      const mine = items.filter((e) => e.workOrder === order.workOrder);
      expect(mine.map((e) => e.eventType)).toEqual(['released', 'started']);
      expect(mine[1]).toEqual(
        expect.objectContaining({ line, sku: order.sku, customerCriticality: 7, eventId: expect.any(String) }),
      );
      expect(mine[1]!.revision).toBeGreaterThan(mine[0]!.revision);
      expect(new Set(items.map((e) => e.eventId)).size).toBe(items.length);
      expect(again).toEqual({ items: [], nextCursor: cursor });
    });

    it('lineOrders: the open orders in sequence with their criticality', async () => {
      const line = newLine();
      const a = await drive().releaseOrder(line, 9);
      const b = await drive().releaseOrder(line, 2);

      const orders = await port().lineOrders(line);

      expect(orders.map((o) => [o.workOrder, o.sequence, o.customerCriticality])).toEqual([
        [a.workOrder, 1, 9],
        [b.workOrder, 2, 2],
      ]);
    });

    it('releaseForProduction: a retry with the key finds the first release; read back; undefined before', async () => {
      const line = newLine();
      const order = await drive().releaseOrder(line, 5);
      const req = {
        idempotencyKey: newKey('production-release'),
        workOrder: order.workOrder,
        line,
        releasedBy: 'changeover-contract',
        comment: 'first article passed',
      };
      const before = await port().getProductionRelease(order.workOrder);

      const first = await port().releaseForProduction(req, { lookupFirst: false });
      const again = await port().releaseForProduction(req, { lookupFirst: true });

      expect(before).toBeUndefined();
      expect(again).toEqual(first);
      expect(first).toEqual(
        expect.objectContaining({ workOrder: order.workOrder, line, externalReference: req.idempotencyKey }),
      );
      expect(await port().getProductionRelease(order.workOrder)).toEqual(first);
      expect(await drive().productionReleases(order.workOrder)).toBe(1);
    });

    it('releaseForProduction: commit but drop the response is transient; the retry finds the release (exactly one)', async () => {
      const line = newLine();
      const order = await drive().releaseOrder(line, 5);
      const req = {
        idempotencyKey: newKey('production-release'),
        workOrder: order.workOrder,
        line,
        releasedBy: 'k',
        comment: '',
      };
      await under.sandbox.dropNextResponse('production-release');

      const lost = await externalError(port().releaseForProduction(req, { lookupFirst: false }));
      const retried = await port().releaseForProduction(req, { lookupFirst: true });

      expect(lost.kind).toBe('transient');
      expect(lost.message).toContain('releaseForProduction');
      expect(retried.externalReference).toBe(req.idempotencyKey);
      expect(await drive().productionReleases(order.workOrder)).toBe(1);
    });

    it('requestResequencing use-on-less-critical: accepted, the line resequenced, read back; a retry finds it', async () => {
      const line = newLine();
      const critical = await drive().releaseOrder(line, 9);
      const lenient = await drive().releaseOrder(line, 1);
      const lot = await under.sandbox.newLot();
      const req = {
        idempotencyKey: newKey('resequencing'),
        line,
        componentLot: lot.lotId,
        action: 'use-on-less-critical' as const,
        orders: [lenient.workOrder],
        reason: 'defect rate 4.1 % on lot (p < 0.01)',
      };
      await under.sandbox.dropNextResponse('resequencing');

      const lost = await externalError(port().requestResequencing(req, { lookupFirst: false }));
      const answer = await port().requestResequencing(req, { lookupFirst: true });
      const readBack = await port().getResequencing(answer.requestId);

      expect(lost.kind).toBe('transient');
      expect(answer).toEqual(
        expect.objectContaining({ status: 'ACCEPTED', componentLot: lot.lotId, externalReference: req.idempotencyKey }),
      );
      expect(readBack).toEqual(answer);
      expect((await port().lineOrders(line)).map((o) => o.workOrder)).toEqual([lenient.workOrder, critical.workOrder]);
      expect(await drive().resequencingsWithKey(req.idempotencyKey)).toBe(1);
    });

    it('refuses a key already used for another lot or line, as validation, and creates nothing', async () => {
      const line = newLine();
      const order = await drive().releaseOrder(line, 5);
      const [a, b] = [await under.sandbox.newLot(), await under.sandbox.newLot()];
      const key = newKey('resequencing');
      const ask = (componentLot: string) =>
        port().requestResequencing({ idempotencyKey: key, line, componentLot, action: 'hold-remaining', reason: 'k' });
      await ask(a.lotId);
      await port().releaseForProduction({
        idempotencyKey: newKey('production-release'),
        workOrder: order.workOrder,
        line,
        releasedBy: 'k',
        comment: '',
      });

      const reused = await externalError(ask(b.lotId));
      const elsewhere = await externalError(
        port().releaseForProduction({
          idempotencyKey: newKey('production-release'),
          workOrder: order.workOrder,
          line: newLine(),
          releasedBy: 'k',
          comment: '',
        }),
      );

      expect([reused.kind, elsewhere.kind]).toEqual(['validation', 'validation']);
      expect(reused.message).toContain(key);
      expect(await drive().resequencingsWithKey(key)).toBe(1);
      expect(await drive().productionReleases(order.workOrder)).toBe(1);
      expect((await port().getLot(b.lotId)).status).toBe('RELEASED');
    });

    it('requestResequencing: an unknown lot is REJECTED with the reason, the sequence unchanged', async () => {
      const line = newLine();
      const a = await drive().releaseOrder(line, 9);
      const b = await drive().releaseOrder(line, 1);

      const answer = await port().requestResequencing({
        idempotencyKey: newKey('resequencing'),
        line,
        componentLot: under.sandbox.unknownLotId,
        action: 'use-on-less-critical',
        orders: [b.workOrder],
        reason: 'contract',
      });

      expect(answer.status).toBe('REJECTED');
      expect(answer.statusReason).toContain(under.sandbox.unknownLotId);
      expect((await port().lineOrders(line)).map((o) => o.workOrder)).toEqual([a.workOrder, b.workOrder]);
    });
  });
}
