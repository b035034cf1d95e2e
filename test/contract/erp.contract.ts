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
import {
  connectorUnderContract,
  externalError,
  requestsOfCreates,
  type ContractSandbox,
  type ContractSetup,
} from './contract-support';

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
export interface ErpSandbox extends ContractSandbox {
  /** A batch with `quantity` in unrestricted stock, for the calling test alone. */
  newBatch(quantity: number): Promise<ErpBatch>;
  /** A material the ERP does not know. */
  unknownMaterial: string;
  /** A notification number the ERP does not know. */
  unknownNotification: string;
  /** "Commit the change, then drop the response" for the next create of this kind. */
  dropNextResponse(create: 'notification' | 'notification-item' | 'goods-movement'): Promise<void>;
  /** Documents in the whole ERP: the contract compares before and after. Run one suite at a time. */
  counts(): Promise<ErpDocumentCounts>;
  /** A batch's stock, in its unit. */
  stock(batch: ErpBatch): Promise<{ unrestricted: number; blocked: number }>;
}

export type ErpContractSetup = ContractSetup<ErpSandbox, ErpPort>;

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
    const under = connectorUnderContract('ERP', setup, async (erp, { sandbox }) => {
      await erp.port.postGoodsMovement(movement(await sandbox.newBatch(100), '344', 1));
    });

    it("unrestrictedStock: the batch's unrestricted quantity per storage location, less what a 344 blocked", async () => {
      const batch = await under.sandbox.newBatch(20);
      await under.connector.port.postGoodsMovement(movement(batch, '344', 5));
      expect(await under.connector.port.unrestrictedStock(batch)).toEqual([
        { storageLocation: batch.storageLocation, quantity: 15, unit: batch.unit },
      ]);
      await under.connector.port.postGoodsMovement(movement(batch, '344', 15));
      expect(await under.connector.port.unrestrictedStock(batch)).toEqual([]);
    });

    describe('idempotency-key look-up: a retry with the same key (lookupFirst: true) finds the first result', () => {
      it('raiseQualityNotification', async () => {
        const req = notificationRequest(await under.sandbox.newBatch(100));
        const before = await under.sandbox.counts();

        const first = await under.connector.port.raiseQualityNotification(req, { lookupFirst: false });
        const again = await under.connector.port.raiseQualityNotification(req, { lookupFirst: true });

        expect(again).toEqual(first);
        expect(added(before, await under.sandbox.counts())).toEqual({
          notifications: 1,
          notificationItems: 1,
          materialDocuments: 0,
        });
      });

      it('addNotificationItem', async () => {
        const { notification } = await under.connector.port.raiseQualityNotification(
          notificationRequest(await under.sandbox.newBatch(100)),
        );
        const item = defectItem('dent, station S2');
        const before = await under.sandbox.counts();

        const first = await under.connector.port.addNotificationItem(notification, item, { lookupFirst: false });
        const again = await under.connector.port.addNotificationItem(notification, item, { lookupFirst: true });

        expect(again).toEqual(first);
        expect(added(before, await under.sandbox.counts()).notificationItems).toBe(1);
      });

      it('postGoodsMovement: one document, the stock moved once', async () => {
        const batch = await under.sandbox.newBatch(100);
        const req = movement(batch, '344', 5);
        const before = await under.sandbox.counts();

        const first = await under.connector.port.postGoodsMovement(req, { lookupFirst: false });
        const again = await under.connector.port.postGoodsMovement(req, { lookupFirst: true });

        expect(again).toEqual(first);
        expect(added(before, await under.sandbox.counts()).materialDocuments).toBe(1);
        expect(await under.sandbox.stock(batch)).toEqual({ unrestricted: 95, blocked: 5 });
      });

      it('completeNotification: completing a completed notification is no error', async () => {
        const { notification } = await under.connector.port.raiseQualityNotification(
          notificationRequest(await under.sandbox.newBatch(100)),
        );

        await under.connector.port.completeNotification(notification);
        await expect(under.connector.port.completeNotification(notification)).resolves.toBeUndefined();
      });
    });

    describe('lookupFirst: false (no earlier attempt): a fresh create is one request, the create itself', () => {
      const oneWrite = [expect.stringMatching(/^(POST|PUT|PATCH) /)];

      it('raiseQualityNotification', async () => {
        const batch = await under.sandbox.newBatch(100);
        const { lookedUp, direct } = await requestsOfCreates(under.sandbox.port, (lookupFirst) =>
          under.connector.port.raiseQualityNotification(notificationRequest(batch), { lookupFirst }),
        );

        expect(direct).toEqual(oneWrite);
        expect(lookedUp.length).toBeGreaterThan(direct.length);
      });

      it('addNotificationItem', async () => {
        const { notification } = await under.connector.port.raiseQualityNotification(
          notificationRequest(await under.sandbox.newBatch(100)),
        );
        const { lookedUp, direct } = await requestsOfCreates(under.sandbox.port, (lookupFirst) =>
          under.connector.port.addNotificationItem(notification, defectItem('dent, station S2'), { lookupFirst }),
        );

        expect(direct).toEqual(oneWrite);
        expect(lookedUp.length).toBeGreaterThan(direct.length);
      });

      it('postGoodsMovement', async () => {
        const batch = await under.sandbox.newBatch(100);
        const { lookedUp, direct } = await requestsOfCreates(under.sandbox.port, (lookupFirst) =>
          under.connector.port.postGoodsMovement(movement(batch, '344', 1), { lookupFirst }),
        );

        expect(direct).toEqual(oneWrite);
        expect(lookedUp.length).toBeGreaterThan(direct.length);
      });
    });

    describe('commit but drop the response: transient, naming the operation; the retry finds the committed document (exactly one)', () => {
      it('raiseQualityNotification', async () => {
        const req = notificationRequest(await under.sandbox.newBatch(100));
        const before = await under.sandbox.counts();
        await under.sandbox.dropNextResponse('notification');

        const lost = await externalError(under.connector.port.raiseQualityNotification(req, { lookupFirst: false }));
        const retried = await under.connector.port.raiseQualityNotification(req, { lookupFirst: true });

        expect(lost.kind).toBe('transient');
        expect(lost.message).toContain('raiseQualityNotification');
        expect(retried).toEqual({ notification: expect.any(String), item: expect.any(String) });
        expect(added(before, await under.sandbox.counts())).toEqual({
          notifications: 1,
          notificationItems: 1,
          materialDocuments: 0,
        });
      });

      it('addNotificationItem', async () => {
        const { notification } = await under.connector.port.raiseQualityNotification(
          notificationRequest(await under.sandbox.newBatch(100)),
        );
        const item = defectItem('dent, station S2');
        const before = await under.sandbox.counts();
        await under.sandbox.dropNextResponse('notification-item');

        const lost = await externalError(
          under.connector.port.addNotificationItem(notification, item, { lookupFirst: false }),
        );
        const retried = await under.connector.port.addNotificationItem(notification, item, { lookupFirst: true });

        expect(lost.kind).toBe('transient');
        expect(lost.message).toContain('addNotificationItem');
        expect(retried).toEqual({ item: expect.any(String) });
        expect(added(before, await under.sandbox.counts()).notificationItems).toBe(1);
      });

      it('postGoodsMovement: one document, the stock moved once', async () => {
        const batch = await under.sandbox.newBatch(100);
        const req = movement(batch, '344', 5);
        const before = await under.sandbox.counts();
        await under.sandbox.dropNextResponse('goods-movement');

        const lost = await externalError(under.connector.port.postGoodsMovement(req, { lookupFirst: false }));
        const retried = await under.connector.port.postGoodsMovement(req, { lookupFirst: true });

        expect(lost.kind).toBe('transient');
        expect(lost.message).toContain('postGoodsMovement');
        expect(retried.materialDocument).toEqual(expect.any(String));
        expect(added(before, await under.sandbox.counts()).materialDocuments).toBe(1);
        expect(await under.sandbox.stock(batch)).toEqual({ unrestricted: 95, blocked: 5 });
      });
    });

    describe('retry classification: only transient is retried', () => {
      it('transient: the ERP unavailable, for a create', async () => {
        const batch = await under.sandbox.newBatch(100);
        await under.sandbox.outage();

        const err = await externalError(under.connector.port.postGoodsMovement(movement(batch, '344', 1)));

        expect(err.kind).toBe('transient');
      });

      it('validation: a material the ERP does not know', async () => {
        const batch = await under.sandbox.newBatch(100);

        const err = await externalError(
          under.connector.port.postGoodsMovement({
            ...movement(batch, '344', 1),
            material: under.sandbox.unknownMaterial,
          }),
        );

        expect(err.kind).toBe('validation');
      });

      it('rejected: blocking more than the batch holds, and nothing is posted', async () => {
        const batch = await under.sandbox.newBatch(3);
        const before = await under.sandbox.counts();

        const err = await externalError(under.connector.port.postGoodsMovement(movement(batch, '344', 5)));

        expect(err.kind).toBe('rejected');
        expect(added(before, await under.sandbox.counts()).materialDocuments).toBe(0);
        expect(await under.sandbox.stock(batch)).toEqual({ unrestricted: 3, blocked: 0 });
      });

      it('not-found: a defect item for a notification the ERP does not know', async () => {
        const err = await externalError(
          under.connector.port.addNotificationItem(under.sandbox.unknownNotification, defectItem('scratch')),
        );

        expect(err.kind).toBe('not-found');
      });
    });
  });
}
