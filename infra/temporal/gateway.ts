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
import {
  type DefectDetection,
  type DefectWorkflowInput,
  type DispositionOutcome,
  type DispositionRequest,
  type LotCaseInput,
  type LotCaseState,
  type DefectState,
  type PartDefect,
  type RetryFailedStepResult,
  SearchAttributes,
  defectStateQuery,
  defectWorkflowId,
  dispositionUpdate,
  lotCaseEnrolment,
  lotCaseStateQuery,
  partDefectSignal,
  retryFailedStepUpdate,
} from '../../workflows/contracts';

/** Started by name: the API and dispatcher never import workflow implementations. */
export const DEFECT_WORKFLOW_TYPE = 'defectWorkflow';
export const LOT_CASE_WORKFLOW_TYPE = 'lotCaseWorkflow';

export interface WorkflowDescription {
  workflowId: string;
  runId: string;
  /** Temporal's execution status name: RUNNING, COMPLETED, FAILED, TERMINATED, … */
  status: string;
  type: string;
  startTime: string;
  closeTime?: string;
}

export type DefectLiveState = DefectState;

export interface StartDefectOptions {
  /**
   * Hand the part to its lot case too (default). The outbox dispatcher says false for a part already contained: a
   * row dispatched again after its lot case closed (the first dispatch's commit was lost) must not open a new case.
   */
  enrol?: boolean;
}

export interface WorkflowGateway {
  startDefectWorkflow(
    input: DefectWorkflowInput,
    opts?: StartDefectOptions,
  ): Promise<{ workflowId: string; runId: string; alreadyStarted: boolean }>;
  describe(workflowId: string): Promise<WorkflowDescription | undefined>;
  defectState(workflowId: string): Promise<DefectLiveState | undefined>;
  lotCaseState(workflowId: string): Promise<LotCaseState | undefined>;
  submitDisposition(lotCaseWorkflowId: string, request: DispositionRequest): Promise<DispositionOutcome>;
  /** Re-runs the steps a case is parked on (needs-attention), once their cause was fixed in the MES or ERP. */
  retryFailedStep(workflowId: string, requestedBy: string): Promise<RetryFailedStepResult>;
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
      startDefectWorkflow: async (input, opts) => target().startDefectWorkflow(input, opts),
      describe: async (workflowId) => target().describe(workflowId),
      defectState: async (workflowId) => target().defectState(workflowId),
      lotCaseState: async (workflowId) => target().lotCaseState(workflowId),
      submitDisposition: async (workflowId, request) => target().submitDisposition(workflowId, request),
      retryFailedStep: async (workflowId, requestedBy) => target().retryFailedStep(workflowId, requestedBy),
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

  const startDefect = async (workflowId: string, input: DefectWorkflowInput) => {
    // FAIL (not USE_EXISTING) so the answer says whether this call created the run, in one round trip; REJECT_DUPLICATE
    // refuses a closed run with this id too. Either refusal means the defect is already handled, not an error.
    try {
      const handle = await within(rpcTimeoutMs, () =>
        client.workflow.start(DEFECT_WORKFLOW_TYPE, {
          workflowId,
          taskQueue: input.taskQueue,
          args: [input],
          workflowIdConflictPolicy: 'FAIL',
          workflowIdReusePolicy: 'REJECT_DUPLICATE',
          priority: { priorityKey: DEFECT_PRIORITY },
          typedSearchAttributes: detectionSearchAttributes(input.detection),
          staticSummary: defectStaticSummary(input),
          staticDetails: defectStaticDetails(input),
        }),
      );
      return { workflowId, runId: handle.firstExecutionRunId, alreadyStarted: false };
    } catch (err) {
      if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
      const closed = await describe(workflowId);
      if (!closed) throw err;
      return { workflowId, runId: closed.runId, alreadyStarted: true };
    }
  };

  return {
    async startDefectWorkflow(request, opts = {}) {
      const workflowId = defectWorkflowId(request.detection.eventId);
      if (request.mode === 'shadow') return startDefect(workflowId, request); // no lot case in shadow mode
      if (opts.enrol === false) return startDefect(workflowId, request);
      // The part goes to its lot case here, side by side with the defect workflow's start, rather than from that
      // workflow's first task: the MES hold no longer waits for a second workflow task (BENCHMARKS.md). Both calls
      // are idempotent (the start by its id, the lot case by the part's event id), so a re-sent outbox row is safe,
      // and the row counts as dispatched only once both succeeded.
      const part: PartDefect = { ...request.detection, defectWorkflowId: workflowId };
      const [started] = await Promise.all([
        startDefect(workflowId, request),
        within(rpcTimeoutMs, () => lotCases.enrol(lotCaseEnrolment(part, request.policy, request.taskQueue))),
      ]);
      return started;
    },

    describe,

    defectState(workflowId) {
      return query(() => client.workflow.getHandle(workflowId).query(defectStateQuery));
    },

    lotCaseState(workflowId) {
      return query(() => client.workflow.getHandle(workflowId).query(lotCaseStateQuery));
    },

    async submitDisposition(lotCaseWorkflowId, request) {
      try {
        return await within(updateTimeoutMs, () =>
          client.workflow
            .getHandle(lotCaseWorkflowId)
            .executeUpdate(dispositionUpdate, { args: [request], updateId: request.requestId }),
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
    },

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
  };
}

/**
 * Task-queue priorities (1 goes first, 3 is Temporal's default). The lot case holds the lot: that is the latency
 * the line waits on. A defect workflow only corrects the work order's counts and writes trace links, which can wait
 * a few seconds when more defects arrive than the workers can take; its activities inherit its priority.
 */
export const LOT_CASE_PRIORITY = 1;
export const DEFECT_PRIORITY = 3;

/** Starts the lot's case workflow if none is running and hands it the part (Temporal signal-with-start). */
export interface LotCaseStarter {
  enrol(args: {
    workflowId: string;
    taskQueue: string;
    input: LotCaseInput;
    part: PartDefect;
  }): Promise<{ runId: string }>;
}

/** Signal-with-start of the lot's case workflow, by type name: the gateway never imports workflow code. */
export function createTemporalLotCaseStarter(client: Client): LotCaseStarter {
  return {
    async enrol({ workflowId, taskQueue, input, part }) {
      const handle = await client.workflow.signalWithStart<(i: LotCaseInput) => Promise<unknown>, [PartDefect]>(
        LOT_CASE_WORKFLOW_TYPE,
        {
          workflowId,
          taskQueue,
          args: [input],
          signal: partDefectSignal,
          signalArgs: [part],
          priority: { priorityKey: LOT_CASE_PRIORITY },
          // The opening part's: the case's site, line, lot, work order and sku are the part's own.
          typedSearchAttributes: detectionSearchAttributes(part),
          staticSummary: `Lot ${input.lotId} hold case · ${input.site}/${input.line} · ${input.sku}`,
          staticDetails: `Hold cycle of lot \`${input.lotId}\` (work order \`${input.workOrder}\`), opened by part \`${part.partId}\` (${part.defects[0]?.class ?? 'defect'} at ${part.station}).`,
        },
      );
      return { runId: handle.signaledRunId };
    },
  };
}

/** The business search attributes of a detection: set on its defect workflow and on the lot case it opens. */
export function detectionSearchAttributes(d: DefectDetection) {
  return [
    { key: SearchAttributes.site, value: d.site },
    { key: SearchAttributes.line, value: d.line },
    { key: SearchAttributes.station, value: d.station },
    { key: SearchAttributes.lot, value: d.lotId },
    { key: SearchAttributes.workOrder, value: d.workOrder },
    { key: SearchAttributes.sku, value: d.sku },
    { key: SearchAttributes.defectClass, value: d.defects[0]?.class ?? 'unknown' },
    { key: SearchAttributes.dispositionState, value: 'containing' },
    { key: SearchAttributes.detectedAt, value: new Date(d.inspectedAt) },
  ];
}

export function defectStaticSummary(input: DefectWorkflowInput): string {
  const d = input.detection;
  const summary = `${d.defects[0]?.class ?? 'defect'} on ${d.site}/${d.line}/${d.station} · lot ${d.lotId} · part ${d.partId}`;
  return truncateUtf8(summary, STATIC_SUMMARY_MAX_BYTES);
}

export function defectStaticDetails(input: DefectWorkflowInput): string {
  const d = input.detection;
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
