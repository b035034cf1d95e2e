// A workflow bundle for test/integration/recall-notify.test.ts: the notify stage on its own, as the recall workflow
// awaits it, over the real child workflow.
import {
  notifyRecallCustomers,
  type NotifyRecallCustomersCounts,
  type NotifyRecallCustomersInput,
} from '../../workflows/recall/recall-notification.workflow';

export { recallNotificationWorkflow } from '../../workflows/recall/recall-notification.workflow';

export async function notifyStageWorkflow(input: NotifyRecallCustomersInput): Promise<NotifyRecallCustomersCounts> {
  return notifyRecallCustomers(input);
}
