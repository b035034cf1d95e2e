import {
  ApplicationFailure,
  proxyActivities,
  setCurrentDetails,
  setHandler,
  upsertSearchAttributes,
} from '@temporalio/workflow';
import type { Activities } from '../../activities';
import {
  ErrorType,
  recallStatusQuery,
  SearchAttributes,
  type RecallInput,
  type RecallStage,
  type RecallStageName,
  type RecallStatus,
} from '../contracts';
import { activityOptions } from '../options';

/** Parts per reinspect activity: the workflow's history grows by one activity per this many parts. */
const REINSPECTION_BATCH = 50;

/**
 * One recall (docs/recall.md): trace forward and backward from the scope, classify what was reached, reconcile the
 * scope's quantities, report. Contain and notify belong to a real recall and are not built yet: a mock recall skips
 * them by definition. Each stage is one activity that keeps its rows in PostgreSQL; the workflow keeps the stages'
 * timings (workflow time, so a replay sees the same) and counts, shows them in the Web UI's details and answers
 * `recallStatus`.
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
      ].join('\n'),
    );
  const run = async (name: RecallStageName, work: () => Promise<Record<string, number> | void>) => {
    const stage = status.stages.find((s) => s.name === name) as RecallStage;
    const started = Date.now();
    stage.state = 'running';
    stage.startedAt = new Date(started).toISOString();
    details();
    const counts = await work();
    const finished = Date.now();
    Object.assign(stage, {
      state: 'done',
      finishedAt: new Date(finished).toISOString(),
      durationMs: finished - started,
      ...(counts ? { counts } : {}),
    });
    details();
  };

  try {
    await run('trace', async () => ({ ...(await act.traceRecall({ recallId, scope: input.scope })) }));
    await run('classify', () => act.classifyRecall({ recallId }));
    if (input.scope.kind === 'model-version') await run('reinspect', () => reinspect(input));
    if (input.kind === 'real') {
      // A failure of the workflow, not of its task: a plain Error would retry the task for ever.
      throw ApplicationFailure.nonRetryable(
        'containment and notification of a real recall are not built yet',
        ErrorType.Configuration,
      );
    }
    await run('reconcile', async () => ({ ...(await act.reconcileRecall({ recallId })) }));
    await run('report', async () => {
      status.state = 'completed';
      await act.reportRecall({ recallId, state: 'completed', stages: status.stages, targets: input.targets });
    });
  } catch (err) {
    status.state = 'failed';
    await act.reportRecall({ recallId, state: 'failed', stages: status.stages, targets: input.targets });
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
