/**
 * The receipt workflow (docs/analytics.md#supplier-quality) on the time-skipping test server with stub activities: a
 * rejected receipt whose goods receipt reaches the genealogy only later waits for it (minutes skipped), then raises
 * the complaint, blocks each storage location's stock and holds the purchase order item, in that order.
 */
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { randomUUID } from 'node:crypto';
import type { Activities } from '../../activities';
import type { IncomingReceiptView } from '../../activities/supplier/supplier.activities';
import { loadConfig } from '../../infra/config/load';
import { receiptWorkflowInput } from '../../infra/supplier/receipt-relay';
import type { IncomingReceiptResult } from '../../workflows/contracts';
import { startTimeSkippingEnvironment } from '../support/time-skipping';
import { installQuietRuntime } from '../support/workflow-harness';

jest.setTimeout(120_000);

let env: TestWorkflowEnvironment;
beforeAll(async () => {
  installQuietRuntime();
  env = await startTimeSkippingEnvironment();
}, 600_000);
afterAll(async () => {
  await env?.teardown();
});

test('a rejected receipt waits for its goods receipt, then complains, blocks and holds once each', async () => {
  const calls: string[] = [];
  let loads = 0;
  const receipt = (supplier: string | null): IncomingReceiptView => ({
    site: 'PLANT1',
    lotId: 'B7',
    plant: '1010',
    material: 'M1',
    decision: 'rejected',
    decisionReason: 'critical defect crack in part 1',
    inspected: 1,
    defective: 1,
    defects: { crack: 1 },
    lotKey: supplier ? 'erp:1010/M1/B7' : null,
    supplier,
    supplierBatch: null,
    purchaseOrder: supplier ? '4500000007' : null,
    purchaseOrderItem: supplier ? '00010' : null,
    goodsReceipt: null,
  });
  const stubs: Partial<Activities> = {
    // The goods receipt is synced between the second and third look.
    loadIncomingReceipt: async () => receipt(++loads >= 3 ? 'V7' : null),
    raiseSupplierComplaint: async (r) => {
      calls.push(`complaint ${r.notificationType}`);
      return { notification: '200000007', item: '1' };
    },
    planReceiptBlock: async () => [
      { storageLocation: '0001', quantity: 300, unit: 'PC' },
      { storageLocation: '0002', quantity: 200, unit: 'PC' },
    ],
    blockReceivedBatch: async ({ stock }) => {
      calls.push(`block ${stock.storageLocation} ${stock.quantity}`);
      return { materialDocument: `49000000${stock.storageLocation}`, materialDocumentYear: '2026' };
    },
    holdPurchaseOrder: async () => {
      calls.push('hold');
      return { purchaseOrder: '4500000007', purchaseOrderItem: '00010', blocked: true, code: 'S' };
    },
    recordReceiptOutcome: async () => {
      calls.push('recorded');
    },
    openScarOf: async () => undefined,
    requestScarOnThreshold: async () => undefined,
  };
  const taskQueue = `receipt-${randomUUID()}`;
  const worker = await Worker.create({
    connection: env.nativeConnection,
    taskQueue,
    workflowsPath: require.resolve('../../workflows'),
    activities: stubs,
  });
  const config = loadConfig();
  const result = await worker.runUntil(async () => {
    const started = await env.currentTimeMs();
    const r = (await env.client.workflow.execute('incomingReceiptWorkflow', {
      workflowId: `incoming-receipt-PLANT1-B7-${randomUUID()}`,
      taskQueue,
      args: [
        receiptWorkflowInput(config, {
          site: 'PLANT1',
          lotId: 'B7',
          decision: 'rejected',
          reason: 'critical defect crack in part 1',
          decidedAt: new Date(started).toISOString(),
        }),
      ],
    })) as IncomingReceiptResult;
    // Two waits of five minutes, skipped.
    expect((await env.currentTimeMs()) - started).toBeGreaterThanOrEqual(10 * 60_000);
    return r;
  });
  expect(loads).toBe(3);
  expect(calls).toEqual(['complaint Q2', 'block 0001 300', 'block 0002 200', 'hold', 'recorded']);
  expect(result).toEqual({
    decision: 'rejected',
    supplier: 'V7',
    complaintNotification: '200000007',
    blockDocument: '2026/490000000001,2026/490000000002',
    purchaseOrderHold: '4500000007/00010:S',
  });
});
