/**
 * The only place the API and the outbox dispatcher touch Temporal. Both depend on the `WorkflowGateway` interface,
 * so tests pass a typed fake and no route ever builds a Temporal request itself.
 */
import {
  type Client,
  QueryNotRegisteredError,
  QueryRejectedError,
  WorkflowExecutionAlreadyStartedError,
  WorkflowNotFoundError as TemporalWorkflowNotFoundError,
  WorkflowUpdateFailedError,
  isGrpcCancelledError,
  isGrpcDeadlineError,
  isGrpcServiceError,
} from '@temporalio/client';
import type { UpdateDefinition } from '@temporalio/common';
import {
  type CountersignRequest,
  type DefectDetection,
  type DetectionDispatch,
  type DispositionOutcome,
  type DispositionRequest,
  type LotCaseInput,
  type LotCaseState,
  type RecallAcknowledgement,
  type RecallInput,
  type RetryFailedStepResult,
  adviceDecidedSignal,
  qualityEscalationReleasedSignal,
  countersignDispositionUpdate,
  detectionSearchAttributes,
  dispositionUpdate,
  lotCaseEnrolment,
  lineQualityAdvisorWorkflowId,
  lotCaseStateQuery,
  partDefectSignal,
  recallWorkflowId,
  recallAcknowledgedSignal,
  retryFailedStepUpdate,
  shadowWorkflowId,
} from '../../workflows/contracts';
import { startRecallWorkflow } from '../recall/recall-starter';

/** Started by name: the API and dispatcher never import workflow implementations. */
export const LOT_CASE_WORKFLOW_TYPE = 'lotCaseWorkflow';
export const SHADOW_DEFECT_WORKFLOW_TYPE = 'shadowDefectWorkflow';

export interface WorkflowDescription {
  workflowId: string;
  runId: string;
  /** Temporal's execution status name: RUNNING, COMPLETED, FAILED, TERMINATED, … */
  status: string;
  type: string;
  startTime: string;
  closeTime?: string;
}

export interface DispatchedDetection {
  workflowId: string;
  /** The run that took the part (signal-with-start) or the shadow workflow's run. */
  runId: string;
  /**
   * Whether the row needs its workflow's confirmation before it is done: a lot case confirms once it has recorded
   * the part; a shadow workflow's start is all there is to it.
   */
  awaitsConfirmation: boolean;
}

export interface WorkflowGateway {
  /**
   * Hands a stored failure to its workflow: the part to its lot's case (signal-with-start), a shadow station's
   * defect to a shadow workflow of its own. Idempotent: the lot case drops an event id it has taken, and the shadow
   * workflow's id refuses a second start.
   */
  dispatchDetection(input: DetectionDispatch): Promise<DispatchedDetection>;
  describe(workflowId: string): Promise<WorkflowDescription | undefined>;
  lotCaseState(workflowId: string): Promise<LotCaseState | undefined>;
  submitDisposition(lotCaseWorkflowId: string, request: DispositionRequest): Promise<DispositionOutcome>;
  /** The second signature of a use-as-is (two-person rule); refused by the case's validator like a disposition. */
  countersignDisposition(lotCaseWorkflowId: string, request: CountersignRequest): Promise<DispositionOutcome>;
  /** Re-runs the steps a case is parked on (needs-attention), once their cause was fixed in the MES or ERP. */
  retryFailedStep(workflowId: string, requestedBy: string): Promise<RetryFailedStepResult>;
  /** Starts a recall's workflow, or finds it running (docs/recall.md); absent: this process starts no recalls. */
  startRecall?(input: RecallInput): Promise<void>;
  /** Asks a recall's workflow to cancel (docs/recall.md#cancel); WorkflowNotFoundError when it has closed. */
  cancelRecall?(recallId: string): Promise<void>;
  /**
   * Hands a customer's acknowledgement to its recall notification's workflow (the `acknowledged` signal; a repeat is
   * dropped there). WorkflowNotFoundError: the workflow has closed (acknowledged before, or terminated).
   */
  acknowledgeRecallNotification?(workflowId: string, acknowledgement: RecallAcknowledgement): Promise<void>;
  /**
   * Wakes a line's scheduling-advice rule to send an accepted advice now (docs/changeover.md#scheduling-advice);
   * a rule that is not running is left alone (it sends what is accepted when it runs). Absent: the rule sends it at
   * its next evaluation.
   */
  adviceDecided?(site: string, line: string, adviceId: string): Promise<void>;
  /**
   * Wakes a quality escalation whose signed release was stored (docs/analytics.md#statistical-escalation); one that
   * has closed is left alone. Absent: the escalation reads the decision at its next check.
   */
  qualityEscalationReleased?(workflowId: string, escalationId: string): Promise<void>;
}

/** A workflow's update validator refused the request (wrong stage, illegal transition): the API answers 409. */
export class UpdateRejectedError extends Error {
  override readonly name: string = 'UpdateRejectedError';
}

/** The lot case's validator refused the disposition. */
export class DispositionRejectedError extends UpdateRejectedError {
  override readonly name = 'DispositionRejectedError';
}

/** No workflow with that id (or it has closed and takes no more updates): the API answers 404. */
export class WorkflowNotFoundError extends Error {
  override readonly name = 'WorkflowNotFoundError';
}

/** No Temporal connection yet (the process started while the frontend was unreachable): a transient failure. */
export class TemporalUnavailableError extends Error {
  override readonly name = 'TemporalUnavailableError';
}

/**
 * A gateway to hand out before Temporal is reachable: every call fails with TemporalUnavailableError until
 * `connect` supplies the real one. Lets the API start, and keep storing inspections, during a Temporal outage.
 */
export function createDeferredWorkflowGateway(): { gateway: WorkflowGateway; connect(real: WorkflowGateway): void } {
  let real: WorkflowGateway | undefined;
  const target = (): WorkflowGateway => {
    if (!real) throw new TemporalUnavailableError('not connected to Temporal yet');
    return real;
  };
  return {
    gateway: {
      dispatchDetection: async (input) => target().dispatchDetection(input),
      describe: async (workflowId) => target().describe(workflowId),
      lotCaseState: async (workflowId) => target().lotCaseState(workflowId),
      submitDisposition: async (workflowId, request) => target().submitDisposition(workflowId, request),
      countersignDisposition: async (workflowId, request) => target().countersignDisposition(workflowId, request),
      retryFailedStep: async (workflowId, requestedBy) => target().retryFailedStep(workflowId, requestedBy),
      startRecall: async (input) => {
        const real = target();
        if (!real.startRecall) throw new TemporalUnavailableError('this gateway starts no recalls');
        await real.startRecall(input);
      },
      cancelRecall: async (recallId) => {
        const real = target();
        if (!real.cancelRecall) throw new TemporalUnavailableError('this gateway cancels no recalls');
        await real.cancelRecall(recallId);
      },
      adviceDecided: async (site, line, adviceId) => {
        const real = target();
        if (!real.adviceDecided) throw new TemporalUnavailableError('this gateway wakes no advice rules');
        await real.adviceDecided(site, line, adviceId);
      },
      qualityEscalationReleased: async (workflowId, escalationId) => {
        const real = target();
        if (!real.qualityEscalationReleased) throw new TemporalUnavailableError('this gateway wakes no escalations');
        await real.qualityEscalationReleased(workflowId, escalationId);
      },
      acknowledgeRecallNotification: async (workflowId, acknowledgement) => {
        const real = target();
        if (!real.acknowledgeRecallNotification) {
          throw new TemporalUnavailableError('this gateway signals no recall notifications');
        }
        await real.acknowledgeRecallNotification(workflowId, acknowledgement);
      },
    },
    connect(gateway) {
      real = gateway;
    },
  };
}

export interface TemporalGatewayOptions {
  taskQueue: string;
  /** Deadline for start and describe calls, so a dispatcher never hangs on an unreachable frontend. */
  rpcTimeoutMs?: number;
  /** Queries need a worker to answer; without one the server holds them, so the API stops waiting after this. */
  queryTimeoutMs?: number;
  /** A disposition runs ERP and MES postings inside the update handler before it answers. */
  updateTimeoutMs?: number;
}

/** gRPC status code 9 (grpc/grpc doc/statuscodes.md); @grpc/grpc-js is not a direct dependency. */
const GRPC_FAILED_PRECONDITION = 9;

/** Temporal documents about 200 bytes for the one-line summary shown in workflow lists. */
const STATIC_SUMMARY_MAX_BYTES = 200;

export function createTemporalWorkflowGateway(client: Client, opts: TemporalGatewayOptions): WorkflowGateway {
  const rpcTimeoutMs = opts.rpcTimeoutMs ?? 10_000;
  const queryTimeoutMs = opts.queryTimeoutMs ?? 3_000;
  const updateTimeoutMs = opts.updateTimeoutMs ?? 60_000;
  const within = <T>(ms: number, fn: () => Promise<T>): Promise<T> => client.withDeadline(Date.now() + ms, fn);

  const describe = async (workflowId: string): Promise<WorkflowDescription | undefined> => {
    try {
      const d = await within(rpcTimeoutMs, () => client.workflow.getHandle(workflowId).describe());
      return {
        workflowId: d.workflowId,
        runId: d.runId,
        status: d.status.name,
        type: d.type,
        startTime: d.startTime.toISOString(),
        ...(d.closeTime ? { closeTime: d.closeTime.toISOString() } : {}),
      };
    } catch (err) {
      if (err instanceof TemporalWorkflowNotFoundError) return undefined;
      throw err;
    }
  };

  const query = async <T>(fn: () => Promise<T>): Promise<T | undefined> => {
    try {
      return await within(queryTimeoutMs, fn);
    } catch (err) {
      if (
        err instanceof TemporalWorkflowNotFoundError ||
        err instanceof QueryRejectedError ||
        err instanceof QueryNotRegisteredError ||
        isGrpcDeadlineError(err) ||
        // grpc-js sometimes reports its own deadline firing as CANCELLED ("Call cancelled"); nothing else cancels here.
        isGrpcCancelledError(err) ||
        // WorkflowNotReady: no worker has completed the first workflow task yet, so nothing can answer a query.
        grpcCodeOf(err) === GRPC_FAILED_PRECONDITION
      ) {
        return undefined;
      }
      throw err;
    }
  };

  const lotCases = createTemporalLotCaseStarter(client);

  const startShadow = async ({ detection: d, ...rest }: DetectionDispatch): Promise<DispatchedDetection> => {
    const workflowId = shadowWorkflowId(d.eventId);
    // FAIL + REJECT_DUPLICATE: a second start is refused whether the first run is open or closed; either refusal
    // means the defect is already recorded, and the run already there answers.
    try {
      const handle = await within(rpcTimeoutMs, () =>
        client.workflow.start(SHADOW_DEFECT_WORKFLOW_TYPE, {
          workflowId,
          taskQueue: rest.taskQueue,
          args: [{ detection: d, ...rest }],
          workflowIdConflictPolicy: 'FAIL',
          workflowIdReusePolicy: 'REJECT_DUPLICATE',
          typedSearchAttributes: detectionSearchAttributes(d, 'shadow'),
          staticSummary: defectStaticSummary(d, 'shadow: '),
          staticDetails: defectStaticDetails(d),
        }),
      );
      return { workflowId, runId: handle.firstExecutionRunId, awaitsConfirmation: false };
    } catch (err) {
      if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
      const existing = await describe(workflowId);
      if (!existing) throw err;
      return { workflowId, runId: existing.runId, awaitsConfirmation: false };
    }
  };

  /** A disposition or its countersignature: the API's idempotency key is the update id. */
  async function decide<Request extends { requestId: string }>(
    lotCaseWorkflowId: string,
    update: UpdateDefinition<DispositionOutcome, [Request]>,
    request: Request,
  ): Promise<DispositionOutcome> {
    try {
      return await within(updateTimeoutMs, () =>
        client.workflow
          .getHandle(lotCaseWorkflowId)
          .executeUpdate(update, { args: [request], updateId: request.requestId }),
      );
    } catch (err) {
      if (err instanceof WorkflowUpdateFailedError) {
        throw new DispositionRejectedError(err.cause?.message ?? err.message, { cause: err });
      }
      if (err instanceof TemporalWorkflowNotFoundError) {
        throw new WorkflowNotFoundError(`no open workflow ${lotCaseWorkflowId}`, { cause: err });
      }
      throw err;
    }
  }

  return {
    async dispatchDetection(request) {
      if (request.mode === 'shadow') return startShadow(request);
      const enrolment = lotCaseEnrolment(request.detection, request.policy, request.taskQueue);
      const { runId } = await within(rpcTimeoutMs, () => lotCases.enrol(enrolment));
      return { workflowId: enrolment.workflowId, runId, awaitsConfirmation: true };
    },

    describe,

    lotCaseState(workflowId) {
      return query(() => client.workflow.getHandle(workflowId).query(lotCaseStateQuery));
    },

    submitDisposition: (lotCaseWorkflowId, request) => decide(lotCaseWorkflowId, dispositionUpdate, request),
    countersignDisposition: (lotCaseWorkflowId, request) =>
      decide(lotCaseWorkflowId, countersignDispositionUpdate, request),

    async retryFailedStep(workflowId, requestedBy) {
      try {
        return await within(updateTimeoutMs, () =>
          client.workflow.getHandle(workflowId).executeUpdate(retryFailedStepUpdate, { args: [{ requestedBy }] }),
        );
      } catch (err) {
        if (err instanceof WorkflowUpdateFailedError) {
          throw new UpdateRejectedError(err.cause?.message ?? err.message, { cause: err });
        }
        if (err instanceof TemporalWorkflowNotFoundError) {
          throw new WorkflowNotFoundError(`no open workflow ${workflowId}`, { cause: err });
        }
        throw err;
      }
    },

    startRecall: (input) => within(rpcTimeoutMs, () => startRecallWorkflow(client, opts.taskQueue, input)),

    // The reason is Holdfast's to keep (the audit trail, the recall's row): Temporal's cancel request carries none.
    async cancelRecall(recallId) {
      const workflowId = recallWorkflowId(recallId);
      try {
        const handle = client.workflow.getHandle(workflowId);
        const { status } = await within(rpcTimeoutMs, () => handle.describe());
        if (status.name !== 'RUNNING') throw new WorkflowNotFoundError(`recall ${recallId} has ${status.name}`);
        await within(rpcTimeoutMs, () => handle.cancel());
      } catch (err) {
        if (err instanceof TemporalWorkflowNotFoundError) {
          throw new WorkflowNotFoundError(`no open workflow ${workflowId}`, { cause: err });
        }
        throw err;
      }
    },

    async acknowledgeRecallNotification(workflowId, acknowledgement) {
      try {
        await within(rpcTimeoutMs, () =>
          client.workflow.getHandle(workflowId).signal(recallAcknowledgedSignal, acknowledgement),
        );
      } catch (err) {
        if (err instanceof TemporalWorkflowNotFoundError) {
          throw new WorkflowNotFoundError(`no open workflow ${workflowId}`, { cause: err });
        }
        throw err;
      }
    },

    async qualityEscalationReleased(workflowId, escalationId) {
      try {
        await within(rpcTimeoutMs, () =>
          client.workflow.getHandle(workflowId).signal(qualityEscalationReleasedSignal, escalationId),
        );
      } catch (err) {
        // Closed (released before) or never started: the decision is stored, and a running one reads it.
        if (err instanceof TemporalWorkflowNotFoundError) return;
        throw err;
      }
    },

    async adviceDecided(site, line, adviceId) {
      try {
        await within(rpcTimeoutMs, () =>
          client.workflow.getHandle(lineQualityAdvisorWorkflowId(site, line)).signal(adviceDecidedSignal, adviceId),
        );
      } catch (err) {
        // No rule running for the line: the advice stays accepted and is sent when the rule runs.
        if (err instanceof TemporalWorkflowNotFoundError) return;
        throw err;
      }
    },
  };
}

/**
 * Task-queue priority of lot cases (1 goes first, 3 is Temporal's default, which shadow workflows keep): the lot case
 * holds the lot, the latency the line waits on, and its activities inherit its priority.
 */
export const LOT_CASE_PRIORITY = 1;

/** Starts the lot's case workflow if none is running and hands it the part (Temporal signal-with-start). */
export interface LotCaseStarter {
  enrol(args: {
    workflowId: string;
    taskQueue: string;
    input: LotCaseInput;
    part: DefectDetection;
  }): Promise<{ runId: string }>;
}

/** Signal-with-start of the lot's case workflow, by type name: the gateway never imports workflow code. */
export function createTemporalLotCaseStarter(client: Client): LotCaseStarter {
  return {
    async enrol({ workflowId, taskQueue, input, part }) {
      const handle = await client.workflow.signalWithStart<(i: LotCaseInput) => Promise<unknown>, [DefectDetection]>(
        LOT_CASE_WORKFLOW_TYPE,
        {
          workflowId,
          taskQueue,
          args: [input],
          signal: partDefectSignal,
          signalArgs: [part],
          priority: { priorityKey: LOT_CASE_PRIORITY },
          // The opening part's; the case adds the stations, work orders and defect classes of later parts itself.
          typedSearchAttributes: detectionSearchAttributes(part),
          staticSummary: `Lot ${input.lotId} hold case · ${input.site}/${input.line} · ${input.sku}`,
          staticDetails: `Hold cycle of lot \`${input.lotId}\` (work order \`${input.workOrder}\`), opened by part \`${part.partId}\` (${part.defects[0]?.class ?? 'defect'} at ${part.station}).`,
        },
      );
      return { runId: handle.signaledRunId };
    },
  };
}

/** One line for workflow lists: class, place, lot and part. */
export function defectStaticSummary(d: DefectDetection, prefix = ''): string {
  const summary = `${prefix}${d.defects[0]?.class ?? 'defect'} on ${d.site}/${d.line}/${d.station} · lot ${d.lotId} · part ${d.partId}`;
  return truncateUtf8(summary, STATIC_SUMMARY_MAX_BYTES);
}

export function defectStaticDetails(d: DefectDetection): string {
  const defects = d.defects.map((x) => `${md(x.class)} (${x.score.toFixed(3)})`).join(', ');
  const rows: [string, string][] = [
    ['Event', `\`${d.eventId}\``],
    ['Inspected at', md(d.inspectedAt)],
    ['Site / line / station', `${md(d.site)} / ${md(d.line)} / ${md(d.station)}`],
    ['Lot', md(d.lotId)],
    ['Work order', md(d.workOrder)],
    ['SKU', md(d.sku)],
    ['Part', md(d.partId)],
    ['Defects', defects],
    ['Model version', md(d.modelVersion)],
    ['Recipe version', md(d.recipeVersion)],
    ['Image', d.imageRef ? md(d.imageRef) : '—'],
  ];
  return ['**Vision defect detected**', '', '| | |', '|---|---|', ...rows.map(([k, v]) => `| ${k} | ${v} |`)].join(
    '\n',
  );
}

/** The gRPC status behind an SDK error (the SDK wraps service errors in ServiceError with the original as cause). */
function grpcCodeOf(err: unknown): number | undefined {
  for (let e: unknown = err; e instanceof Error; e = e.cause) {
    if (isGrpcServiceError(e)) return e.code;
  }
  return undefined;
}

/** Producer-supplied text goes into Markdown tables: escape what would change the rendering. */
function md(text: string): string {
  return text.replace(/[\\`*_[\]<>|#]/g, (c) => `\\${c}`).replace(/\s+/g, ' ');
}

function truncateUtf8(text: string, maxBytes: number): string {
  if (Buffer.byteLength(text, 'utf8') <= maxBytes) return text;
  let out = '';
  let bytes = 0;
  for (const ch of text) {
    const size = Buffer.byteLength(ch, 'utf8');
    if (bytes + size > maxBytes - 3) break;
    out += ch;
    bytes += size;
  }
  return `${out}…`;
}
