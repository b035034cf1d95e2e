import {
  ParentClosePolicy,
  WorkflowIdReusePolicy,
  getExternalWorkflowHandle,
  proxyActivities,
  sleep,
  startChild,
} from '@temporalio/workflow';
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import type { Activities } from '../../activities';
import {
  SearchAttributes,
  scarReceiptSignal,
  type IncomingReceiptInput,
  type IncomingReceiptResult,
} from '../contracts';
import { activityOptions } from '../options';
import { scarWorkflow } from './scar.workflow';

/** How long a rejected receipt waits for its goods receipt in the genealogy: 48 looks, 5 minutes apart. */
const SUPPLIER_WAIT = '5m';
const SUPPLIER_WAITS = 48;

/**
 * One decided receipt (docs/analytics.md#supplier-quality). Rejected: the complaint against the supplier, the block of
 * the received batch and the hold on its purchase order item, each once (intent ledger keys from the receipt). Either
 * way the supplier's open SCAR counts the receipt towards its verification, and a rejection that makes the supplier
 * cross the threshold requests a SCAR.
 */
export async function incomingReceiptWorkflow(input: IncomingReceiptInput): Promise<IncomingReceiptResult> {
  const { site, lotId } = input;
  const erp = proxyActivities<Activities>(activityOptions(input.erpPost));
  const db = proxyActivities<Activities>(activityOptions(input.traceWrite));
  const { plant } = input;
  let receipt = await db.loadIncomingReceipt({ site, lotId, plant });
  // A receipt inspected before its goods receipt reached the genealogy: the complaint needs the supplier, so wait for
  // the sync (bounded; after that the complaint fails visibly, naming what is missing).
  for (let waited = 0; input.decision === 'rejected' && !receipt.supplier && waited < SUPPLIER_WAITS; waited++) {
    await sleep(SUPPLIER_WAIT);
    receipt = await db.loadIncomingReceipt({ site, lotId, plant });
  }
  const result: IncomingReceiptResult = {
    decision: input.decision,
    ...(receipt.supplier ? { supplier: receipt.supplier } : {}),
  };

  if (input.decision === 'rejected') {
    const complaint = await erp.raiseSupplierComplaint({ site, lotId, plant, ...input.complaint });
    result.complaintNotification = complaint.notification;
    const stock = await db.planReceiptBlock({ site, lotId, plant });
    const documents: string[] = [];
    for (const s of stock) {
      const doc = await erp.blockReceivedBatch({ site, lotId, plant, stock: s });
      documents.push(`${doc.materialDocumentYear}/${doc.materialDocument}`);
    }
    if (documents.length > 0) result.blockDocument = documents.join(',');
    const hold = await erp.holdPurchaseOrder({ site, lotId });
    if (hold) result.purchaseOrderHold = `${hold.purchaseOrder}/${hold.purchaseOrderItem}:${hold.code}`;
    await db.recordReceiptOutcome({ site, lotId, ...result });
  }

  if (!receipt.supplier) return result;
  const supplier = receipt.supplier;
  const open = await db.openScarOf({ supplier });
  if (open) {
    result.scarWorkflowId = open;
    try {
      await getExternalWorkflowHandle(open).signal(scarReceiptSignal, {
        site,
        lotId,
        decision: input.decision,
        decidedAt: input.decidedAt,
      });
    } catch {
      // The SCAR closed between the look-up and the signal: nothing left to verify.
    }
    return result;
  }
  if (input.decision === 'rejected' && input.scarThreshold.auto) {
    const scar = await db.requestScarOnThreshold({
      site,
      lotId,
      supplier,
      decidedAt: input.decidedAt,
      threshold: input.scarThreshold,
    });
    if (scar) {
      result.scarWorkflowId = scar.workflowId;
      if (scar.start) {
        try {
          await startChild(scarWorkflow, {
            workflowId: scar.workflowId,
            taskQueue: input.taskQueue,
            parentClosePolicy: ParentClosePolicy.ABANDON,
            workflowIdReusePolicy: WorkflowIdReusePolicy.REJECT_DUPLICATE,
            typedSearchAttributes: [{ key: SearchAttributes.supplier, value: supplier }],
            args: [
              {
                scarId: scar.scarId,
                supplier,
                trigger: 'threshold',
                reason: scar.reason,
                material: receipt.material,
                evidence: scar.evidence,
                settings: input.scar,
                notify: input.notify,
                traceWrite: input.traceWrite,
              },
            ],
          });
        } catch (err) {
          if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
        }
      }
    }
  }
  return result;
}
