import {
  ActivityFailure,
  ApplicationFailure,
  CancellationScope,
  condition,
  isCancellation,
  log,
  proxyActivities,
  proxyLocalActivities,
  setCurrentDetails,
  setHandler,
  sleep,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import { msToNumber } from '@temporalio/common/lib/time';
import type { Activities } from '../../activities';
import {
  approveFirstArticleUpdate,
  changeoverKeys,
  changeoverStatusQuery,
  ErrorType,
  SearchAttributes,
  type ChangeoverInput,
  type ChangeoverStage,
  type ChangeoverStationPlan,
  type ChangeoverStationStatus,
  type ChangeoverStatus,
  type ChangeoverTiming,
  type FirstArticleApproval,
  type RetryPreset,
} from '../contracts';
import { activityOptions, localActivityOptions } from '../options';

/** Attempts of one station's revert before the changeover gives up on it and says so in its escalation. */
const REVERT_ATTEMPTS = 5;

/**
 * One changeover of a line to a work order (docs/changeover.md#the-changeover): interlock the line, resolve every
 * station's recipe, prepare all stations at once (each one's state read first), verify each by reading it back, wait
 * for the first article (or a quality engineer's signed approval), then release the order in the MES and lift the
 * interlock. Failed or cancelled, it reverts every prepared station in reverse order, leaves the line interlocked and
 * escalates.
 */
export async function changeoverWorkflow(input: ChangeoverInput): Promise<ChangeoverStatus> {
  const { workflowId } = workflowInfo();
  const { site, line, workOrder, sku, options } = input;
  // Every step's calls end within stepTimeout, retries included: then the changeover fails, reverts and escalates.
  const bounded = { scheduleToCloseTimeout: options.stepTimeout };
  const act = proxyActivities<Activities>({ ...activityOptions(input.preset), ...bounded });
  // Short, idempotent reads and writes on the path to "every station verified" (the interlock, the recipes, the
  // read-backs, the MES release): local activities add no server round trip per call (workflows/options.ts).
  // A local activity is bounded by its attempts, not by a schedule-to-close timeout (not enforced for local
  // activities here, SDK 1.24): as many as the preset's backoff fits into stepTimeout.
  const localOptions = localActivityOptions(input.preset);
  const local = proxyLocalActivities<Activities>({
    ...localOptions,
    retry: {
      ...localOptions.retry,
      maximumAttempts: attemptsWithin(msToNumber(options.stepTimeout), input.preset.retry),
    },
  });
  const prepareAct = proxyActivities<Activities>({
    ...activityOptions(input.preset),
    ...bounded,
    startToCloseTimeout: options.prepareTimeout,
  });
  const revertAct = proxyActivities<Activities>({
    ...activityOptions(input.preset),
    startToCloseTimeout: options.prepareTimeout,
    retry: { ...activityOptions(input.preset).retry, maximumAttempts: REVERT_ATTEMPTS },
  });
  const pollMs = msToNumber(options.firstArticlePollInterval);
  const firstArticleAct = proxyActivities<Activities>({
    ...activityOptions(input.preset),
    startToCloseTimeout: options.firstArticleTimeout,
    // A dead worker's wait is given to another after a few missed polls.
    heartbeatTimeout: Math.max(3 * pollMs, 10_000),
  });

  const status: ChangeoverStatus = {
    workflowId,
    site,
    line,
    workOrder,
    sku,
    trigger: input.trigger,
    stage: 'interlocking',
    dueAt: input.dueAt,
    interlock: input.interlock ? 'held' : 'not-configured',
    stations: input.stations.map((s) => ({
      station: s.station,
      kind: s.vision ? 'opc40100' : 'holdfast',
      prepared: false,
      verified: false,
      reverted: false,
    })),
    timings: [],
  };
  const stationOf = (name: string) => status.stations.find((s) => s.station === name) as ChangeoverStationStatus;
  let approval: FirstArticleApproval | undefined;

  setHandler(changeoverStatusQuery, () => status, {
    description: "Stage, every station's before / after / verified, first-article parts and step timings.",
  });
  setHandler(
    approveFirstArticleUpdate,
    (request) => {
      approval = request;
      const firstArticle = status.firstArticle!;
      firstArticle.approval = request;
      firstArticle.outcome = 'approved';
      return status;
    },
    {
      validator: (request: FirstArticleApproval) => {
        if (!request.signature) throw new Error('an approval of the first article must be signed');
        if (status.stage !== 'first-article' || status.firstArticle?.outcome !== undefined) {
          throw new Error(`the changeover is ${status.stage}: only a first article being awaited can be approved`);
        }
      },
      description: "A quality engineer's signed approval of the first article: release without waiting for parts.",
    },
  );

  const enter = (stage: ChangeoverStage) => {
    status.stage = stage;
    upsertSearchAttributes([{ key: SearchAttributes.changeoverState, value: stage }]);
    details();
  };
  const details = () =>
    setCurrentDetails(
      [
        `**Changeover of ${site}/${line} to work order ${workOrder}** (${sku}): ${status.stage}`,
        '',
        '| Station | Kind | Target | Prepared | Verified | Reverted |',
        '| --- | --- | --- | --- | --- | --- |',
        ...status.stations.map(
          (s) =>
            `| ${s.station} | ${s.kind} | ${s.target ?? ''} | ${s.prepared ? 'yes' : ''} | ${s.verified ? 'yes' : ''} | ${s.reverted ? 'yes' : ''} |`,
        ),
        ...(status.error ? ['', status.error] : []),
      ].join('\n'),
    );
  const timed = async <T>(step: ChangeoverTiming['step'], work: () => Promise<T>): Promise<T> => {
    const timing: ChangeoverTiming = { step, startedAt: new Date().toISOString() };
    status.timings.push(timing);
    try {
      return await work();
    } finally {
      const finished = Date.now();
      timing.finishedAt = new Date(finished).toISOString();
      timing.durationMs = finished - Date.parse(timing.startedAt);
    }
  };

  let plans: ChangeoverStationPlan[] = [];
  /** Stations whose prepare began, in the order it began: what a failure reverts, last first. */
  const begun: { plan: ChangeoverStationPlan; internalRecipeId?: string }[] = [];
  const stationInput = (plan: ChangeoverStationPlan) => ({ site, line, plan });

  try {
    details();
    if (input.interlock) {
      await timed('interlock', () => local.setLineRelease({ site, line, workOrder, released: false }));
    } else {
      log.warn('the site has no line control (sites[].lineControl): changing over without an interlock', {
        site,
        line,
      });
    }

    enter('resolving');
    plans = await timed('resolve', () => local.resolveChangeover({ site, line, sku, stations: input.stations }));
    for (const plan of plans) {
      stationOf(plan.station).target =
        plan.kind === 'holdfast'
          ? `${plan.recipeVersion} (${plan.model.name}@${plan.model.version})`
          : plan.externalRecipeId;
    }

    enter('preparing');
    await timed('prepare', async () => {
      const before = await Promise.all(plans.map((plan) => local.readChangeoverStation(stationInput(plan))));
      plans.forEach((plan, i) => (stationOf(plan.station).before = before[i]));
      // Every prepare is let finish before a failure is acted on: a revert must not overtake its own prepare.
      const results = await Promise.allSettled(
        plans.map(async (plan) => {
          const entry: (typeof begun)[number] = { plan };
          begun.push(entry);
          const prepared = await prepareAct.prepareChangeoverStation({
            ...stationInput(plan),
            changeoverId: workflowId,
            workOrder,
            sku,
          });
          if (prepared.internalRecipeId !== undefined) entry.internalRecipeId = prepared.internalRecipeId;
          stationOf(plan.station).prepared = true;
        }),
      );
      const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failed) throw failed.reason;
    });

    enter('verifying');
    await timed('verify', async () => {
      for (let attempt = 1; ; attempt++) {
        const pending = begun.filter(({ plan }) => !stationOf(plan.station).verified);
        const answers = await Promise.all(
          pending.map(({ plan, internalRecipeId }) =>
            local.verifyChangeoverStation({
              ...stationInput(plan),
              changeoverId: workflowId,
              workOrder,
              sku,
              ...(internalRecipeId !== undefined ? { internalRecipeId } : {}),
            }),
          ),
        );
        pending.forEach(({ plan }, i) => {
          const answer = answers[i]!;
          const station = stationOf(plan.station);
          Object.assign(station, { after: answer.after, verified: answer.verified });
          if (answer.problem) station.problem = answer.problem;
          else delete station.problem;
        });
        details();
        const wrong = status.stations.filter((s) => !s.verified);
        if (wrong.length === 0) return;
        if (attempt >= options.verifyAttempts) {
          throw ApplicationFailure.create({
            message:
              `read-back disagrees after ${attempt} attempts: ` +
              wrong.map((s) => `station ${s.station}: ${s.problem ?? 'not verified'}`).join('; '),
            type: ErrorType.Validation,
            nonRetryable: true,
          });
        }
        await sleep(options.verifyInterval);
      }
    });

    enter('first-article');
    await timed('first-article', () => firstArticle());

    enter('releasing');
    await timed('release', async () => {
      const release = await local.releaseOrderForProduction({ site, line, workOrder, workflowId });
      status.release = { releasedAt: release.releasedAt, externalReference: release.externalReference };
      if (input.interlock) {
        await local.setLineRelease({ site, line, workOrder, released: true });
        status.interlock = 'released';
      }
    });
    enter('released');
    return status;
  } catch (err) {
    const cancelled = isCancellation(err);
    status.error = messageOf(err);
    await CancellationScope.nonCancellable(async () => {
      enter('reverting');
      await timed('revert', async () => {
        for (const { plan, internalRecipeId } of [...begun].reverse()) {
          const station = stationOf(plan.station);
          try {
            await revertAct.revertChangeoverStation({
              ...stationInput(plan),
              changeoverId: workflowId,
              ...(station.before ? { before: station.before } : {}),
              ...(internalRecipeId !== undefined ? { internalRecipeId } : {}),
            });
            station.reverted = true;
          } catch (revertErr) {
            station.problem = `revert failed: ${messageOf(revertErr)}`;
            log.error('station not reverted', { station: plan.station, error: station.problem });
          }
        }
      });
      enter(cancelled ? 'cancelled' : 'failed');
      const unreverted = begun.filter(({ plan }) => !stationOf(plan.station).reverted).map((b) => b.plan.station);
      try {
        await act.escalateChangeover({
          site,
          line,
          workOrder,
          workflowId,
          reason: status.stage,
          since: input.dueAt,
          text:
            `Changeover of ${site}/${line} to work order ${workOrder} (${sku}) ${status.stage}: ${status.error}. ` +
            (input.interlock ? 'The line stays interlocked. ' : 'The line has no interlock. ') +
            (status.firstArticle?.holdId ? `First lot held (MES hold ${status.firstArticle.holdId}). ` : '') +
            (unreverted.length ? `NOT reverted: ${unreverted.join(', ')}.` : `Reverted: ${begun.length} station(s).`),
        });
      } catch (escalationErr) {
        log.error('changeover escalation failed', { error: messageOf(escalationErr) });
      }
    });
    if (cancelled) throw err;
    // The workflow's failure says what went wrong (the station, the read-back), not only that an activity failed.
    throw ApplicationFailure.create({
      message: status.error,
      type: failureType(err),
      nonRetryable: true,
      cause: err instanceof Error ? err : undefined,
    });
  }

  /**
   * The first article: the order's first parts polled until enough passed or one failed, or a signed approval. Not
   * decided within firstArticleEscalateAfter it escalates (again each time that passes); not within
   * firstArticleTimeout the changeover fails. A failed first article holds the first lot in the MES.
   */
  async function firstArticle(): Promise<void> {
    const holdfastPlans = plans.filter((p) => p.kind === 'holdfast');
    const required = Math.max(0, ...holdfastPlans.map((p) => p.firstArticleParts ?? options.firstArticleParts));
    const state: NonNullable<ChangeoverStatus['firstArticle']> = { required, parts: [], escalations: 0 };
    status.firstArticle = state;
    let polled: 'passed' | 'failed' | undefined;
    let pollError: unknown;
    const polling = new CancellationScope();
    // A line of external vision systems only: Holdfast sees no parts, so only an approval decides.
    if (holdfastPlans.length > 0) {
      void polling
        .run(async () => {
          for (let known = 0; ;) {
            const read = await firstArticleAct.awaitFirstArticle({
              site,
              line,
              workOrder,
              parts: required,
              known,
              pollIntervalMs: pollMs,
              since: workflowInfo().runStartTime.toISOString(),
            });
            state.parts = read.parts.map((p) => ({
              partId: p.partId,
              result: p.result,
              lotId: p.lotId,
              inspectedAt: p.inspectedAt,
            }));
            if (read.outcome !== 'pending') return read.outcome;
            known = read.parts.length;
          }
        })
        .then(
          (outcome) => (polled = outcome),
          (err: unknown) => (pollError = err),
        );
    }
    const timeoutMs = msToNumber(options.firstArticleTimeout);
    const escalateMs = msToNumber(options.firstArticleEscalateAfter);
    const began = Date.now();
    try {
      for (;;) {
        const left = timeoutMs - (Date.now() - began);
        const decided =
          left > 0 &&
          (await condition(
            () => approval !== undefined || polled !== undefined || pollError !== undefined,
            Math.min(escalateMs, left),
          ));
        if (decided || Date.now() - began >= timeoutMs) break;
        state.escalations += 1;
        await act.escalateChangeover({
          site,
          line,
          workOrder,
          workflowId,
          reason: `first-article-waiting-${state.escalations}`,
          since: new Date(began).toISOString(),
          text:
            `The first article of work order ${workOrder} on ${site}/${line} is undecided after ` +
            `${Math.round((Date.now() - began) / 60_000)} min: ${state.parts.length} of ${required} parts inspected.`,
        });
      }
    } finally {
      polling.cancel();
    }
    if (approval !== undefined) return;
    if (polled === 'passed') {
      state.outcome = 'passed';
      return;
    }
    if (polled === 'failed') {
      state.outcome = 'failed';
      const failedPart = state.parts.find((p) => p.result === 'fail')!;
      const hold = await act.holdLot({
        site,
        idempotencyKey: changeoverKeys.firstLotHold(workflowId),
        lotId: failedPart.lotId,
        workOrder,
        reason: `first article of work order ${workOrder} failed at part ${failedPart.partId} (changeover ${workflowId})`,
        defectClass: 'first-article',
        line,
        station: 'first-article',
      });
      state.holdId = hold.holdId;
      throw ApplicationFailure.create({
        message: `first article failed: part ${failedPart.partId} of lot ${failedPart.lotId}`,
        type: ErrorType.BusinessRejection,
        nonRetryable: true,
      });
    }
    if (pollError !== undefined) throw pollError instanceof Error ? pollError : new Error(messageOf(pollError));
    state.outcome = 'timed-out';
    throw ApplicationFailure.create({
      message: `first article not decided within ${options.firstArticleTimeout}`,
      type: ErrorType.BusinessRejection,
      nonRetryable: true,
    });
  }
}

function failureType(err: unknown): string {
  const cause = err instanceof ActivityFailure ? err.cause : err;
  return cause instanceof ApplicationFailure && cause.type ? cause.type : 'ChangeoverFailed';
}

/** Attempts of a call whose backoff (initial interval, growing by the coefficient up to the maximum) fits in `ms`. */
function attemptsWithin(ms: number, retry: RetryPreset): number {
  let attempts = 1;
  let waited = 0;
  let interval = msToNumber(retry.initialInterval);
  while (waited + interval <= ms) {
    waited += interval;
    attempts += 1;
    interval = Math.min(interval * retry.backoffCoefficient, msToNumber(retry.maximumInterval));
  }
  return retry.maximumAttempts ? Math.min(attempts, retry.maximumAttempts) : attempts;
}

/**
 * What went wrong, from the failure and its causes: an activity's failure says only that it failed, its cause what
 * (and a timeout's cause the last attempt's error).
 */
function messageOf(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const messages: string[] = [];
  for (let e: unknown = err; e instanceof Error; e = e.cause) {
    if (!(e instanceof ActivityFailure) && e.message && !messages.includes(e.message)) messages.push(e.message);
  }
  return messages.join(': ') || err.message;
}
