import {
  ApplicationFailure,
  ParentClosePolicy,
  condition,
  getExternalWorkflowHandle,
  proxyActivities,
  setCurrentDetails,
  setHandler,
  startChild,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import type { Activities } from '../../activities';
import {
  ErrorType,
  SearchAttributes,
  recallAcknowledgedSignal,
  recallNotificationSentSignal,
  recallNotificationStatusQuery,
  type ActivityPreset,
  type RecallAcknowledgement,
  type RecallNotificationInput,
  type RecallNotificationStage,
  type RecallNotificationStatus,
} from '../contracts';
import { activityOptions } from '../options';

export interface NotifyRecallCustomersInput {
  recallId: string;
  site: string;
  preset: ActivityPreset;
}

export interface NotifyRecallCustomersCounts {
  customers: number;
  shipTos: number;
  notifications: number;
  sent: number;
}

/**
 * A real recall's notify stage (docs/recall.md#notify), awaited inside the recall workflow: plans one notification
 * per customer and ship-to, starts a child workflow for each (at most `concurrency` sending at once) and returns once
 * every one was sent. The children wait for the customers' acknowledgements on their own: they are abandoned when the
 * recall closes, so its report does not wait on a customer. A child that fails to send fails the stage.
 */
export async function notifyRecallCustomers(input: NotifyRecallCustomersInput): Promise<NotifyRecallCustomersCounts> {
  const act = proxyActivities<Activities>(activityOptions(input.preset));
  const { recallId, site } = input;
  const { policy, notifications } = await act.planRecallNotifications({ recallId, site });
  const sent = new Set(notifications.filter((n) => n.sentAt !== null).map((n) => n.notificationId));
  setHandler(recallNotificationSentSignal, ({ notificationId }) => void sent.add(notificationId));
  const failures: string[] = [];
  const sending = new Set<string>();
  const inFlight = () => [...sending].filter((id) => !sent.has(id)).length;

  for (const n of notifications.filter((p) => p.sentAt === null)) {
    await condition(() => inFlight() < policy.concurrency || failures.length > 0);
    if (failures.length > 0) break;
    sending.add(n.notificationId);
    const child: RecallNotificationInput = {
      recallId,
      site,
      notificationId: n.notificationId,
      customer: n.customer,
      shipTo: n.shipTo,
      policy,
      preset: input.preset,
    };
    try {
      const handle = await startChild(recallNotificationWorkflow, {
        workflowId: n.workflowId,
        args: [child],
        parentClosePolicy: ParentClosePolicy.ABANDON,
        typedSearchAttributes: [
          { key: SearchAttributes.site, value: site },
          { key: SearchAttributes.recallKind, value: 'real' },
          { key: SearchAttributes.recallState, value: 'notification-sending' },
        ],
        staticSummary: `Recall ${recallId}: notify ${n.customer} / ${n.shipTo}`.slice(0, 190),
      });
      handle.result().catch((err: unknown) => {
        if (!sent.has(n.notificationId)) failures.push(`${n.notificationId}: ${(err as Error).message}`);
      });
    } catch (err) {
      // Started by an earlier run of this stage: that child sends and signals this workflow id.
      if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
    }
  }
  await condition(() => failures.length > 0 || notifications.every((n) => sent.has(n.notificationId)));
  if (failures.length > 0) {
    throw ApplicationFailure.create({
      message: `recall ${recallId}: ${failures.length} notification(s) could not be sent: ${failures.join('; ')}`,
      type: ErrorType.BusinessRejection,
      nonRetryable: true,
    });
  }
  return {
    customers: new Set(notifications.map((n) => n.customer)).size,
    shipTos: notifications.length,
    notifications: notifications.length,
    sent: sent.size,
  };
}

/**
 * One customer and ship-to of a real recall: sends the notification exactly once, tells the recall it went out, then
 * waits for the `acknowledged` signal, escalating to the site's escalation target after `ackWithin` and again every
 * `escalateEvery`, `escalationLimit` times at most, and keeps waiting after that.
 */
export async function recallNotificationWorkflow(input: RecallNotificationInput): Promise<RecallNotificationStatus> {
  const act = proxyActivities<Activities>(activityOptions(input.preset));
  const { recallId, notificationId, policy } = input;
  const { workflowId } = workflowInfo();
  const status: RecallNotificationStatus = {
    notificationId,
    customer: input.customer,
    shipTo: input.shipTo,
    stage: 'sending',
    escalations: [],
  };
  let acknowledgement: RecallAcknowledgement | undefined;
  setHandler(recallAcknowledgedSignal, (ack) => {
    // The first acknowledgement is the one recorded; a repeated request changes nothing.
    acknowledgement ??= ack;
  });
  setHandler(recallNotificationStatusQuery, () => status, { description: 'Sent, escalations, acknowledgement.' });
  const enter = (stage: RecallNotificationStage) => {
    status.stage = stage;
    upsertSearchAttributes([{ key: SearchAttributes.recallState, value: `notification-${stage}` }]);
    setCurrentDetails(
      [
        `**Recall ${recallId}**: notification of ${input.customer}, ship-to ${input.shipTo}`,
        '',
        `- State: ${stage}`,
        `- Sent: ${status.sentAt ?? 'not yet'}${status.reference ? ` (${status.reference})` : ''}`,
        `- Escalations: ${status.escalations.map((e) => `#${e.level} at ${e.at}`).join(', ') || 'none'}`,
        `- Acknowledged: ${
          status.acknowledgement
            ? `${status.acknowledgement.acknowledgedAt} by ${status.acknowledgement.contact} (${status.acknowledgement.channel}), recorded by ${status.acknowledgement.recordedBy}`
            : 'not yet'
        }`,
      ].join('\n'),
    );
  };
  enter('sending');

  const sent = await act.sendRecallNotification({ recallId, notificationId });
  status.sentAt = sent.sentAt;
  status.reference = sent.reference;
  const parent = workflowInfo().parent;
  if (parent) {
    // The recall may have closed meanwhile (a repeated stage after a reset): then nobody waits for this signal.
    await getExternalWorkflowHandle(parent.workflowId)
      .signal(recallNotificationSentSignal, { notificationId, sentAt: sent.sentAt })
      .catch(() => undefined);
  }
  enter('awaiting-acknowledgement');

  const acknowledged = () => acknowledgement !== undefined;
  let wait = policy.ackWithin;
  while (!acknowledged()) {
    if (status.escalations.length >= policy.escalationLimit) {
      await condition(acknowledged);
      break;
    }
    if (await condition(acknowledged, wait)) break;
    const level = status.escalations.length + 1;
    const at = new Date().toISOString();
    await act.escalateDisposition({
      idempotencyKey: `${workflowId}:escalation:${level}`,
      site: input.site,
      line: '',
      lotId: `recall:${recallId}`,
      lotCaseWorkflowId: workflowId,
      waitingSince: sent.sentAt,
      text:
        `Recall ${recallId}: ${input.customer} (ship-to ${input.shipTo}) has not acknowledged the recall notice sent ` +
        `${sent.sentAt} (${sent.reference}); escalation ${level} of at most ${policy.escalationLimit}.`,
    });
    await act.recordRecallNotificationEscalation({ recallId, notificationId, level, at });
    status.escalations.push({ level, at });
    enter('escalated');
    wait = policy.escalateEvery;
  }

  status.acknowledgement = acknowledgement;
  await act.recordRecallNotificationAcknowledged({ recallId, notificationId, acknowledgement: acknowledgement! });
  enter('acknowledged');
  return status;
}
