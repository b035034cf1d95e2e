import { PassThrough } from 'node:stream';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { Gauge, type Registry } from 'prom-client';
import { z } from 'zod';
import { parseDurationMs } from '../../../infra/config/duration';
import { findSite } from '../../../infra/config/load';
import { notFound } from '../../../infra/http/problem-details';
import { ProblemSchema } from '../../../infra/http/schemas';
import type { AccessTarget } from '../../../infra/identity/access';
import type { ApiDeps } from '../../deps';
import {
  backlogs,
  latestFailedInspections,
  openLotCases,
  type RunningWork,
  runningWork,
} from '../../repositories/dashboard.repository';
import {
  DashboardSiteQuerySchema,
  type LiveEvent,
  type NowResponse,
  NowResponseSchema,
} from '../../schemas/dashboard.schema';
import { createConnectorHealth } from '../../services/connector-health.service';
import { createLiveFeed } from '../../services/live-feed.service';
import { READERS } from '../../support/access';
import { temporalUiWorkflowUrl } from '../../support/temporal-ui';

/** A comment line this often keeps proxies from closing an idle stream and lets the client notice a dead one. */
export const LIVE_PING_MS = 15_000;
/** What the client waits before it reconnects after the stream ends (the `retry:` field). */
export const LIVE_RETRY_MS = 3_000;
/** How long the Now view waits for Temporal's list of changeovers before it shows what PostgreSQL knows. */
export const CHANGEOVER_LIST_TIMEOUT_MS = 300;
/** A client that reads slower than events come is dropped past this much unsent, and reconnects. */
const LIVE_MAX_BUFFERED_BYTES = 1_048_576;

const siteTarget = (request: FastifyRequest): AccessTarget[] => {
  const { site, line } = request.query as { site: string; line?: string };
  return [{ site, ...(line !== undefined ? { line } : {}) }];
};
const readers = { access: { roles: READERS, machine: ['lots:read' as const] }, accessTargets: siteTarget };
const problems = { 400: ProblemSchema, 401: ProblemSchema, 403: ProblemSchema, 404: ProblemSchema };

const seconds = (from: Date, to: Date) => Math.max(0, Math.floor((to.getTime() - from.getTime()) / 1000));

function siteOf(deps: ApiDeps, site: string, line: string | undefined) {
  const found = findSite(deps.config, site);
  if (!found) throw notFound(`no site ${site} in the configuration`);
  if (line !== undefined && !found.lines.some((l) => l.id === line)) throw notFound(`no line ${line} at ${site}`);
  return found;
}

/** Running changeovers from Temporal's visibility, or undefined when it cannot say in time (down, slow, absent). */
async function listChangeovers(deps: ApiDeps, site: string, line: string | undefined) {
  const control = deps.changeovers;
  if (!control?.running) return undefined;
  let timer: NodeJS.Timeout | undefined;
  try {
    // The control bounds its own call; this bounds a control that does not.
    const found = await Promise.race([
      control.running(site, line, CHANGEOVER_LIST_TIMEOUT_MS),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error('no list in time')), CHANGEOVER_LIST_TIMEOUT_MS + 50);
      }),
    ]);
    return found.map((c): RunningWork => ({
      kind: 'changeover',
      id: c.workOrder,
      line: c.line,
      stage: c.stage,
      startedAt: new Date(c.startedAt),
      workflowId: c.workflowId,
    }));
  } catch {
    return undefined;
  } finally {
    clearTimeout(timer);
  }
}

/** One server-sent event (HTML Living Standard §9.2): its type, and its data as one line of JSON. */
const sseEvent = (event: LiveEvent) => `event: ${event.type}\ndata: ${JSON.stringify(event)}\n\n`;

const dashboardRoutes: FastifyPluginAsyncZod<{ deps: ApiDeps; metrics?: Registry }> = async (
  app,
  { deps, metrics },
) => {
  const connectors = createConnectorHealth({
    checks: deps.healthChecks,
    endpoints: deps.config.api.dashboard.healthEndpoints,
  });
  const feed = createLiveFeed({ connection: deps.pool.options, log: app.log });
  const liveMaxMs = parseDurationMs(deps.config.api.dashboard.liveMaxDuration);
  if (metrics) {
    new Gauge({
      name: 'holdfast_api_live_streams',
      help: 'Open GET /v1/live streams (server-sent events) of this API process.',
      registers: [metrics],
      collect() {
        this.set(feed.subscribers());
      },
    });
  }
  // Open streams would hold the server open: they end first (the pages reconnect to another process), and the close
  // goes on once their responses are out, so that the server finds their connections idle and closes them; then the
  // LISTEN connection closes.
  const responses = new Set<Promise<void>>();
  app.addHook('preClose', async () => {
    feed.endAll();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.all([...responses]),
      new Promise((resolve) => {
        timer = setTimeout(resolve, 2_000);
      }),
    ]);
    clearTimeout(timer);
  });
  app.addHook('onClose', async () => feed.close());

  app.get('/v1/dashboard/now', {
    config: readers,
    schema: {
      summary: "What is open and running now at a site (or line): the dashboard's first view",
      description:
        'From PostgreSQL alone, so it answers while Temporal is down: open lot cases by stage with their age against ' +
        'the site’s disposition deadline and their parked steps, running changeovers, recalls and drills, connector ' +
        'health (probed, answers kept 5 s), the outbox and deferred-frame backlogs (process-wide) and the latest ' +
        'failed inspections. docs/dashboard.md#now.',
      tags: ['dashboard'],
      querystring: DashboardSiteQuerySchema,
      response: { 200: NowResponseSchema, ...problems },
    },
    handler: async (request): Promise<NowResponse> => {
      const { site, line } = request.query;
      const siteConfig = siteOf(deps, site, line);
      const now = new Date();
      const at = { site, ...(line !== undefined ? { line } : {}) };
      const deadlineMs = parseDurationMs(siteConfig.policy.dispositionTimeout);
      const uiBase = deps.config.api.temporalUiUrl;
      const [cases, stored, listed, tiles, queues, defects] = await Promise.all([
        openLotCases(deps.pool, at, deadlineMs, now),
        runningWork(deps.pool, at),
        listChangeovers(deps, site, line),
        connectors.tiles(),
        backlogs(deps.pool),
        latestFailedInspections(deps.pool, at),
      ]);
      // Temporal knows every running changeover and its stage; PostgreSQL only those with a station armed.
      const running = [
        ...(listed ?? stored.filter((r) => r.kind === 'changeover')),
        ...stored.filter((r) => r.kind !== 'changeover'),
      ];
      return {
        site,
        line: line ?? null,
        generatedAt: now.toISOString(),
        lotCases: {
          open: cases.open,
          byStage: cases.byStage,
          overdue: cases.overdue,
          items: cases.items.map((c) => {
            const due = c.decided ? null : new Date(c.openedAt.getTime() + deadlineMs);
            return {
              lotId: c.lotId,
              line: c.line,
              sku: c.sku,
              stage: c.stage,
              workflowId: c.workflowId,
              runId: c.runId,
              openedAt: c.openedAt.toISOString(),
              ageSeconds: seconds(c.openedAt, now),
              dispositionDueAt: due?.toISOString() ?? null,
              overdue: due !== null && due.getTime() < now.getTime(),
              parkedSteps: c.parkedSteps,
              temporalUiUrl: temporalUiWorkflowUrl(uiBase, deps.namespace, c.workflowId, c.runId),
            };
          }),
        },
        running: running.map((r) => ({
          kind: r.kind,
          id: r.id,
          line: r.line,
          stage: r.stage,
          startedAt: r.startedAt.toISOString(),
          workflowId: r.workflowId,
          temporalUiUrl: temporalUiWorkflowUrl(uiBase, deps.namespace, r.workflowId),
        })),
        connectors: tiles,
        backlogs: {
          outboxPending: queues.outboxPending,
          outboxOldestAgeSeconds: queues.outboxOldestAt ? seconds(queues.outboxOldestAt, now) : null,
          deferredFrames: queues.deferredFrames,
          deferredOldestAgeSeconds: queues.deferredOldestAt ? seconds(queues.deferredOldestAt, now) : null,
        },
        latestDefects: defects.map((d) => ({ ...d, inspectedAt: d.inspectedAt.toISOString() })),
      };
    },
  });

  app.get('/v1/live', {
    config: readers,
    schema: {
      summary: "The dashboard's live updates: server-sent events of a site (or line)",
      description:
        '`text/event-stream`. `event: inspections`: a batch of inspections was stored (counts per site, the lines, ' +
        'and its failed inspections, at most 20); `event: lot-case`: a lot case opened or changed stage. A comment ' +
        `every ${LIVE_PING_MS / 1000} s; \`retry:\` says how long to wait before reconnecting. The stream ends ` +
        'after `api.dashboard.liveMaxDuration` and whenever the process can no longer promise every event (its ' +
        'LISTEN connection dropped, it shuts down): reconnect, then read /v1/dashboard/now again. ' +
        'docs/dashboard.md#live-updates.',
      tags: ['dashboard'],
      querystring: DashboardSiteQuerySchema,
      response: {
        200: {
          description: 'The stream of events, open until it ends as described',
          content: { 'text/event-stream': { schema: z.string() } },
        },
        ...problems,
      },
    },
    handler: async (request, reply) => {
      const { site, line } = request.query;
      siteOf(deps, site, line);
      const stream = new PassThrough();
      let ping: NodeJS.Timeout | undefined;
      let lifetime: NodeJS.Timeout | undefined;
      let unsubscribe: (() => void) | undefined;
      const finish = () => {
        clearInterval(ping);
        clearTimeout(lifetime);
        unsubscribe?.();
        unsubscribe = undefined;
      };
      const write = (chunk: string) => {
        if (stream.writableEnded || stream.destroyed) return;
        stream.write(chunk);
        if (stream.writableLength > LIVE_MAX_BUFFERED_BYTES) stream.end();
      };
      // Ended by us (end of life, shutdown, lost LISTEN) or destroyed by fastify when the client goes away.
      stream.once('close', finish);
      stream.once('finish', finish);
      unsubscribe = await feed.subscribe({
        site,
        ...(line !== undefined ? { line } : {}),
        send: (event) => write(sseEvent(event)),
        end: () => stream.end(),
      });
      if (stream.destroyed) finish();
      ping = setInterval(() => write(': ping\n\n'), LIVE_PING_MS);
      lifetime = setTimeout(() => stream.end(), liveMaxMs);
      // The first bytes make fastify send the headers, so the client knows the stream is open.
      write(`retry: ${LIVE_RETRY_MS}\n: live updates of ${site}${line !== undefined ? `/${line}` : ''}\n\n`);
      const closed = new Promise<void>((resolve) => reply.raw.once('close', () => resolve()));
      responses.add(closed);
      void closed.then(() => responses.delete(closed));
      const untyped: FastifyReply = reply;
      return untyped
        .header('content-type', 'text/event-stream; charset=utf-8')
        .header('cache-control', 'no-cache, no-transform')
        .header('x-accel-buffering', 'no')
        .send(stream);
    },
  });
};

export default dashboardRoutes;
