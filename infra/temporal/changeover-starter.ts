/**
 * Starts, reads, approves and cancels changeovers (docs/changeover.md): the MES intake's ChangeoverTrigger, and the
 * API's manual changeovers. One workflow per line and work order (changeoverWorkflowId), started by type name.
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
} from '@temporalio/client';
import type { ChangeoverTrigger, JobOrderEvent } from '../../activities/ports';
import type { HoldfastConfig } from '../config/schema';
import {
  approveFirstArticleUpdate,
  changeoverStatusQuery,
  changeoverWorkflowId,
  SearchAttributes,
  type ChangeoverInput,
  type ChangeoverStatus,
  type ChangeoverTriggerKind,
  type FirstArticleApproval,
  type SignatureManifest,
} from '../../workflows/contracts';
import { TemporalUnavailableError, UpdateRejectedError, WorkflowNotFoundError } from './gateway';

export const CHANGEOVER_WORKFLOW_TYPE = 'changeoverWorkflow';

/** How often the first-article activity reads the parts inspected so far. */
const FIRST_ARTICLE_POLL_INTERVAL = '2s';
/**
 * A step's calls, retries included, past which the changeover gives up, reverts and escalates: long enough to ride out
 * a PLC or MES restart, short enough that a line does not sit interlocked unnoticed.
 */
const STEP_TIMEOUT = '5m';
/** Between two read-backs of a station that did not yet report what was asked. */
const VERIFY_INTERVAL = '2s';

export interface ChangeoverRequest {
  site: string;
  line: string;
  workOrder: string;
  sku: string;
  trigger: ChangeoverTriggerKind;
  requestId: string;
  requestedBy: string;
  reason: string;
  dueAt: string;
  signature?: SignatureManifest;
}

/** The site or line is not in temporal.yaml: the API answers 404, the intake records the event as not applicable. */
export class UnknownLineError extends Error {
  override readonly name = 'UnknownLineError';
}

/** The changeover's workflow input: the line's stations and the step limits as temporal.yaml has them now. */
export function changeoverInput(config: HoldfastConfig, request: ChangeoverRequest): ChangeoverInput {
  const site = config.sites.find((s) => s.id === request.site);
  const line = site?.lines.find((l) => l.id === request.line);
  if (!site || !line) throw new UnknownLineError(`line ${request.site}/${request.line} is not configured`);
  const c = config.changeover;
  return {
    site: site.id,
    line: line.id,
    workOrder: request.workOrder,
    sku: request.sku,
    trigger: request.trigger,
    requestId: request.requestId,
    requestedBy: request.requestedBy,
    reason: request.reason,
    dueAt: request.dueAt,
    // An incoming-inspection station inspects received material, not the line's order: a changeover leaves it be.
    stations: line.stations
      .filter((s) => s.role !== 'incoming-inspection')
      .map((s) => ({
        station: s.id,
        ...(s.vision
          ? {
              vision: {
                connector: s.vision.connector,
                system: s.vision.system,
                externalRecipeId: Object.hasOwn(s.vision.recipes, request.sku)
                  ? (s.vision.recipes[request.sku] ?? null)
                  : null,
              },
            }
          : {}),
      })),
    interlock: site.lineControl !== undefined,
    options: {
      prepareTimeout: c.prepareTimeout,
      stepTimeout: STEP_TIMEOUT,
      verifyAttempts: c.verifyAttempts,
      verifyInterval: VERIFY_INTERVAL,
      firstArticleParts: c.firstArticleParts,
      firstArticleEscalateAfter: c.firstArticleEscalateAfter,
      firstArticleTimeout: c.firstArticleTimeout,
      firstArticlePollInterval: FIRST_ARTICLE_POLL_INTERVAL,
    },
    preset: config.activityPresets.mesCall,
    ...(request.signature ? { signature: request.signature } : {}),
  };
}

export interface ChangeoverStart {
  outcome: 'started' | 'already-running';
  workflowId: string;
}

export interface ChangeoverView {
  workflowId: string;
  runId: string;
  /** Temporal's execution status name: RUNNING, COMPLETED, FAILED, CANCELED, … */
  execution: string;
  /** Undefined when no worker answered the query in time. */
  status?: ChangeoverStatus;
}

/** A changeover running now, as Temporal's visibility lists it. */
export interface RunningChangeover {
  workflowId: string;
  runId: string;
  line: string;
  workOrder: string;
  /** The stage it last recorded (the ChangeoverState search attribute). */
  stage: string;
  startedAt: string;
}

/** What the API and the MES intake do with changeovers. */
export interface ChangeoverControl extends ChangeoverTrigger {
  /**
   * The changeovers running at a site (or line), at most 100, oldest first, within `timeoutMs`. Absent: this control
   * lists none (the dashboard then shows what PostgreSQL knows).
   */
  running?(site: string, line: string | undefined, timeoutMs: number): Promise<RunningChangeover[]>;
  start(request: ChangeoverRequest): Promise<ChangeoverStart>;
  /** Undefined: no changeover of this line and order. */
  view(site: string, line: string, workOrder: string): Promise<ChangeoverView | undefined>;
  /** UpdateRejectedError: not awaiting a first article; WorkflowNotFoundError: none open. */
  approveFirstArticle(
    site: string,
    line: string,
    workOrder: string,
    approval: FirstArticleApproval,
  ): Promise<ChangeoverStatus>;
  /** WorkflowNotFoundError: none open. */
  cancel(site: string, line: string, workOrder: string): Promise<void>;
}

export interface ChangeoverControlOptions {
  taskQueue: string;
  rpcTimeoutMs?: number;
  queryTimeoutMs?: number;
  updateTimeoutMs?: number;
}

export function createTemporalChangeoverControl(
  client: Client,
  config: HoldfastConfig,
  opts: ChangeoverControlOptions,
): ChangeoverControl {
  const rpcTimeoutMs = opts.rpcTimeoutMs ?? 10_000;
  const queryTimeoutMs = opts.queryTimeoutMs ?? 3_000;
  const updateTimeoutMs = opts.updateTimeoutMs ?? 30_000;
  const within = <T>(ms: number, fn: () => Promise<T>): Promise<T> => client.withDeadline(Date.now() + ms, fn);
  const notFound = (workflowId: string, err: unknown) =>
    new WorkflowNotFoundError(`no open changeover ${workflowId}`, { cause: err });

  const start = async (request: ChangeoverRequest): Promise<ChangeoverStart> => {
    const input = changeoverInput(config, request);
    const workflowId = changeoverWorkflowId(input.site, input.line, input.workOrder);
    try {
      await within(rpcTimeoutMs, () =>
        client.workflow.start(CHANGEOVER_WORKFLOW_TYPE, {
          workflowId,
          taskQueue: opts.taskQueue,
          args: [input],
          workflowIdConflictPolicy: 'FAIL',
          // An order event starts one changeover, ever: a replayed event finds even a closed one. A person may start
          // a failed or cancelled changeover again, once its cause is fixed.
          workflowIdReusePolicy: request.trigger === 'order-event' ? 'REJECT_DUPLICATE' : 'ALLOW_DUPLICATE_FAILED_ONLY',
          typedSearchAttributes: [
            { key: SearchAttributes.site, value: input.site },
            { key: SearchAttributes.line, value: input.line },
            { key: SearchAttributes.workOrder, value: [input.workOrder] },
            { key: SearchAttributes.sku, value: input.sku },
            { key: SearchAttributes.changeoverState, value: 'interlocking' },
          ],
          staticSummary: `Changeover of ${input.site}/${input.line} to work order ${input.workOrder} · ${input.sku}`,
        }),
      );
      return { outcome: 'started', workflowId };
    } catch (err) {
      if (err instanceof WorkflowExecutionAlreadyStartedError) return { outcome: 'already-running', workflowId };
      throw err;
    }
  };

  return {
    start,

    async running(site, line, timeoutMs) {
      const query = [
        `WorkflowType = ${visibilityLiteral(CHANGEOVER_WORKFLOW_TYPE)}`,
        `ExecutionStatus = 'Running'`,
        `${SearchAttributes.site.name} = ${visibilityLiteral(site)}`,
        ...(line !== undefined ? [`${SearchAttributes.line.name} = ${visibilityLiteral(line)}`] : []),
      ].join(' AND ');
      const found = await within(timeoutMs, async () => {
        const listed: RunningChangeover[] = [];
        for await (const wf of client.workflow.list({ query, pageSize: 100 })) {
          const attrs = wf.typedSearchAttributes;
          listed.push({
            workflowId: wf.workflowId,
            runId: wf.runId,
            line: attrs.get(SearchAttributes.line) ?? '',
            workOrder: attrs.get(SearchAttributes.workOrder)?.[0] ?? '',
            stage: attrs.get(SearchAttributes.changeoverState) ?? 'running',
            startedAt: wf.startTime.toISOString(),
          });
          if (listed.length >= 100) break;
        }
        return listed;
      });
      return found.sort((a, b) => a.startedAt.localeCompare(b.startedAt) || a.workflowId.localeCompare(b.workflowId));
    },

    async orderStarted(event: JobOrderEvent) {
      const site = config.sites.find((s) => s.id === event.site);
      const { outcome } = await start({
        site: event.site,
        line: event.line,
        workOrder: event.workOrder,
        sku: event.sku,
        trigger: 'order-event',
        requestId: event.eventId,
        requestedBy: site?.mes ?? 'mes',
        reason: `MES job-order event ${event.eventId} (started, revision ${event.revision})`,
        dueAt: event.publishedAt,
      });
      return outcome;
    },

    async view(site, line, workOrder) {
      const workflowId = changeoverWorkflowId(site, line, workOrder);
      const handle = client.workflow.getHandle(workflowId);
      let description;
      try {
        description = await within(rpcTimeoutMs, () => handle.describe());
      } catch (err) {
        if (err instanceof TemporalWorkflowNotFoundError) return undefined;
        throw err;
      }
      let status: ChangeoverStatus | undefined;
      try {
        status = await within(queryTimeoutMs, () => handle.query(changeoverStatusQuery));
      } catch (err) {
        // No worker answered in time, or the query is not there yet: the execution's status still answers.
        if (
          !(err instanceof QueryRejectedError) &&
          !(err instanceof QueryNotRegisteredError) &&
          !isGrpcDeadlineError(err) &&
          !isGrpcCancelledError(err)
        ) {
          throw err;
        }
      }
      return {
        workflowId,
        runId: description.runId,
        execution: description.status.name,
        ...(status ? { status } : {}),
      };
    },

    async approveFirstArticle(site, line, workOrder, approval) {
      const workflowId = changeoverWorkflowId(site, line, workOrder);
      try {
        return await within(updateTimeoutMs, () =>
          client.workflow
            .getHandle(workflowId)
            .executeUpdate(approveFirstArticleUpdate, { args: [approval], updateId: approval.requestId }),
        );
      } catch (err) {
        if (err instanceof WorkflowUpdateFailedError) {
          throw new UpdateRejectedError(err.cause?.message ?? err.message, { cause: err });
        }
        if (err instanceof TemporalWorkflowNotFoundError) throw notFound(workflowId, err);
        throw err;
      }
    },

    async cancel(site, line, workOrder) {
      const workflowId = changeoverWorkflowId(site, line, workOrder);
      const handle = client.workflow.getHandle(workflowId);
      try {
        const { status } = await within(rpcTimeoutMs, () => handle.describe());
        if (status.name !== 'RUNNING') throw new WorkflowNotFoundError(`changeover ${workflowId} has ${status.name}`);
        await within(rpcTimeoutMs, () => handle.cancel());
      } catch (err) {
        if (err instanceof TemporalWorkflowNotFoundError) throw notFound(workflowId, err);
        throw err;
      }
    },
  };
}

/** A control to hand out before Temporal is reachable (as createDeferredWorkflowGateway): 503 until `connect`. */
export function createDeferredChangeoverControl(): {
  control: ChangeoverControl;
  connect(real: ChangeoverControl): void;
} {
  let real: ChangeoverControl | undefined;
  const target = (): ChangeoverControl => {
    if (!real) throw new TemporalUnavailableError('not connected to Temporal yet');
    return real;
  };
  return {
    control: {
      start: async (request) => target().start(request),
      orderStarted: async (event) => target().orderStarted(event),
      view: async (site, line, workOrder) => target().view(site, line, workOrder),
      running: async (site, line, timeoutMs) => {
        const real = target();
        if (!real.running) throw new TemporalUnavailableError('this control lists no changeovers');
        return real.running(site, line, timeoutMs);
      },
      approveFirstArticle: async (site, line, workOrder, approval) =>
        target().approveFirstArticle(site, line, workOrder, approval),
      cancel: async (site, line, workOrder) => target().cancel(site, line, workOrder),
    },
    connect(control) {
      real = control;
    },
  };
}

/** A string literal of Temporal's visibility query language; configured names never need escaping, so none is done. */
function visibilityLiteral(value: string): string {
  if (/['"\\]/.test(value)) throw new Error(`not usable in a visibility query: ${JSON.stringify(value)}`);
  return `'${value}'`;
}
