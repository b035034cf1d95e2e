/**
 * The ERP connector contract: what every connector of role `erp` must do, whatever the ERP behind it. A
 * `*.contract.test.ts` file calls `erpConnectorContract` with a sandbox (the in-repo SAP simulator, or a vendor's
 * test system) and a way to open the connector against it; README.md says how to run it against your own.
 */
import type {
  ErpDefectItem,
  ErpGoodsMovementRequest,
  ErpPort,
  ErpQualityNotificationRequest,
} from '../../activities/ports';
import type { ConnectorInstance } from '../../infra/connectors/define';
import { eventually, externalError, refTimers, watchClientSockets } from './contract-support';

/** Where a batch of material lives in the ERP. */
export interface ErpBatch {
  material: string;
  plant: string;
  storageLocation: string;
  batch: string;
  unit: string;
}

export interface ErpDocumentCounts {
  notifications: number;
  notificationItems: number;
  materialDocuments: number;
}

/** A test system the contract drives, plus what it reads past the connector to check the outcome. */
export interface ErpSandbox {
  /** The port the ERP listens on: the connector's sockets to it must be gone after close(). */
  port: number;
  /** A batch with `quantity` in unrestricted stock, for the calling test alone. */
  newBatch(quantity: number): Promise<ErpBatch>;
  /** A material the ERP does not know. */
  unknownMaterial: string;
  /** A notification number the ERP does not know. */
  unknownNotification: string;
  /** "Commit the change, then drop the response" for the next create of this kind. */
  dropNextResponse(create: 'notification' | 'notification-item' | 'goods-movement'): Promise<void>;
  /** The ERP answers every call as unavailable (HTTP 503, or the vendor's equivalent) until clearFaults(). */
  outage(): Promise<void>;
  /** Ends every fault armed by this sandbox. Run after each test. */
  clearFaults(): Promise<void>;
  /** Documents in the whole ERP: the contract compares before and after. Run one suite at a time. */
  counts(): Promise<ErpDocumentCounts>;
  /** A batch's stock, in its unit. */
  stock(batch: ErpBatch): Promise<{ unrestricted: number; blocked: number }>;
}

export interface ErpContractSetup {
  /** Starts the sandbox (or reaches it) before the suite. */
  start(): Promise<ErpSandbox>;
  /** Opens a new instance of the connector under test against the sandbox. The contract closes it. */
  connect(sandbox: ErpSandbox): Promise<ConnectorInstance<ErpPort>>;
  /** After the suite, once every instance is closed. */
  stop(): Promise<void>;
}

let keySeq = 0;
/** Idempotency keys unique to this run, so a sandbox kept between runs never answers from an earlier one. */
const newKey = (step: string) => `contract-${process.pid}-${Date.now().toString(36)}-${++keySeq}:${step}`;

const defectItem = (text: string): ErpDefectItem => ({
  idempotencyKey: newKey('item'),
  defectCodeGroup: 'VISUAL',
  defectCode: '0001',
  text,
});

const notificationRequest = (b: ErpBatch): ErpQualityNotificationRequest => ({
  idempotencyKey: newKey('notification'),
  notificationType: 'F3',
  text: 'Vision reject: scratch on flange',
  material: b.material,
  plant: b.plant,
  batch: b.batch,
  quantity: 1,
  unit: b.unit,
  firstItem: defectItem('scratch, station S1'),
});

const movement = (
  b: ErpBatch,
  movementType: ErpGoodsMovementRequest['movementType'],
  quantity: number,
): ErpGoodsMovementRequest => ({
  idempotencyKey: newKey('movement'),
  movementType,
  material: b.material,
  plant: b.plant,
  storageLocation: b.storageLocation,
  batch: b.batch,
  quantity,
  unit: b.unit,
  headerText: 'Holdfast contract',
});

const added = (before: ErpDocumentCounts, after: ErpDocumentCounts): ErpDocumentCounts => ({
  notifications: after.notifications - before.notifications,
  notificationItems: after.notificationItems - before.notificationItems,
  materialDocuments: after.materialDocuments - before.materialDocuments,
});

export function erpConnectorContract(name: string, setup: ErpContractSetup): void {
  describe(`ERP connector contract: ${name}`, () => {
    let sandbox: ErpSandbox;
    let erp: ConnectorInstance<ErpPort>;
    const opened: ConnectorInstance<ErpPort>[] = [];
    const connect = async () => {
      const instance = await setup.connect(sandbox);
      opened.push(instance);
      return instance;
    };

    beforeAll(async () => {
      sandbox = await setup.start();
      erp = await connect();
    });
    afterEach(async () => {
      await sandbox.clearFaults();
    });
    afterAll(async () => {
      await Promise.allSettled(opened.map((c) => c.close()));
      await setup.stop();
    });

    describe('health', () => {
      it('passes its health check, and fails it as transient while the ERP is unavailable', async () => {
        await expect(erp.healthCheck()).resolves.not.toThrow();
        await sandbox.outage();

        const err = await externalError(erp.healthCheck());

        expect(err.kind).toBe('transient');
      });
    });

    describe('idempotency-key look-up: a retry with the same key finds the first result', () => {
      it('raiseQualityNotification', async () => {
        const req = notificationRequest(await sandbox.newBatch(100));
        const before = await sandbox.counts();

        const first = await erp.port.raiseQualityNotification(req);
        const again = await erp.port.raiseQualityNotification(req);

        expect(again).toEqual(first);
        expect(added(before, await sandbox.counts())).toEqual({
          notifications: 1,
          notificationItems: 1,
          materialDocuments: 0,
        });
      });

      it('addNotificationItem', async () => {
        const { notification } = await erp.port.raiseQualityNotification(
          notificationRequest(await sandbox.newBatch(100)),
        );
        const item = defectItem('dent, station S2');
        const before = await sandbox.counts();

        const first = await erp.port.addNotificationItem(notification, item);
        const again = await erp.port.addNotificationItem(notification, item);

        expect(again).toEqual(first);
        expect(added(before, await sandbox.counts()).notificationItems).toBe(1);
      });

      it('postGoodsMovement: one document, the stock moved once', async () => {
        const batch = await sandbox.newBatch(100);
        const req = movement(batch, '344', 5);
        const before = await sandbox.counts();

        const first = await erp.port.postGoodsMovement(req);
        const again = await erp.port.postGoodsMovement(req);

        expect(again).toEqual(first);
        expect(added(before, await sandbox.counts()).materialDocuments).toBe(1);
        expect(await sandbox.stock(batch)).toEqual({ unrestricted: 95, blocked: 5 });
      });

      it('completeNotification: completing a completed notification is no error', async () => {
        const { notification } = await erp.port.raiseQualityNotification(
          notificationRequest(await sandbox.newBatch(100)),
        );

        await erp.port.completeNotification(notification);
        await expect(erp.port.completeNotification(notification)).resolves.toBeUndefined();
      });
    });

    describe('commit but drop the response: transient, naming the operation; the retry finds the committed document (exactly one)', () => {
      it('raiseQualityNotification', async () => {
        const req = notificationRequest(await sandbox.newBatch(100));
        const before = await sandbox.counts();
        await sandbox.dropNextResponse('notification');

        const lost = await externalError(erp.port.raiseQualityNotification(req));
        const retried = await erp.port.raiseQualityNotification(req);

        expect(lost.kind).toBe('transient');
        expect(lost.message).toContain('raiseQualityNotification');
        expect(retried).toEqual({ notification: expect.any(String), item: expect.any(String) });
        expect(added(before, await sandbox.counts())).toEqual({
          notifications: 1,
          notificationItems: 1,
          materialDocuments: 0,
        });
      });

      it('addNotificationItem', async () => {
        const { notification } = await erp.port.raiseQualityNotification(
          notificationRequest(await sandbox.newBatch(100)),
        );
        const item = defectItem('dent, station S2');
        const before = await sandbox.counts();
        await sandbox.dropNextResponse('notification-item');

        const lost = await externalError(erp.port.addNotificationItem(notification, item));
        const retried = await erp.port.addNotificationItem(notification, item);

        expect(lost.kind).toBe('transient');
        expect(lost.message).toContain('addNotificationItem');
        expect(retried).toEqual({ item: expect.any(String) });
        expect(added(before, await sandbox.counts()).notificationItems).toBe(1);
      });

      it('postGoodsMovement: one document, the stock moved once', async () => {
        const batch = await sandbox.newBatch(100);
        const req = movement(batch, '344', 5);
        const before = await sandbox.counts();
        await sandbox.dropNextResponse('goods-movement');

        const lost = await externalError(erp.port.postGoodsMovement(req));
        const retried = await erp.port.postGoodsMovement(req);

        expect(lost.kind).toBe('transient');
        expect(lost.message).toContain('postGoodsMovement');
        expect(retried.materialDocument).toEqual(expect.any(String));
        expect(added(before, await sandbox.counts()).materialDocuments).toBe(1);
        expect(await sandbox.stock(batch)).toEqual({ unrestricted: 95, blocked: 5 });
      });
    });

    describe('retry classification: only transient is retried', () => {
      it('transient: the ERP unavailable, for a create', async () => {
        const batch = await sandbox.newBatch(100);
        await sandbox.outage();

        const err = await externalError(erp.port.postGoodsMovement(movement(batch, '344', 1)));

        expect(err.kind).toBe('transient');
      });

      it('validation: a material the ERP does not know', async () => {
        const batch = await sandbox.newBatch(100);

        const err = await externalError(
          erp.port.postGoodsMovement({ ...movement(batch, '344', 1), material: sandbox.unknownMaterial }),
        );

        expect(err.kind).toBe('validation');
      });

      it('rejected: blocking more than the batch holds, and nothing is posted', async () => {
        const batch = await sandbox.newBatch(3);
        const before = await sandbox.counts();

        const err = await externalError(erp.port.postGoodsMovement(movement(batch, '344', 5)));

        expect(err.kind).toBe('rejected');
        expect(added(before, await sandbox.counts()).materialDocuments).toBe(0);
        expect(await sandbox.stock(batch)).toEqual({ unrestricted: 3, blocked: 0 });
      });

      it('not-found: a defect item for a notification the ERP does not know', async () => {
        const err = await externalError(
          erp.port.addNotificationItem(sandbox.unknownNotification, defectItem('scratch')),
        );

        expect(err.kind).toBe('not-found');
      });
    });

    describe('close', () => {
      it('releases every socket and timer, and later calls fail as transient', async () => {
        const batch = await sandbox.newBatch(100);
        // The sandbox and the shared instance have warmed up whatever they pool; only the new instance is measured.
        await erp.port.postGoodsMovement(movement(batch, '344', 1));
        const timersBefore = refTimers();
        const sockets = watchClientSockets();
        try {
          const own = await connect();
          await own.healthCheck();
          await own.port.postGoodsMovement(movement(batch, '344', 1));
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
          const after = await externalError(own.port.postGoodsMovement(movement(batch, '344', 1)));
          expect(after.kind).toBe('transient');
        } finally {
          sockets.stop();
        }
      });
    });
  });
}
