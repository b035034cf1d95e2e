import {
  CancellationScope,
  CancelledFailure,
  isCancellation,
  proxyActivities,
  setCurrentDetails,
  setHandler,
  upsertSearchAttributes,
} from '@temporalio/workflow';
import type { Activities } from '../../activities';
import {
  recallStatusQuery,
  SearchAttributes,
  type RecallContainOptions,
  type RecallContainProgress,
  type RecallInput,
  type RecallStage,
  type RecallStageName,
  type RecallStatus,
} from '../contracts';
import { activityOptions } from '../options';

/** Parts per reinspect activity: the workflow's history grows by one activity per this many parts. */
const REINSPECTION_BATCH = 50;
/** The contain stage's defaults, for a recall started without options (recall.contain in temporal.yaml). */
const CONTAIN_DEFAULTS: RecallContainOptions = {
  batchSize: 100,
  parallelBatches: 4,
  lotConcurrency: 8,
  batchTimeout: '10m',
  heartbeatTimeout: '30s',
};

/**
 * One recall (docs/recall.md): trace forward and backward from the scope, classify what was reached, contain (a real
 * recall: hold and block every affected lot, in batches), notify (a real recall's customers), reconcile the scope's
 * quantities, report. A mock recall skips contain and notify by definition. Each stage keeps its rows in PostgreSQL;
 * the workflow keeps the stages' timings (workflow time, so a replay sees the same) and counts, shows them in the Web
 * UI's details and answers `recallStatus`. Cancelled, it places nothing more, keeps what it placed, and reports.
 */
export async function recallWorkflow(input: RecallInput): Promise<RecallStatus> {
  const act = proxyActivities<Activities>(activityOptions(input.preset));
  const { recallId } = input;
  const order: RecallStageName[] = ['trace', 'classify', 'reinspect', 'contain', 'notify', 'reconcile', 'report'];
  const status: RecallStatus = {
    recallId,
    state: 'running',
    stages: order.map((name) => ({
      name,
      state:
        (input.kind === 'mock' && (name === 'contain' || name === 'notify')) ||
        (name === 'reinspect' && input.scope.kind !== 'model-version')
          ? 'skipped'
          : 'pending',
    })),
  };
  setHandler(recallStatusQuery, () => status, { description: 'Stages with timings and counts.' });

  // A cancel is seen at once: recorded for the running batches, which start nothing more (docs/recall.md#cancel).
  let cancelSeen = false;
  let containClosed = false;
  let cancelRecorded: Promise<void> | undefined;
  const recordCancel = () =>
    (cancelRecorded ??= CancellationScope.nonCancellable(() => act.cancelRecallContainment({ recallId })));
  void CancellationScope.current().cancelRequested.catch(() => {
    cancelSeen = true;
    if (input.kind === 'real') void recordCancel();
  });

  const details = () =>
    setCurrentDetails(
      [
        `**${input.kind} recall ${recallId}** at ${input.site}: ${input.reason}`,
        '',
        '| Stage | State | Took | Found |',
        '| --- | --- | --- | --- |',
        ...status.stages.map(
          (s) =>
            `| ${s.name} | ${s.state} | ${s.durationMs !== undefined ? `${s.durationMs} ms` : ''} | ${Object.entries(
              s.counts ?? {},
            )
              .map(([k, v]) => `${k} ${v}`)
              .join(', ')} |`,
        ),
        ...(status.contain
          ? [
              '',
              `**Contain**: ${status.contain.batchesDone} of ${status.contain.batches} batches, ` +
                `${status.contain.lots} lots: held ${status.contain.held}, already held ${status.contain.alreadyHeld}, ` +
                `blocked ${status.contain.blocked}, nothing to block ${status.contain.nothingToBlock}, ` +
                `failed ${status.contain.failed}, cancelled ${status.contain.cancelled}`,
            ]
          : []),
      ].join('\n'),
    );
  const run = async (name: RecallStageName, work: () => Promise<Record<string, number> | void>) => {
    const stage = status.stages.find((s) => s.name === name) as RecallStage;
    const started = Date.now();
    stage.state = 'running';
    stage.startedAt = new Date(started).toISOString();
    details();
    let counts: Record<string, number> | void;
    try {
      counts = await work();
    } catch (err) {
      if (isCancellation(err) || cancelSeen) {
        const at = Date.now();
        Object.assign(stage, { state: 'cancelled', finishedAt: new Date(at).toISOString(), durationMs: at - started });
      }
      throw err;
    }
    const finished = Date.now();
    Object.assign(stage, {
      state: 'done',
      finishedAt: new Date(finished).toISOString(),
      durationMs: finished - started,
      ...(counts ? { counts } : {}),
    });
    details();
  };

  const contain = async (): Promise<Record<string, number>> => {
    const options = { ...CONTAIN_DEFAULTS, ...input.contain };
    // Batches run outside the workflow's cancellation: a cancel reaches them through the recorded flag, and they
    // finish the lots in hand, so what was placed is recorded before the report.
    const batches = proxyActivities<Activities>({
      ...activityOptions(input.preset),
      startToCloseTimeout: options.batchTimeout,
      heartbeatTimeout: options.heartbeatTimeout,
    });
    const plan = await act.planRecallContainment({ recallId, batchSize: options.batchSize });
    const progress: RecallContainProgress = {
      lots: plan.lots,
      batches: plan.batches,
      batchesDone: 0,
      held: 0,
      alreadyHeld: 0,
      blocked: 0,
      nothingToBlock: 0,
      failed: 0,
      cancelled: 0,
    };
    status.contain = progress;
    details();
    let next = 0;
    const lane = async () => {
      while (next < plan.batches && !cancelSeen) {
        const batch = next++;
        const { counts } = await CancellationScope.nonCancellable(() =>
          batches.containRecallBatch({
            recallId,
            site: input.site,
            batch,
            concurrency: options.lotConcurrency,
            reason: input.reason,
          }),
        );
        progress.batchesDone += 1;
        for (const key of ['held', 'alreadyHeld', 'blocked', 'nothingToBlock', 'failed', 'cancelled'] as const) {
          progress[key] += counts[key];
        }
        details();
      }
    };
    await Promise.all(Array.from({ length: Math.min(options.parallelBatches, plan.batches) }, lane));
    if (cancelSeen) await recordCancel();
    const totals = await CancellationScope.nonCancellable(() =>
      act.closeRecallContainment({ recallId, cancelled: cancelSeen }),
    );
    containClosed = true;
    Object.assign(progress, {
      held: totals.held,
      alreadyHeld: totals.alreadyHeld,
      blocked: totals.blocked,
      nothingToBlock: totals.nothingToBlock,
      failed: totals.failed,
      cancelled: totals.cancelled,
    });
    if (cancelSeen) {
      const stage = status.stages.find((s) => s.name === 'contain') as RecallStage;
      stage.counts = { ...totals };
      throw new CancelledFailure('the recall was cancelled during containment');
    }
    return { ...totals };
  };

  const skip = (name: RecallStageName) => {
    (status.stages.find((s) => s.name === name) as RecallStage).state = 'skipped';
  };

  try {
    await run('trace', async () => ({ ...(await act.traceRecall({ recallId, scope: input.scope })) }));
    await run('classify', () => act.classifyRecall({ recallId }));
    if (input.scope.kind === 'model-version') await run('reinspect', () => reinspect(input));
    if (input.kind === 'real') {
      await run('contain', contain);
      // Notify: a real recall's customer notifications are their own child workflows, wired in at this spot; until
      // they are, the stage is skipped and the report says so.
      skip('notify');
    }
    await run('reconcile', async () => ({ ...(await act.reconcileRecall({ recallId })) }));
    await run('report', async () => {
      status.state = 'completed';
      await act.reportRecall({ recallId, state: 'completed', stages: status.stages, targets: input.targets });
    });
  } catch (err) {
    const cancelled = isCancellation(err) || cancelSeen;
    status.state = cancelled ? 'cancelled' : 'failed';
    if (cancelled) {
      for (const stage of status.stages) if (stage.state === 'pending') stage.state = 'skipped';
      // Cancelled before its batches ran: the lots it had chosen are recorded as not reached.
      if (status.contain && !containClosed) {
        await CancellationScope.nonCancellable(() => act.closeRecallContainment({ recallId, cancelled: true }));
      }
    }
    // Written whatever happened, also after a cancel: the report is what is left to show what was placed.
    await CancellationScope.nonCancellable(() =>
      act.reportRecall({
        recallId,
        state: status.state as 'failed' | 'cancelled',
        stages: status.stages,
        targets: input.targets,
      }),
    );
    throw err;
  } finally {
    upsertSearchAttributes([{ key: SearchAttributes.recallState, value: status.state }]);
    details();
  }
  return status;
}

/** Stored images the model passed, through the corrected model, a batch per activity (docs/recall.md#model-recall). */
async function reinspect(input: RecallInput): Promise<Record<string, number>> {
  if (input.scope.kind !== 'model-version') return {};
  // Inference and image reads take longer than a trace write: a minute per batch, alive as long as it heartbeats.
  const act = proxyActivities<Activities>({
    ...activityOptions(input.preset),
    startToCloseTimeout: '5m',
    heartbeatTimeout: '1m',
  });
  const counts: Record<string, number> = { 'now-fails': 0, 'still-passes': 0, 'no-image': 0 };
  for (let more = true; more;) {
    const batch = await act.reinspectRecallBatch({
      recallId: input.recallId,
      scope: input.scope,
      ...(input.correctedModelVersion ? { correctedModelVersion: input.correctedModelVersion } : {}),
      limit: REINSPECTION_BATCH,
    });
    for (const [k, n] of Object.entries(batch.counts)) counts[k] = (counts[k] ?? 0) + n;
    more = batch.more;
  }
  return { ...counts, ...(await act.concludeReinspection({ recallId: input.recallId })) };
}
