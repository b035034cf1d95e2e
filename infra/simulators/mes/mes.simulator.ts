import { createHash, timingSafeEqual } from 'node:crypto';
import Fastify, { type FastifyError, type FastifyInstance, type FastifyReply } from 'fastify';
import {
  hasZodFastifySchemaValidationErrors,
  serializerCompiler,
  validatorCompiler,
  type ZodTypeProvider,
} from 'fastify-type-provider-zod';
import type { Pool } from 'pg';
import { z } from 'zod';
import { registerFaultInjection } from '../shared/faults';
import {
  Counts,
  Hold,
  HoldBody,
  HoldParams,
  HoldQuery,
  HoldReleased,
  Lot,
  LotParams,
  type Problem,
  QualityEvent,
  QualityEventBody,
  QualityEventCreated,
  QualityEventQuery,
  ReleaseBody,
  SimLotBody,
  SimWorkOrderBody,
  WorkOrder,
  WorkOrderParams,
} from './mes.schemas';
import { createMesStore, MesProblem } from './mes.store';
import {
  EventParams,
  JobOrderEvent,
  JobOrderEventsPage,
  JobOrderEventsQuery,
  LineOrders,
  LineParams,
  ProductionRelease,
  ProductionReleaseBody,
  Republished,
  Resequencing,
  ResequencingBody,
  ResequencingParams,
  ResequencingQuery,
  SimJobOrderChange,
  SimJobOrderComplete,
  SimJobOrderRelease,
  SimJobOrderStart,
  WorkOrderParams as JobOrderParams,
} from './job-order.schema';
import { createJobOrderStore } from './job-orders';
import { ProductionEventsLoad, ProductionEventsPage, ProductionEventsQuery } from './production-event.schema';
import {
  connectProductionEventPublisher,
  createProductionEventStore,
  type ProductionEventBroker,
} from './production-events';
import {
  HoldLineParams,
  HoldOrderParams,
  LineHoldBody,
  LineStatus,
  OrderHoldBody,
  ProductionHold,
  ProductionHoldCounts,
  ProductionHoldParams,
  ProductionHoldQuery,
  ProductionHoldReleaseBody,
} from './production-hold.schema';
import { createProductionHoldStore } from './production-holds';
import { fastifyLogging } from '../../observability/fastify-logging';
import type { Logger } from '../../observability/logger';

export interface MesSimulatorOptions {
  pool: Pool;
  /** PostgreSQL schema holding the simulator's state; tests pass a unique one. */
  schema?: string;
  /** When set, every request except GET /health and GET /metrics must carry it in X-API-Key. */
  apiKey?: string;
  seedDemo?: boolean;
  /** The process's logger (main.ts); tests leave it out and the simulator logs nothing. */
  logger?: Logger;
  /** Publish production events to this broker as well as keeping them for the REST cursor. */
  productionEventBroker?: ProductionEventBroker;
}

export const MES_SIMULATOR_SYSTEM = 'holdfast-mes-rest';
const DEFAULT_SCHEMA = 'mes_sim';
const API = '/api/v1';
/** A history load carries thousands of events per request. */
const PRODUCTION_EVENTS_BODY_LIMIT = 256 * 1024 * 1024;

const PROBLEM_TITLES: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  404: 'Not Found',
  409: 'Conflict',
  413: 'Content Too Large',
  415: 'Unsupported Media Type',
  422: 'Unprocessable Content',
  500: 'Internal Server Error',
};

/** RFC 9457 problem details, plus the MES error `code` clients branch on. */
function sendProblem(reply: FastifyReply, status: number, code: string, detail: string, errors?: Problem['errors']) {
  const problem: Problem = {
    type: 'about:blank',
    title: PROBLEM_TITLES[status] ?? 'Error',
    status,
    code,
    detail,
    ...(errors ? { errors } : {}),
  };
  return reply.code(status).type('application/problem+json').send(problem);
}

const digest = (value: string) => createHash('sha256').update(value).digest();

/**
 * Holdfast's reference MES ("holdfast-mes-rest"): lots, holds, work orders and quality events over REST, state in
 * PostgreSQL, fault injection under /__faults. Like most MES it does not de-duplicate repeated POSTs: clients
 * must look up by externalReference before creating.
 */
export async function buildMesSimulator(opts: MesSimulatorOptions): Promise<FastifyInstance> {
  const store = createMesStore(opts.pool, opts.schema ?? DEFAULT_SCHEMA);
  await store.migrate();
  if (opts.seedDemo) await store.seedDemo();
  const productionEvents = createProductionEventStore(opts.pool, opts.schema ?? DEFAULT_SCHEMA);
  await productionEvents.migrate();
  const jobOrders = createJobOrderStore(opts.pool, opts.schema ?? DEFAULT_SCHEMA);
  await jobOrders.migrate();
  const productionHolds = createProductionHoldStore(opts.pool, opts.schema ?? DEFAULT_SCHEMA);
  await productionHolds.migrate();
  const publisher = opts.productionEventBroker
    ? await connectProductionEventPublisher(opts.productionEventBroker)
    : undefined;

  const app = Fastify(fastifyLogging(opts.logger));
  if (publisher) app.addHook('onClose', () => publisher.close());
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);

  if (opts.apiKey) {
    const expected = digest(opts.apiKey);
    app.addHook('onRequest', async (req, reply) => {
      // Probes and scrapers: a Prometheus scrape cannot send a custom header.
      if (req.method === 'GET' && (req.url === '/health' || req.url === '/metrics')) return;
      const given = req.headers['x-api-key'];
      // Compare digests so the comparison time does not depend on how much of the key matched.
      if (typeof given !== 'string' || !timingSafeEqual(digest(given), expected)) {
        return sendProblem(reply, 401, 'UNAUTHORIZED', 'missing or wrong X-API-Key header');
      }
    });
  }
  registerFaultInjection(app);

  app.setNotFoundHandler((req, reply) => sendProblem(reply, 404, 'NOT_FOUND', `no route ${req.method} ${req.url}`));

  app.setErrorHandler((err: FastifyError, req, reply) => {
    if (err instanceof MesProblem) return sendProblem(reply, err.status, err.code, err.message);
    if (hasZodFastifySchemaValidationErrors(err)) {
      const where = err.validationContext ?? 'request';
      const errors = err.validation.map((v) => {
        const path = v.instancePath.replace(/^\//, '').replaceAll('/', '.');
        return { field: path ? `${where}.${path}` : where, message: v.message ?? 'invalid' };
      });
      const detail = errors.map((e) => `${e.field}: ${e.message}`).join('; ');
      return sendProblem(reply, 400, 'INVALID_REQUEST', detail, errors);
    }
    if (err.statusCode !== undefined && err.statusCode >= 400 && err.statusCode < 500) {
      return sendProblem(
        reply,
        err.statusCode,
        err.statusCode === 400 ? 'INVALID_REQUEST' : 'BAD_REQUEST',
        err.message,
      );
    }
    req.log.error({ err }, 'MES simulator request failed');
    return sendProblem(reply, 500, 'INTERNAL', 'internal error');
  });

  const r = app.withTypeProvider<ZodTypeProvider>();

  r.get('/health', { schema: { response: { 200: z.object({ status: z.literal('ok') }) } } }, async () => ({
    status: 'ok' as const,
  }));

  // Lots and holds ----------------------------------------------------------------------------------------------

  r.get(`${API}/lots/:lotId`, { schema: { params: LotParams, response: { 200: Lot } } }, async (req) =>
    store.getLot(req.params.lotId),
  );

  r.post(
    `${API}/lots/:lotId/holds`,
    { schema: { params: LotParams, body: HoldBody, response: { 201: Hold } } },
    async (req, reply) => reply.code(201).send(await store.holdLot(req.params.lotId, req.body)),
  );

  r.get(
    `${API}/holds`,
    { schema: { querystring: HoldQuery, response: { 200: z.object({ items: z.array(Hold) }) } } },
    async (req) => ({
      items: await store.findHolds(req.query),
    }),
  );

  r.get(`${API}/holds/:holdId`, { schema: { params: HoldParams, response: { 200: Hold } } }, async (req) =>
    store.getHold(req.params.holdId),
  );

  r.post(
    `${API}/holds/:holdId/release`,
    { schema: { params: HoldParams, body: ReleaseBody, response: { 200: HoldReleased } } },
    async (req) => store.releaseHold(req.params.holdId, req.body),
  );

  // Work orders and quality events ----------------------------------------------------------------------------

  r.get(
    `${API}/work-orders/:workOrder`,
    { schema: { params: WorkOrderParams, response: { 200: WorkOrder } } },
    async (req) => store.getWorkOrder(req.params.workOrder),
  );

  r.post(
    `${API}/work-orders/:workOrder/quality-events`,
    { schema: { params: WorkOrderParams, body: QualityEventBody, response: { 201: QualityEventCreated } } },
    async (req, reply) => reply.code(201).send(await store.recordQualityEvent(req.params.workOrder, req.body)),
  );

  r.get(
    `${API}/work-orders/:workOrder/quality-events`,
    {
      schema: {
        params: WorkOrderParams,
        querystring: QualityEventQuery,
        response: { 200: z.object({ items: z.array(QualityEvent) }) },
      },
    },
    async (req) => ({ items: await store.findQualityEvents(req.params.workOrder, req.query) }),
  );

  // Admin, for tests, benchmarks and the camera simulator -----------------------------------------------------

  r.post(
    '/__sim/work-orders',
    { schema: { body: SimWorkOrderBody, response: { 200: WorkOrder, 201: WorkOrder } } },
    async (req, reply) => {
      const { created, workOrder } = await store.createWorkOrder(req.body);
      return reply.code(created ? 201 : 200).send(workOrder);
    },
  );

  r.post('/__sim/lots', { schema: { body: SimLotBody, response: { 200: Lot, 201: Lot } } }, async (req, reply) => {
    const { created, lot } = await store.createLot(req.body);
    return reply.code(created ? 201 : 200).send(lot);
  });

  // Production performance: the REST fallback of the UNS topics, read with a cursor.
  r.get(
    `${API}/production-events`,
    { schema: { querystring: ProductionEventsQuery, response: { 200: ProductionEventsPage } } },
    async (req) => productionEvents.list(req.query.after, req.query.limit),
  );

  // What the shop floor reports (the plant history generator): kept once per event id, published as given.
  r.post(
    '/__sim/production-events',
    { bodyLimit: PRODUCTION_EVENTS_BODY_LIMIT, schema: { body: ProductionEventsLoad } },
    async (req, reply) => {
      const recorded = await productionEvents.record(req.body.events);
      await publisher?.publish(req.body.events);
      return reply.code(201).send({ ...recorded, published: publisher ? req.body.events.length : 0 });
    },
  );

  // Job orders (production orders as ISA-95 job orders) -------------------------------------------------------

  /** Publishes what a change emitted, unless the caller keeps it for the REST cursor only (a missed MQTT message). */
  const emitted = async (events: JobOrderEvent[], publish = true): Promise<void> => {
    if (publish && publisher) await publisher.publishJobOrders(events);
  };

  r.get(
    `${API}/job-order-events`,
    { schema: { querystring: JobOrderEventsQuery, response: { 200: JobOrderEventsPage } } },
    async (req) => jobOrders.list(req.query.after, req.query.limit),
  );

  r.post(
    `${API}/work-orders/:workOrder/production-release`,
    {
      schema: {
        params: JobOrderParams,
        body: ProductionReleaseBody,
        response: { 200: ProductionRelease, 201: ProductionRelease },
      },
    },
    async (req, reply) => {
      const { created, release } = await jobOrders.releaseForProduction(req.params.workOrder, req.body);
      return reply.code(created ? 201 : 200).send(release);
    },
  );

  r.get(
    `${API}/work-orders/:workOrder/production-release`,
    { schema: { params: JobOrderParams, response: { 200: ProductionRelease } } },
    async (req) => jobOrders.getProductionRelease(req.params.workOrder),
  );

  r.get(
    `${API}/lines/:line/orders`,
    { schema: { params: LineParams, response: { 200: LineOrders } } },
    async (req) => ({
      items: await jobOrders.lineOrders(req.params.line),
    }),
  );

  r.post(
    `${API}/resequencing-requests`,
    { schema: { body: ResequencingBody, response: { 201: Resequencing } } },
    async (req, reply) => {
      const { result, events } = await jobOrders.requestResequencing(req.body);
      await emitted(events);
      return reply.code(201).send(result);
    },
  );

  r.get(
    `${API}/resequencing-requests`,
    { schema: { querystring: ResequencingQuery, response: { 200: z.object({ items: z.array(Resequencing) }) } } },
    async (req) => ({ items: await jobOrders.findResequencing(req.query.externalReference) }),
  );

  r.get(
    `${API}/resequencing-requests/:requestId`,
    { schema: { params: ResequencingParams, response: { 200: Resequencing } } },
    async (req) => jobOrders.getResequencing(req.params.requestId),
  );

  // Driving the orders (tests, the bench): each call is one event with the order's next revision.
  r.post(
    '/__sim/job-orders',
    { schema: { body: SimJobOrderRelease, response: { 201: JobOrderEvent } } },
    async (req, reply) => {
      const event = await jobOrders.release(req.body);
      await emitted([event], req.body.publish);
      return reply.code(201).send(event);
    },
  );

  r.post(
    '/__sim/job-orders/:workOrder/start',
    { schema: { params: JobOrderParams, body: SimJobOrderStart, response: { 201: JobOrderEvent } } },
    async (req, reply) => {
      const event = await jobOrders.start(req.params.workOrder, req.body.line);
      await emitted([event], req.body.publish);
      return reply.code(201).send(event);
    },
  );

  r.post(
    '/__sim/job-orders/:workOrder/change',
    { schema: { params: JobOrderParams, body: SimJobOrderChange, response: { 201: JobOrderEvent } } },
    async (req, reply) => {
      const { publish, ...fields } = req.body;
      const event = await jobOrders.change(req.params.workOrder, fields);
      await emitted([event], publish);
      return reply.code(201).send(event);
    },
  );

  r.post(
    '/__sim/job-orders/:workOrder/complete',
    { schema: { params: JobOrderParams, body: SimJobOrderComplete, response: { 201: JobOrderEvent } } },
    async (req, reply) => {
      const event = await jobOrders.complete(req.params.workOrder);
      await emitted([event], req.body.publish);
      return reply.code(201).send(event);
    },
  );

  // A recorded event published again as it was: a replay, or (events held back with publish: false and republished
  // in another order) an out-of-order delivery.
  r.post(
    '/__sim/job-order-events/:eventId/republish',
    { schema: { params: EventParams, response: { 200: Republished } } },
    async (req) => {
      const event = await jobOrders.getEvent(req.params.eventId);
      await emitted([event]);
      return { event, published: publisher !== undefined };
    },
  );

  r.get('/__sim/counts', { schema: { response: { 200: Counts } } }, async () => store.counts());

  // Production holds: a line or a work order stopped until released ------------------------------------------

  r.post(
    `${API}/lines/:line/holds`,
    { schema: { params: HoldLineParams, body: LineHoldBody, response: { 201: ProductionHold } } },
    async (req, reply) => reply.code(201).send(await productionHolds.holdLine(req.params.line, req.body)),
  );

  r.get(
    `${API}/lines/:line/status`,
    { schema: { params: HoldLineParams, response: { 200: LineStatus } } },
    async (req) => productionHolds.lineStatus(req.params.line),
  );

  r.post(
    `${API}/work-orders/:workOrder/holds`,
    { schema: { params: HoldOrderParams, body: OrderHoldBody, response: { 201: ProductionHold } } },
    async (req, reply) => reply.code(201).send(await productionHolds.holdOrder(req.params.workOrder, req.body)),
  );

  r.get(
    `${API}/production-holds`,
    { schema: { querystring: ProductionHoldQuery, response: { 200: z.object({ items: z.array(ProductionHold) }) } } },
    async (req) => ({ items: await productionHolds.find(req.query) }),
  );

  r.get(
    `${API}/production-holds/:holdId`,
    { schema: { params: ProductionHoldParams, response: { 200: ProductionHold } } },
    async (req) => productionHolds.get(req.params.holdId),
  );

  r.post(
    `${API}/production-holds/:holdId/release`,
    { schema: { params: ProductionHoldParams, body: ProductionHoldReleaseBody, response: { 200: ProductionHold } } },
    async (req) => productionHolds.release(req.params.holdId, req.body),
  );

  r.get('/__sim/production-holds/counts', { schema: { response: { 200: ProductionHoldCounts } } }, async () =>
    productionHolds.counts(),
  );

  return app;
}
