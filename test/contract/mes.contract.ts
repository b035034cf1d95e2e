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
  dropNextResponse(create: 'hold' | 'quality-event' | 'release'): Promise<void>;
  /** How many holds / quality events in the MES carry this idempotency key. */
  holdsWithKey(key: string): Promise<number>;
  qualityEventsWithKey(workOrder: string, key: string): Promise<number>;
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

export function mesConnectorContract(name: string, setup: MesContractSetup): void {
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
  });
}
