import { condition, proxyActivities, setHandler, upsertSearchAttributes, workflowInfo } from '@temporalio/workflow';
import { msToNumber } from '@temporalio/common/lib/time';
import type { Activities } from '../../activities';
import type { SupplierNotice } from '../../activities/ports';
import {
  SearchAttributes,
  scarDecisionSignal,
  scarReceiptSignal,
  scarResponseSignal,
  scarStateQuery,
  type ScarDecision,
  type ScarInput,
  type ScarResponse,
  type ScarStage,
  type ScarState,
} from '../contracts';
import { activityOptions } from '../options';

/**
 * A supplier corrective action request (docs/analytics.md#supplier-quality): sent to the supplier, it waits for the
 * 8D response with a due date, reminders and an escalation when late; a quality engineer accepts or rejects the
 * response (signed, through the API); after acceptance the supplier's next N receipts must all be accepted to close
 * it, and a rejected one reopens it for a new response round.
 */
export async function scarWorkflow(input: ScarInput): Promise<ScarState> {
  const { scarId, supplier, settings } = input;
  const notify = proxyActivities<Activities>(activityOptions(input.notify));
  const db = proxyActivities<Activities>(activityOptions(input.traceWrite));
  const { workflowId } = workflowInfo();
  const state: ScarState = {
    scarId,
    supplier,
    stage: 'requested',
    round: 1,
    reopened: 0,
    remindersSent: 0,
    escalated: false,
    responses: [],
    decisions: [],
    verification: { needed: settings.verifyReceipts, receipts: [] },
    notices: [],
  };
  let response: ScarResponse | undefined;
  let decision: ScarDecision | undefined;
  const seenResponses = new Set<string>();
  const seenReceipts = new Set<string>();

  setHandler(scarStateQuery, () => state);
  setHandler(scarResponseSignal, (r) => {
    if (state.stage !== 'awaiting-response' || seenResponses.has(r.responseId)) return;
    seenResponses.add(r.responseId);
    state.responses.push(r);
    response = r;
  });
  setHandler(scarDecisionSignal, (d) => {
    if (state.stage !== 'response-received' || decision) return;
    state.decisions.push(d);
    decision = d;
  });
  setHandler(scarReceiptSignal, (r) => {
    const key = `${r.site}/${r.lotId}`;
    if (state.stage !== 'verifying' || seenReceipts.has(key)) return;
    seenReceipts.add(key);
    state.verification.receipts.push(r);
  });

  const enter = async (stage: ScarStage) => {
    state.stage = stage;
    upsertSearchAttributes([{ key: SearchAttributes.supplier, value: supplier }]);
    await db.recordScarState({ scarId, stage, round: state.round });
  };
  const send = async (kind: SupplierNotice['kind'], text: string, key: string) => {
    const r = await notify.sendSupplierNotice({
      idempotencyKey: `scar-${scarId}-${key}`,
      scarId,
      supplier,
      kind,
      text,
      ...(state.responseDue ? { responseDue: state.responseDue } : {}),
      ...(input.evidence !== undefined ? { evidence: input.evidence } : {}),
    });
    state.notices.push(r.reference);
  };

  let kind: SupplierNotice['kind'] = 'request';
  for (;;) {
    // A round: the request (or the rejection or reopening), then the wait for the 8D response.
    response = undefined;
    decision = undefined;
    const due = Date.now() + msToNumber(settings.responseDue);
    state.responseDue = new Date(due).toISOString();
    await enter('awaiting-response');
    await send(kind, `${input.reason} — 8D response due ${state.responseDue}`, `r${state.round}-${kind}`);
    const escalateAt = due + msToNumber(settings.escalateAfter);
    const remindMs = msToNumber(settings.remindEvery);
    let nextReminder = Date.now() + remindMs;
    let escalatedThisRound = false;
    while (response === undefined) {
      const wake = escalatedThisRound ? nextReminder : Math.min(nextReminder, escalateAt);
      if (await condition(() => response !== undefined, Math.max(1, wake - Date.now()))) break;
      if (!escalatedThisRound && Date.now() >= escalateAt) {
        escalatedThisRound = true;
        state.escalated = true;
        if (settings.escalationSite) {
          await notify.escalateScar({
            site: settings.escalationSite,
            scarId,
            workflowId,
            supplier,
            text: `SCAR ${scarId} of ${supplier}: 8D response overdue since ${state.responseDue}`,
            key: `scar-${scarId}-r${state.round}-escalation`,
          });
        }
      }
      if (Date.now() >= nextReminder) {
        state.remindersSent += 1;
        await send(
          'reminder',
          `Reminder: 8D response due ${state.responseDue}`,
          `r${state.round}-reminder-${state.remindersSent}`,
        );
        nextReminder += remindMs;
      }
    }
    await enter('response-received');
    await condition(() => decision !== undefined);
    if (decision!.decision === 'reject') {
      state.round += 1;
      kind = 'response-rejected';
      continue;
    }
    // Accepted: the next N receipts must all pass.
    state.verification = { needed: settings.verifyReceipts, receipts: [] };
    seenReceipts.clear();
    await enter('verifying');
    await condition(
      () =>
        state.verification.receipts.some((r) => r.decision === 'rejected') ||
        state.verification.receipts.length >= settings.verifyReceipts,
    );
    if (state.verification.receipts.some((r) => r.decision === 'rejected')) {
      state.round += 1;
      state.reopened += 1;
      kind = 'reopened';
      continue;
    }
    state.closedAt = new Date().toISOString();
    await enter('closed');
    await send('closed', `SCAR ${scarId} closed: ${settings.verifyReceipts} receipts accepted`, 'closed');
    return state;
  }
}
