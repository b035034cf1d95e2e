/**
 * The SCAR workflow (docs/analytics.md#supplier-quality) on Temporal's time-skipping test server: a request whose 8D
 * response is late gets a reminder every 3 days and one escalation 7 days after its due date (days skipped, not
 * waited); a rejected response starts a new round; an accepted one is verified over the supplier's next receipts, a
 * rejected receipt reopens it, and two accepted receipts close it.
 */
import { randomUUID } from 'node:crypto';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import type { Activities } from '../../activities';
import type { SupplierNotice } from '../../activities/ports';
import { loadConfig } from '../../infra/config/load';
import {
  SearchAttributes,
  scarDecisionSignal,
  scarReceiptSignal,
  scarResponseSignal,
  scarStateQuery,
  scarWorkflowId,
  type ScarInput,
  type ScarStage,
  type ScarState,
} from '../../workflows/contracts';
import { eventually } from '../support/eventually';
import { startTimeSkippingEnvironment } from '../support/time-skipping';
import { installQuietRuntime } from '../support/workflow-harness';

jest.setTimeout(120_000);

const DAY = 86_400_000;
const config = loadConfig();
let env: TestWorkflowEnvironment;

beforeAll(async () => {
  installQuietRuntime();
  env = await startTimeSkippingEnvironment();
}, 600_000);

afterAll(async () => {
  await env?.teardown();
});

interface Recorded {
  notices: (SupplierNotice & { at: number })[];
  escalations: { key: string; at: number }[];
  states: { stage: ScarStage; round: number }[];
}

function stubs(rec: Recorded): Partial<Activities> {
  return {
    async sendSupplierNotice(notice: SupplierNotice) {
      // The same key twice is the same notice: the real activity's ledger sends it once.
      if (!rec.notices.some((n) => n.idempotencyKey === notice.idempotencyKey)) {
        rec.notices.push({ ...notice, at: await env.currentTimeMs() });
      }
      return { reference: notice.idempotencyKey, sent: true };
    },
    async escalateScar(m: Parameters<Activities['escalateScar']>[0]) {
      if (!rec.escalations.some((e) => e.key === m.key))
        rec.escalations.push({ key: m.key, at: await env.currentTimeMs() });
      return { sent: true };
    },
    async recordScarState({ stage, round }: { scarId: string; stage: ScarStage; round: number }) {
      rec.states.push({ stage, round });
    },
  };
}

const response = (n: number) => ({
  responseId: `resp-${n}`,
  receivedAt: new Date().toISOString(),
  recordedBy: 'supplier-key',
  disciplines: { D4: 'root cause', D5: 'corrective action' },
  rootCause: `cause ${n}`,
  correctiveAction: `action ${n}`,
});

const decision = (d: 'accept' | 'reject', n: number) => ({
  decision: d,
  reason: `${d} ${n}`,
  decidedBy: 'qe-1',
  signatureId: `sig-${n}`,
  decidedAt: new Date().toISOString(),
});

test('request, reminders, escalation, a rejected response, verification, a reopen and closure', async () => {
  const rec: Recorded = { notices: [], escalations: [], states: [] };
  const taskQueue = `scar-${randomUUID()}`;
  const worker = await Worker.create({
    connection: env.nativeConnection,
    taskQueue,
    workflowsPath: require.resolve('../../workflows'),
    activities: stubs(rec),
  });
  const supplier = `V-${randomUUID().slice(0, 6)}`;
  const input: ScarInput = {
    scarId: '1',
    supplier,
    trigger: 'engineer',
    reason: 'three receipts rejected for scratches',
    settings: {
      responseDue: '14d',
      remindEvery: '3d',
      escalateAfter: '7d',
      verifyReceipts: 2,
      escalationSite: 'PLANT1',
    },
    notify: config.activityPresets.notify,
    traceWrite: config.activityPresets.traceWrite,
  };
  await worker.runUntil(async () => {
    const started = await env.currentTimeMs();
    const handle = await env.client.workflow.start('scarWorkflow', {
      workflowId: scarWorkflowId(supplier, '1'),
      taskQueue,
      args: [input],
      typedSearchAttributes: [{ key: SearchAttributes.supplier, value: supplier }],
    });
    const state = () => handle.query(scarStateQuery);
    const at = (stage: ScarStage, round: number) =>
      eventually(`stage ${stage} in round ${round}`, state, (s: ScarState) => s.stage === stage && s.round === round);

    await at('awaiting-response', 1);
    await eventually('the request sent', () => rec.notices.length === 1);
    expect(rec.notices.map((n) => n.kind)).toEqual(['request']);
    // The test server's clock runs on between skips: within a minute of 14 days after the start.
    expect(Math.abs(Date.parse((await state()).responseDue!) - (started + 14 * DAY))).toBeLessThan(60_000);

    // 22 days without a response: reminders on days 3, 6, …, 21; the escalation on day 21 (14 + 7).
    await env.sleep('22d');
    const late = await eventually('seven reminders', state, (s: ScarState) => s.remindersSent === 7);
    expect(late.escalated).toBe(true);
    expect(rec.escalations).toHaveLength(1);
    expect(Math.round((rec.escalations[0]!.at - started) / DAY)).toBe(21);
    expect(rec.notices.filter((n) => n.kind === 'reminder').map((n) => Math.round((n.at - started) / DAY))).toEqual([
      3, 6, 9, 12, 15, 18, 21,
    ]);

    // The response arrives (twice: recorded once) and is rejected: a new round with a new due date.
    await handle.signal(scarResponseSignal, response(1));
    await handle.signal(scarResponseSignal, response(1));
    await at('response-received', 1);
    // A receipt before acceptance does not count towards verification.
    await handle.signal(scarReceiptSignal, { site: 'PLANT1', lotId: 'early', decision: 'accepted', decidedAt: '' });
    await handle.signal(scarDecisionSignal, decision('reject', 1));
    await at('awaiting-response', 2);
    expect((await state()).responses).toHaveLength(1);
    await eventually('the rejection sent', () => rec.notices.some((n) => n.kind === 'response-rejected'));

    // Accepted: verification over the next two receipts; a rejected one reopens the SCAR.
    await handle.signal(scarResponseSignal, response(2));
    await at('response-received', 2);
    await handle.signal(scarDecisionSignal, decision('accept', 2));
    await at('verifying', 2);
    expect((await state()).verification.receipts).toEqual([]);
    await handle.signal(scarReceiptSignal, { site: 'PLANT1', lotId: 'r1', decision: 'accepted', decidedAt: '' });
    await handle.signal(scarReceiptSignal, { site: 'PLANT1', lotId: 'r2', decision: 'rejected', decidedAt: '' });
    await at('awaiting-response', 3);
    expect((await state()).reopened).toBe(1);
    await eventually('the reopening sent', () => rec.notices.some((n) => n.kind === 'reopened'));

    // Round 3: response, acceptance, two accepted receipts (one sent twice), closed.
    await handle.signal(scarResponseSignal, response(3));
    await at('response-received', 3);
    await handle.signal(scarDecisionSignal, decision('accept', 3));
    await at('verifying', 3);
    await handle.signal(scarReceiptSignal, { site: 'PLANT1', lotId: 'r3', decision: 'accepted', decidedAt: '' });
    await handle.signal(scarReceiptSignal, { site: 'PLANT1', lotId: 'r3', decision: 'accepted', decidedAt: '' });
    expect((await state()).stage).toBe('verifying');
    await handle.signal(scarReceiptSignal, { site: 'PLANT1', lotId: 'r4', decision: 'accepted', decidedAt: '' });
    const closed = (await handle.result()) as ScarState;
    expect(closed).toMatchObject({ stage: 'closed', round: 3, reopened: 1 });
    expect(closed.verification.receipts.map((r) => r.lotId)).toEqual(['r3', 'r4']);
    expect(closed.decisions.map((d) => d.decision)).toEqual(['reject', 'accept', 'accept']);
    expect(rec.notices.at(-1)!.kind).toBe('closed');
    expect(rec.states.at(-1)).toEqual({ stage: 'closed', round: 3 });

    const description = await handle.describe();
    expect(description.typedSearchAttributes.get(SearchAttributes.supplier)).toBe(supplier);
  });
});
