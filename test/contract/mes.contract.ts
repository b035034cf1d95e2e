/**
 * The MES connector contract: what every connector of role `mes` must do, whatever the MES behind it. A
 * `*.contract.test.ts` file calls `mesConnectorContract` with a sandbox (the in-repo simulator, or a vendor's test
 * system) and a way to open the connector against it; README.md says how to run it against your own.
 */
import type { MesHoldRequest, MesPort } from '../../activities/ports';
import type { ConnectorInstance } from '../../infra/connectors/define';
import { eventually, externalError, refTimers, watchClientSockets } from './contract-support';

/** A test system the contract drives, plus what it reads past the connector to check the outcome. */
export interface MesSandbox {
  /** The port the MES listens on: the connector's sockets to it must be gone after close(). */
  port: number;
  /** A lot in status RELEASED on its own work order, for the calling test alone. */
  newLot(): Promise<{ lotId: string; workOrder: string }>;
  /** A lot id the MES does not know. */
  unknownLotId: string;
  /** "Commit the change, then drop the response" for the next create of this kind (a POST, in a REST MES). */
  dropNextResponse(create: 'hold' | 'quality-event' | 'release'): Promise<void>;
  /** The MES answers every call as unavailable (HTTP 503, or the vendor's equivalent) until clearFaults(). */
  outage(): Promise<void>;
  /** Ends every fault armed by this sandbox. Run after each test. */
  clearFaults(): Promise<void>;
  /** How many holds / quality events in the MES carry this idempotency key. */
  holdsWithKey(key: string): Promise<number>;
  qualityEventsWithKey(workOrder: string, key: string): Promise<number>;
}

export interface MesContractSetup {
  /** Starts the sandbox (or reaches it) before the suite. */
  start(): Promise<MesSandbox>;
  /** Opens a new instance of the connector under test against the sandbox. The contract closes it. */
  connect(sandbox: MesSandbox): Promise<ConnectorInstance<MesPort>>;
  /** After the suite, once every instance is closed. */
  stop(): Promise<void>;
}

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
    let sandbox: MesSandbox;
    let mes: ConnectorInstance<MesPort>;
    const opened: ConnectorInstance<MesPort>[] = [];
    const connect = async () => {
      const instance = await setup.connect(sandbox);
      opened.push(instance);
      return instance;
    };

    beforeAll(async () => {
      sandbox = await setup.start();
      mes = await connect();
    });
    afterEach(async () => {
      await sandbox.clearFaults();
    });
    afterAll(async () => {
      await Promise.allSettled(opened.map((c) => c.close()));
      await setup.stop();
    });

    describe('health', () => {
      it('passes its health check, and fails it as transient while the MES is unavailable', async () => {
        await expect(mes.healthCheck()).resolves.not.toThrow();
        await sandbox.outage();

        const err = await externalError(mes.healthCheck());

        expect(err.kind).toBe('transient');
      });
    });

    describe('idempotency-key look-up: a retry with the same key finds the first result', () => {
      it('holdLot', async () => {
        const lot = await sandbox.newLot();
        const key = newKey('hold');

        const first = await mes.port.holdLot(holdRequest(lot, key));
        const again = await mes.port.holdLot(holdRequest(lot, key));

        expect(again).toEqual(first);
        expect(await sandbox.holdsWithKey(key)).toBe(1);
      });

      it('recordQualityEvent', async () => {
        const lot = await sandbox.newLot();
        const key = newKey('quality');

        const first = await mes.port.recordQualityEvent(qualityEvent(lot, key));
        const again = await mes.port.recordQualityEvent(qualityEvent(lot, key));

        expect(again).toEqual(first);
        expect(first.nonconformingQuantity).toBe(1);
        expect(await sandbox.qualityEventsWithKey(lot.workOrder, key)).toBe(1);
      });

      it('releaseHold', async () => {
        const lot = await sandbox.newLot();
        const { holdId } = await mes.port.holdLot(holdRequest(lot, newKey('hold')));
        const release = { idempotencyKey: newKey('release'), holdId, lotId: lot.lotId, comment: 'MRB' };

        const first = await mes.port.releaseHold({ ...release, disposition: 'rework' });
        const again = await mes.port.releaseHold({ ...release, disposition: 'rework' });

        expect(again).toEqual(first);
        expect((await mes.port.getLot(lot.lotId)).status).toBe(first.lotStatus);
      });

      it('refuses a key already used for another lot, as validation, and creates nothing', async () => {
        const a = await sandbox.newLot();
        const b = await sandbox.newLot();
        const key = newKey('hold');
        await mes.port.holdLot(holdRequest(a, key));

        const err = await externalError(mes.port.holdLot(holdRequest(b, key)));

        expect(err.kind).toBe('validation');
        expect(err.message).toContain(key);
        expect(await sandbox.holdsWithKey(key)).toBe(1);
        expect((await mes.port.getLot(b.lotId)).status).toBe('RELEASED');
      });
    });

    describe('commit but drop the response: transient, naming the operation; the retry finds the committed document (exactly one)', () => {
      it('holdLot', async () => {
        const lot = await sandbox.newLot();
        const key = newKey('hold');
        await sandbox.dropNextResponse('hold');

        const lost = await externalError(mes.port.holdLot(holdRequest(lot, key)));
        const retried = await mes.port.holdLot(holdRequest(lot, key));

        expect(lost.kind).toBe('transient');
        expect(lost.message).toContain('holdLot');
        expect(retried.holdId).toEqual(expect.any(String));
        expect(await sandbox.holdsWithKey(key)).toBe(1);
      });

      it('recordQualityEvent', async () => {
        const lot = await sandbox.newLot();
        const key = newKey('quality');
        await sandbox.dropNextResponse('quality-event');

        const lost = await externalError(mes.port.recordQualityEvent(qualityEvent(lot, key)));
        const retried = await mes.port.recordQualityEvent(qualityEvent(lot, key));

        expect(lost.kind).toBe('transient');
        expect(lost.message).toContain('recordQualityEvent');
        expect(retried.nonconformingQuantity).toBe(1);
        expect(await sandbox.qualityEventsWithKey(lot.workOrder, key)).toBe(1);
      });

      it('releaseHold', async () => {
        const lot = await sandbox.newLot();
        const { holdId } = await mes.port.holdLot(holdRequest(lot, newKey('hold')));
        const release = { idempotencyKey: newKey('release'), holdId, lotId: lot.lotId, comment: 'MRB' };
        await sandbox.dropNextResponse('release');

        const lost = await externalError(mes.port.releaseHold({ ...release, disposition: 'scrap' }));
        const retried = await mes.port.releaseHold({ ...release, disposition: 'scrap' });

        expect(lost.kind).toBe('transient');
        expect(lost.message).toContain('releaseHold');
        expect((await mes.port.getLot(lot.lotId)).status).toBe(retried.lotStatus);
      });
    });

    describe('retry classification: only transient is retried', () => {
      it('transient: the MES unavailable, for a read and a create', async () => {
        const lot = await sandbox.newLot();
        await sandbox.outage();

        const read = await externalError(mes.port.getLot(lot.lotId));
        const create = await externalError(mes.port.holdLot(holdRequest(lot, newKey('hold'))));

        expect([read.kind, create.kind]).toEqual(['transient', 'transient']);
      });

      it('validation: a quality event for a lot of another work order', async () => {
        const a = await sandbox.newLot();
        const b = await sandbox.newLot();

        const err = await externalError(
          mes.port.recordQualityEvent({ ...qualityEvent(a, newKey('quality')), workOrder: b.workOrder }),
        );

        expect(err.kind).toBe('validation');
      });

      it('rejected: a hold on a scrapped lot, and another disposition for a released hold', async () => {
        const lot = await sandbox.newLot();
        const { holdId } = await mes.port.holdLot(holdRequest(lot, newKey('hold')));
        const release = { idempotencyKey: newKey('release'), holdId, lotId: lot.lotId, comment: 'MRB' };
        await mes.port.releaseHold({ ...release, disposition: 'scrap' });

        const hold = await externalError(mes.port.holdLot(holdRequest(lot, newKey('hold'))));
        const changed = await externalError(mes.port.releaseHold({ ...release, disposition: 'use-as-is' }));

        expect([hold.kind, changed.kind]).toEqual(['rejected', 'rejected']);
      });

      it('not-found: an unknown lot, read or held', async () => {
        const read = await externalError(mes.port.getLot(sandbox.unknownLotId));
        const hold = await externalError(
          mes.port.holdLot(holdRequest({ lotId: sandbox.unknownLotId, workOrder: 'WO-NONE' }, newKey('hold'))),
        );

        expect([read.kind, hold.kind]).toEqual(['not-found', 'not-found']);
      });
    });

    describe('close', () => {
      it('releases every socket and timer, and later calls fail as transient', async () => {
        const lot = await sandbox.newLot();
        // The sandbox and the shared instance have warmed up whatever they pool; only the new instance is measured.
        await mes.port.getLot(lot.lotId);
        const timersBefore = refTimers();
        const sockets = watchClientSockets();
        try {
          const own = await connect();
          await own.healthCheck();
          await own.port.getLot(lot.lotId);
          await own.port.holdLot(holdRequest(lot, newKey('hold')));
          expect(sockets.openTo(sandbox.port)).toBeGreaterThan(0);

          await own.close();
          await own.close();

          await eventually('every socket and timer released after close()', () => {
            const open = sockets.openTo(sandbox.port);
            const timers = refTimers();
            return open === 0 && timers <= timersBefore
              ? true
              : `${open} sockets open to port ${sandbox.port}, ${timers} timers (${timersBefore} before)`;
          });
          const after = await externalError(own.port.getLot(lot.lotId));
          expect(after.kind).toBe('transient');
        } finally {
          sockets.stop();
        }
      });
    });
  });
}
