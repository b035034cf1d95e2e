/**
 * The contain stage's lot rules and exactly-once discipline (docs/recall.md#contain), over typed fakes of the MES, the
 * ERP, the intent ledger and the containment rows (PostgreSQL and the simulators: test/integration/recall-real.test.ts).
 */
import { MockActivityEnvironment } from '@temporalio/testing';
import { ExternalSystemError } from '../../activities/errors';
import {
  createRecallContainActivities,
  type ContainBatchResult,
} from '../../activities/recall/recall-contain.activities';
import { FakeErp, FakeMes, MemoryContainment, MemoryIntentLedger } from '../support/fake-ports';

const erpOf = (batch: string) => ({ plant: '1010', material: 'FIN-1', batch });
const mesOf = (lotId: string) => ({ site: 'PLANT1', lotId });

function build() {
  const mes = new FakeMes();
  const erp = new FakeErp();
  const ledger = new MemoryIntentLedger();
  const rows = new MemoryContainment();
  const activities = createRecallContainActivities({ containment: rows, mesFor: () => mes, erpFor: () => erp, ledger });
  const contain = (): Promise<ContainBatchResult> =>
    new MockActivityEnvironment().run(activities.containRecallBatch, {
      recallId: 'R1',
      site: 'PLANT1',
      batch: 0,
      concurrency: 2,
      reason: 'resin',
    });
  return { mes, erp, ledger, rows, contain };
}

test('each lot gets what the rule says: held, already held by a case or the MES, blocked, or left alone', async () => {
  const { mes, erp, rows, contain } = build();
  for (const id of ['F1', 'F2', 'F3', 'F4', 'F5']) {
    mes.addLot({ lotId: id });
    erp.stock.set(`FIN-1/${id}`, [{ storageLocation: '0001', quantity: 10, unit: 'PC' }]);
  }
  mes.lots.get('F3')!.status = 'ON_HOLD';
  mes.lots.get('F4')!.status = 'SCRAPPED';
  erp.stock.set('FIN-1/R1', [{ storageLocation: '0001', quantity: 5, unit: 'KG' }]);
  rows.add({ lotKey: 'F1', mes: mesOf('F1'), erp: erpOf('F1') });
  rows.add({ lotKey: 'F2', mes: mesOf('F2'), erp: erpOf('F2'), openCaseHold: 'H-CASE' });
  rows.add({ lotKey: 'F3', mes: mesOf('F3'), erp: erpOf('F3') });
  rows.add({ lotKey: 'F4', mes: mesOf('F4'), erp: erpOf('F4') });
  rows.add({ lotKey: 'F5', mes: mesOf('F5') });
  rows.add({ lotKey: 'R1', erp: erpOf('R1') });
  rows.add({ lotKey: 'E1', erp: erpOf('E1') });

  const result = await contain();

  const state = (k: string) => {
    const l = rows.lots.get(k)!;
    return [l.state, l.mesState, l.erpState];
  };
  expect(Object.fromEntries([...rows.lots.keys()].map((k) => [k, state(k)]))).toEqual({
    F1: ['held', 'held', 'blocked'],
    F2: ['already-held', 'lot-case', 'blocked'],
    F3: ['already-held', 'mes-hold', 'blocked'],
    F4: ['held', 'lot-closed', 'blocked'],
    F5: ['held', 'held', 'no-erp-batch'],
    R1: ['held', 'no-mes-lot', 'blocked'],
    E1: ['nothing-to-block', 'no-mes-lot', 'nothing-to-block'],
  });
  expect(rows.lots.get('F2')!.holdId).toBe('H-CASE');
  expect([...mes.holds.values()].map((h) => [h.lotId, h.idempotencyKey, h.defectClass])).toEqual([
    ['F1', 'recall:R1:F1:mes-hold', 'recall'],
    ['F5', 'recall:R1:F5:mes-hold', 'recall'],
  ]);
  expect(erp.documents.map((d) => [d.batch, d.movementType, d.quantity, d.idempotencyKey])).toEqual(
    expect.arrayContaining([['R1', '344', 5, 'recall:R1:R1:erp-block:0001']]),
  );
  expect(erp.documents).toHaveLength(5);
  expect(result).toEqual({
    stopped: false,
    counts: expect.objectContaining({ lots: 7, held: 4, alreadyHeld: 2, nothingToBlock: 1, blocked: 5, failed: 0 }),
  });
});

test('a transient fault fails the batch after its other lots; the retry makes nothing twice', async () => {
  const { mes, erp, rows, ledger, contain } = build();
  for (const id of ['F1', 'F2', 'F3']) {
    mes.addLot({ lotId: id });
    erp.stock.set(`FIN-1/${id}`, [{ storageLocation: '0001', quantity: 10, unit: 'PC' }]);
    rows.add({ lotKey: id, mes: mesOf(id), erp: erpOf(id) });
  }
  erp.failures.set('postGoodsMovement', new ExternalSystemError('sap', 'transient', 'connection reset'));

  await expect(contain()).rejects.toThrow('connection reset');
  expect([...rows.lots.values()].filter((l) => l.state === 'pending')).toHaveLength(1);
  const failed = [...rows.lots.values()].find((l) => l.state === 'pending')!;
  // Its block was decided with the stock the ERP stated; the stock changes meanwhile, the request does not.
  expect(failed.erpState).toBe('blocking');
  erp.stock.set(`FIN-1/${failed.lotKey}`, [{ storageLocation: '0001', quantity: 4, unit: 'PC' }]);

  await contain();
  expect([...rows.lots.values()].map((l) => l.state)).toEqual(['held', 'held', 'held']);
  expect(mes.holds.size).toBe(3);
  expect(erp.documents.map((d) => d.quantity)).toEqual([10, 10, 10]);
  // The retried create looked its key up first: the ledger knew an attempt had begun.
  expect(erp.createOptions.get(`recall:R1:${failed.lotKey}:erp-block:0001`)).toEqual({ lookupFirst: true });
  expect(ledger.intents.size).toBe(6);
});

test('a refusal fails its lot only; a recorded cancel starts no lot', async () => {
  const { mes, rows, contain } = build();
  for (const id of ['F1', 'F2']) {
    mes.addLot({ lotId: id });
    rows.add({ lotKey: id, mes: mesOf(id) });
  }
  mes.failures.set('holdLot', new ExternalSystemError('mes', 'rejected', 'LOT_CLOSED', 409));
  const result = await contain();
  expect(result.counts).toMatchObject({ held: 1, failed: 1 });
  expect([...rows.lots.values()].find((l) => l.state === 'failed')!.error).toContain('LOT_CLOSED');

  rows.add({ lotKey: 'F3', mes: mesOf('F3') });
  mes.addLot({ lotId: 'F3' });
  await rows.cancel();
  expect(await contain()).toMatchObject({ stopped: true, counts: { pending: 1 } });
  expect(mes.calls.filter((c) => c.endsWith('F3'))).toEqual([]);
});
