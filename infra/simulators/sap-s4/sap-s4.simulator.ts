import { randomUUID, timingSafeEqual } from 'node:crypto';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type pg from 'pg';
import { z } from 'zod';
import { DEMO_LOTS } from '../demo-plant';
import { registerFaultInjection } from '../shared/faults';
import {
  CsrfSessionStore,
  parseCookieHeader,
  sessionCookieName,
  SIMULATED_SYSTEM_ID,
  xsrfCookieName,
} from './csrf-session';
import { createMaterialDocumentService } from './material-document.service';
import { HistoryLoad, HistoryLoadError, loadHistory } from './history';
import { materialStockService } from './material-stock.service';
import { outboundDeliveryService } from './outbound-delivery.service';
import { purchaseOrderService, supplierEvaluationService } from './purchasing.service';
import {
  applySelect,
  parseQueryOptions,
  parseResourcePath,
  SapODataError,
  sapErrorBody,
  type QueryOptions,
  type SapServiceRef,
} from './odata';
import type { Entity, EntitySetHandler, ODataService, ServiceContext } from './odata-service';
import { handleODataV4, v4ErrorBody, type ODataV4Service } from './odata-v4';
import { createQualityNotificationService } from './quality-notification.service';
import {
  erpFeedPostings,
  journalEntryService,
  productionOrderConfirmationService,
  productValuationService,
  setStandardPrice,
} from './erp-feed.services';
import { SapMessages } from './sap-messages';
import {
  countDocuments,
  ensureSimulatorSchema,
  quoteSchema,
  seedUnrestrictedStock,
  setUnrestrictedStock,
} from './sap-s4.schema';
import { fastifyLogging } from '../../observability/fastify-logging';
import type { Logger } from '../../observability/logger';
import { QUALITY_NOTIFICATION_SERVICE, SAP_SERVICES } from '../../vendor-apis/sap-s4/metadata';

export interface SapS4SimulatorOptions {
  pool: pg.Pool;
  /** PostgreSQL schema for the simulator's tables; tests pass a unique one. */
  schema?: string;
  credentials: { username: string; password: string };
  /** Seeds unrestricted stock for every demo lot (infra/simulators/demo-plant.ts); idempotent across restarts. */
  seedDemo?: boolean;
  /** Idle lifetime of an HTTP session and its CSRF token. */
  sessionTtlMs?: number;
  /** The process's logger (main.ts); tests leave it out and the simulator logs nothing. */
  logger?: Logger;
  /** OData V2 services this system has not activated (/IWFND/MAINT_SERVICE): answered as unknown. */
  inactiveServices?: string[];
}

export const ODATA_ROOT = '/sap/opu/odata/sap';
const DEFAULT_SAP_CLIENT = '100';
const DEFAULT_SESSION_TTL_MS = 30 * 60_000;
/** A history load carries thousands of documents per request. */
const HISTORY_BODY_LIMIT = 256 * 1024 * 1024;
/** OData V4 services answer at their own path (metadata.ts), outside the V2 root. */
const QUALITY_NOTIFICATION_PATH = SAP_SERVICES[QUALITY_NOTIFICATION_SERVICE]!.path;

const StockSetting = z.strictObject({
  material: z.string().min(1).max(40),
  plant: z.string().min(1).max(4),
  storageLocation: z.string().min(1).max(4),
  batch: z.string().min(1).max(10),
  quantity: z.number().nonnegative(),
  unit: z.string().min(1).max(3),
  /** A batch bought from a supplier: the purchase order item it was received on (a 122 must name it). */
  receipt: z
    .strictObject({
      purchaseOrder: z.string().min(1).max(10),
      purchaseOrderItem: z.string().regex(/^\d{5}$/, 'five digits, e.g. 00010'),
      supplier: z.string().min(1).max(10),
    })
    .optional(),
});

const StandardPriceSetting = z.strictObject({
  product: z.string().min(1).max(40),
  valuationArea: z.string().min(1).max(4),
  standardPrice: z.number().nonnegative(),
  priceUnitQty: z.number().int().positive().default(1),
  currency: z.string().min(1).max(5),
});

const AnswersWithoutItems = z.strictObject({ count: z.number().int().positive().default(1) });
const NotificationChangeSetting = z.strictObject({ when: z.enum(['now', 'after-next-read']).default('now') });

/**
 * An SAP S/4HANA stand-in that speaks OData the way SAP does (Basic auth, CSRF handshake, V2 envelopes and SAP Gateway
 * error bodies for material documents and stock, OData V4 with ETags for quality notifications), with state in
 * PostgreSQL. It does not de-duplicate repeated POSTs, as SAP does not; fault injection (/__faults) and admin controls
 * (/__sim) drive tests and benchmarks.
 */
export async function buildSapS4Simulator(opts: SapS4SimulatorOptions): Promise<FastifyInstance> {
  const schema = opts.schema ?? 'sap_sim';
  const s = quoteSchema(schema);
  await ensureSimulatorSchema(opts.pool, schema);
  if (opts.seedDemo) {
    await seedUnrestrictedStock(
      opts.pool,
      schema,
      DEMO_LOTS.map((lot) => ({
        material: lot.sku,
        plant: lot.erpPlant,
        storageLocation: lot.storageLocation,
        batch: lot.batch,
        quantity: lot.quantity,
        unit: lot.unit,
        ...(lot.supplier && lot.purchaseOrder && lot.purchaseOrderItem
          ? {
              receipt: {
                purchaseOrder: lot.purchaseOrder,
                purchaseOrderItem: lot.purchaseOrderItem,
                supplier: lot.supplier,
              },
            }
          : {}),
      })),
    );
  }

  // Test control: the next N material-document creates are answered without their items, as some systems do.
  let answersWithoutItems = 0;
  const services: ODataService[] = [
    createMaterialDocumentService({
      takeAnswerWithoutItems() {
        if (answersWithoutItems === 0) return false;
        answersWithoutItems--;
        return true;
      },
    }),
    materialStockService,
    outboundDeliveryService,
    productionOrderConfirmationService,
    productValuationService,
    journalEntryService,
    purchaseOrderService,
    supplierEvaluationService,
  ];

  const sessions = new CsrfSessionStore(opts.sessionTtlMs ?? DEFAULT_SESSION_TTL_MS);
  const qualityNotifications = createQualityNotificationService();
  const app = Fastify({ ...fastifyLogging(opts.logger), exposeHeadRoutes: false });
  // OData V2 clients may update with MERGE (the V2 verb for a partial update) besides PATCH.
  app.addHttpMethod('MERGE', { hasBody: true });
  registerFaultInjection(app);

  app.setErrorHandler((err: { statusCode?: number; message: string }, req, reply) => {
    const status = err.statusCode && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 500;
    if (status === 500) req.log.error({ err }, 'SAP simulator request failed');
    const message = status === 500 ? 'Internal server error' : err.message;
    if (req.url.startsWith(ODATA_ROOT)) {
      return reply
        .code(status)
        .send(sapErrorBody(new SapODataError(status, '/IWBEP/CM_MGW_RT/000', message), transactionId()));
    }
    if (req.url.startsWith(QUALITY_NOTIFICATION_PATH)) {
      const err = new SapODataError(status, '/IWBEP/CM_MGW_RT/000', message);
      return reply.code(status).send(v4ErrorBody(err, transactionId()));
    }
    return reply.code(status).type('application/problem+json').send({ title: message, status });
  });

  app.get('/health', async () => {
    await opts.pool.query('SELECT 1');
    return { status: 'ok' };
  });

  app.post('/__sim/stock', async (req, reply) => {
    const parsed = StockSetting.safeParse(req.body);
    if (!parsed.success) {
      return reply
        .code(400)
        .type('application/problem+json')
        .send({ title: 'invalid stock setting', status: 400, errors: parsed.error.issues });
    }
    await setUnrestrictedStock(opts.pool, schema, parsed.data);
    return reply.code(204).send();
  });
  app.get('/__sim/counts', async () => countDocuments(opts.pool, schema));
  app.post('/__sim/standard-price', async (req, reply) => {
    const parsed = StandardPriceSetting.safeParse(req.body);
    if (!parsed.success) {
      return reply
        .code(400)
        .type('application/problem+json')
        .send({ title: 'invalid standard price', status: 400, errors: parsed.error.issues });
    }
    await setStandardPrice(opts.pool, schema, parsed.data);
    return reply.code(204).send();
  });
  // Every confirmation and journal entry posted, in posting order: what a test counts to show "posted once".
  app.get('/__sim/erp-feed-postings', async () => erpFeedPostings(opts.pool, schema));
  // Every change document of purchase order items (the holds set), oldest first.
  app.get('/__sim/purchase-order-changes', async () => {
    const { rows } = await opts.pool.query(
      `SELECT purchase_order AS "purchaseOrder", purchase_order_item AS "purchaseOrderItem", field,
              old_value AS "oldValue", new_value AS "newValue", changed_by_user AS "changedBy"
         FROM ${s}.purchase_order_item_change ORDER BY change_id`,
    );
    return { changes: rows };
  });
  // A plant's past in bulk (infra/simulators/plant-history): large bodies, one transaction.
  app.post('/__sim/history', { bodyLimit: HISTORY_BODY_LIMIT }, async (req, reply) => {
    const parsed = HistoryLoad.safeParse(req.body);
    if (!parsed.success) {
      return reply
        .code(400)
        .type('application/problem+json')
        .send({ title: 'invalid history', status: 400, errors: parsed.error.issues });
    }
    try {
      const loaded = await loadHistory(opts.pool, schema, parsed.data);
      return reply.code(201).send(loaded);
    } catch (err) {
      if (!(err instanceof HistoryLoadError)) throw err;
      return reply
        .code(400)
        .type('application/problem+json')
        .send({ title: 'invalid history', status: 400, detail: err.message, errors: [{ path: err.field }] });
    }
  });
  app.post('/__sim/material-documents/answer-without-items', async (req, reply) => {
    const parsed = AnswersWithoutItems.safeParse(req.body ?? {});
    if (!parsed.success) {
      return reply
        .code(400)
        .type('application/problem+json')
        .send({ title: 'invalid control', status: 400, errors: parsed.error.issues });
    }
    answersWithoutItems = parsed.data.count;
    return reply.code(204).send();
  });
  app.post('/__sim/expire-sessions', async () => ({ expired: sessions.expireAll() }));
  app.post('/__sim/quality-notifications/omit-items-on-next-create', async (_req, reply) => {
    qualityNotifications.controls.omitItemsOnNextCreate();
    return reply.code(204).send();
  });
  app.post<{ Params: { notification: string } }>(
    '/__sim/quality-notifications/:notification/change',
    async (req, reply) => {
      const parsed = NotificationChangeSetting.safeParse(req.body ?? {});
      if (!parsed.success) {
        return reply
          .code(400)
          .type('application/problem+json')
          .send({ title: 'invalid change setting', status: 400, errors: parsed.error.issues });
      }
      const { notification } = req.params;
      const changed = await qualityNotifications.controls.changeBehindCallersBack(
        opts.pool,
        s,
        notification,
        parsed.data.when,
      );
      if (changed) return reply.code(204).send();
      return reply
        .code(404)
        .type('application/problem+json')
        .send({ title: `no quality notification ${notification}`, status: 404 });
    },
  );

  const handler = (req: FastifyRequest, reply: FastifyReply) => handleOData(req, reply, opts, services, sessions, s);
  const methods = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'MERGE', 'DELETE'];
  app.route({ method: methods, url: `${ODATA_ROOT}/:service`, handler });
  app.route({ method: methods, url: `${ODATA_ROOT}/:service/*`, handler });
  const v4Handler = (req: FastifyRequest, reply: FastifyReply) =>
    handleV4(req, reply, opts, sessions, s, QUALITY_NOTIFICATION_PATH, qualityNotifications.service);
  app.route({ method: methods, url: QUALITY_NOTIFICATION_PATH, handler: v4Handler });
  app.route({ method: methods, url: `${QUALITY_NOTIFICATION_PATH}/*`, handler: v4Handler });
  return app;
}

function transactionId(): string {
  return randomUUID().replace(/-/g, '').toUpperCase();
}

function sendSapError(reply: FastifyReply, err: SapODataError, service?: SapServiceRef): FastifyReply {
  return reply
    .code(err.httpStatus)
    .header('dataserviceversion', '1.0')
    .send(sapErrorBody(err, transactionId(), service));
}

function sameSecret(given: string, expected: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** Basic auth on every request, as for a communication user; returns the user name or undefined. */
function authenticate(req: FastifyRequest, credentials: SapS4SimulatorOptions['credentials']): string | undefined {
  const m = /^Basic\s+([A-Za-z0-9+/=]+)$/i.exec(req.headers.authorization ?? '');
  if (!m) return undefined;
  const decoded = Buffer.from(m[1]!, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return undefined;
  const user = decoded.slice(0, colon);
  const password = decoded.slice(colon + 1);
  return sameSecret(user, credentials.username) && sameSecret(password, credentials.password) ? user : undefined;
}

function headerValue(req: FastifyRequest, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

interface Admitted {
  user: string;
  /** The request's method, or the one a POST tunnels in `X-HTTP-Method`. */
  method: string;
  reading: boolean;
}

/**
 * What every OData request passes first, whatever the service's version: Basic auth, then the CSRF handshake (a read
 * with `X-CSRF-Token: Fetch` gets a token, a write must present it with the session's cookies). `resolveService`, run
 * between the two, answers its own refusal and returns false. Answers every refusal itself and returns undefined.
 */
function admit(
  req: FastifyRequest,
  reply: FastifyReply,
  opts: SapS4SimulatorOptions,
  sessions: CsrfSessionStore,
  resolveService?: () => boolean,
): Admitted | undefined {
  const user = authenticate(req, opts.credentials);
  if (!user) {
    void reply
      .code(401)
      .header('www-authenticate', `Basic realm="SAP NetWeaver Application Server [${SIMULATED_SYSTEM_ID}/100]"`)
      .type('text/plain')
      .send('Logon failed');
    return undefined;
  }

  // Gateway resolves the service right after logon: an unknown or inactive one is refused even for a CSRF fetch.
  if (resolveService && !resolveService()) return undefined;

  const query = req.query as Record<string, unknown>;
  const sapClient = headerValue(req, 'sap-client') ?? (query['sap-client'] as string | undefined) ?? DEFAULT_SAP_CLIENT;
  const cookies = parseCookieHeader(req.headers.cookie);
  const tunnelled = headerValue(req, 'x-http-method')?.toUpperCase();
  const method = req.method === 'POST' && tunnelled ? tunnelled : req.method;
  const reading = method === 'GET' || method === 'HEAD';

  if (reading && headerValue(req, 'x-csrf-token')?.toLowerCase() === 'fetch') {
    const session = sessions.fetch(cookies.get(sessionCookieName(sapClient)));
    reply
      .header('x-csrf-token', session.token)
      .header('set-cookie', [
        `${sessionCookieName(sapClient)}=${session.id}; path=/; HttpOnly`,
        `${xsrfCookieName(sapClient)}=${session.xsrfCookie}; path=/; HttpOnly`,
      ]);
  } else if (!reading) {
    const check = sessions.validate(
      cookies.get(sessionCookieName(sapClient)),
      cookies.get(xsrfCookieName(sapClient)),
      headerValue(req, 'x-csrf-token'),
    );
    if (!check.ok) {
      req.log.info({ reason: check.reason }, 'CSRF token validation failed');
      void reply.code(403).header('x-csrf-token', 'Required').type('text/plain').send('CSRF token validation failed');
      return undefined;
    }
  }
  return { user, method, reading };
}

/** An OData V4 service at `path`: the resource below it goes to odata-v4.ts; errors in the V4 body. */
async function handleV4(
  req: FastifyRequest,
  reply: FastifyReply,
  opts: SapS4SimulatorOptions,
  sessions: CsrfSessionStore,
  s: string,
  path: string,
  service: ODataV4Service,
): Promise<FastifyReply> {
  const admitted = admit(req, reply, opts, sessions);
  if (!admitted) return reply;
  const host = req.headers.host ?? '127.0.0.1';
  const ctx: ServiceContext = {
    pool: opts.pool,
    s,
    serviceUrl: `${req.protocol}://${host}${path}`,
    user: admitted.user,
  };
  const resource = ((req.params as { '*'?: string })['*'] ?? '').replace(/^\/+/, '');
  try {
    return await handleODataV4(
      service,
      {
        method: admitted.method,
        resource,
        query: req.query as Record<string, unknown>,
        body: req.body,
        ifMatch: headerValue(req, 'if-match'),
      },
      ctx,
      reply,
    );
  } catch (err) {
    if (!(err instanceof SapODataError)) throw err;
    return reply.code(err.httpStatus).header('odata-version', '4.0').send(v4ErrorBody(err, transactionId()));
  }
}

async function handleOData(
  req: FastifyRequest,
  reply: FastifyReply,
  opts: SapS4SimulatorOptions,
  services: ODataService[],
  sessions: CsrfSessionStore,
  s: string,
): Promise<FastifyReply> {
  const params = req.params as { service: string; '*'?: string };
  // Versioned services append ;v=0002 (or ;v=2) to the service name (docs/vendor-interfaces.md#sap-odata-transport).
  const [serviceName = '', ...matrix] = params.service.split(';');
  const serviceRef: SapServiceRef = {
    name: serviceName,
    version: (matrix.find((p) => p.startsWith('v='))?.slice(2) ?? '1').padStart(4, '0'),
  };
  const service = opts.inactiveServices?.includes(serviceName)
    ? undefined
    : services.find((svc) => svc.name === serviceName);
  const admitted = admit(req, reply, opts, sessions, () => {
    if (!service)
      void sendSapError(reply, SapMessages.serviceNotFound(serviceRef.name, serviceRef.version), serviceRef);
    return service !== undefined;
  });
  if (!admitted || !service) return reply;
  const { user, method, reading } = admitted;
  const query = req.query as Record<string, unknown>;

  const host = req.headers.host ?? '127.0.0.1';
  const ctx: ServiceContext = {
    pool: opts.pool,
    s,
    serviceUrl: `${req.protocol}://${host}${ODATA_ROOT}/${service.name}`,
    user,
  };
  reply.header('dataserviceversion', '2.0');

  try {
    const resource = (params['*'] ?? '').replace(/^\/+/, '');
    if (resource === '' || resource === '$metadata') {
      if (!reading) throw methodNotAllowed(method);
      if (resource === '$metadata') return reply.type('application/xml').send(metadataDocument(service));
      return reply.send({ d: { EntitySets: Object.keys(service.entitySets) } });
    }
    const path = parseResourcePath(resource);
    const entitySet: EntitySetHandler | undefined = service.entitySets[path.entitySet];
    if (!entitySet)
      throw new SapODataError(404, '/IWBEP/CM_MGW_RT/021', `Resource not found for segment '${path.entitySet}'`);
    const q = parseQueryOptions(query);

    if (reading) {
      if (path.key && path.navigation) {
        const nav = entitySet.navigations?.[path.navigation];
        if (!nav)
          throw new SapODataError(404, '/IWBEP/CM_MGW_RT/021', `Resource not found for segment '${path.navigation}'`);
        return reply.send({ d: { results: (await nav.list(ctx, path.key, q)).map((e) => applySelect(e, q.select)) } });
      }
      if (path.key) {
        if (!entitySet.get) throw methodNotAllowed(method);
        return reply.send({ d: applySelect(await entitySet.get(ctx, path.key, q), q.select) });
      }
      if (!entitySet.list) throw methodNotAllowed(method);
      const page = await listPage(ctx, entitySet, q);
      const results = page.rows.map((e) => applySelect(e, q.select));
      const next =
        page.nextSkipToken === undefined ? {} : { __next: nextPageUrl(ctx.serviceUrl, req.url, page.nextSkipToken) };
      return reply.send({
        d: q.inlineCount ? { __count: String(results.length), results, ...next } : { results, ...next },
      });
    }

    if (method === 'POST') {
      let created;
      if (path.key && path.navigation) {
        const nav = entitySet.navigations?.[path.navigation];
        if (!nav?.create) throw methodNotAllowed(method);
        created = await nav.create(ctx, path.key, req.body);
      } else if (!path.key && entitySet.create) {
        created = await entitySet.create(ctx, req.body, q);
      } else throw methodNotAllowed(method);
      const uri = (created.__metadata as { uri?: string } | undefined)?.uri;
      if (uri) reply.header('location', uri);
      return reply.code(201).send({ d: created });
    }

    if ((method === 'PATCH' || method === 'MERGE' || method === 'PUT') && path.key && !path.navigation) {
      if (!entitySet.update) throw methodNotAllowed(method);
      await entitySet.update(ctx, path.key, req.body);
      return reply.code(204).send();
    }
    throw methodNotAllowed(method);
  } catch (err) {
    if (err instanceof SapODataError) return sendSapError(reply, err, serviceRef);
    throw err;
  }
}

/**
 * One page of a list. With server-driven paging the set answers at most `pageSize` rows; one more is read to know
 * whether a `__next` link is due. `$skiptoken` counts the rows earlier pages gave, on top of the client's `$skip`.
 */
async function listPage(
  ctx: ServiceContext,
  entitySet: EntitySetHandler,
  q: QueryOptions,
): Promise<{ rows: Entity[]; nextSkipToken?: number }> {
  const pageSize = entitySet.pageSize;
  if (!pageSize && q.skipToken !== undefined) {
    throw new SapODataError(400, '/IWBEP/CM_MGW_RT/006', 'This entity set does not page on the server ($skiptoken)');
  }
  if (!pageSize || !entitySet.list) return { rows: entitySet.list ? await entitySet.list(ctx, q) : [] };
  const given = q.skipToken ?? 0;
  const wanted = q.top === undefined ? pageSize : Math.min(pageSize, Math.max(0, q.top - given));
  const rows = await entitySet.list(ctx, { ...q, skip: (q.skip ?? 0) + given, top: wanted + 1 });
  if (rows.length <= wanted) return { rows };
  return { rows: rows.slice(0, wanted), nextSkipToken: given + wanted };
}

/** The request's own URL with `$skiptoken` set, absolute like Gateway's `__next`. */
function nextPageUrl(serviceUrl: string, requestUrl: string, skipToken: number): string {
  const url = new URL(requestUrl, serviceUrl);
  url.searchParams.set('$skiptoken', String(skipToken));
  return new URL(`${url.pathname}${url.search}`, serviceUrl).toString();
}

function methodNotAllowed(method: string): SapODataError {
  return new SapODataError(405, '/IWBEP/CM_MGW_RT/003', `Method '${method}' is not allowed for this resource`);
}

/** A minimal EDMX: entity sets only, enough for clients that probe `$metadata`. Properties are in the README. */
function metadataDocument(service: ODataService): string {
  const sets = Object.keys(service.entitySets)
    .map((name) => `<EntitySet Name="${name}" EntityType="${service.name}.${name}Type"/>`)
    .join('');
  return (
    '<?xml version="1.0" encoding="utf-8"?>' +
    '<edmx:Edmx Version="1.0" xmlns:edmx="http://schemas.microsoft.com/ado/2007/06/edmx">' +
    '<edmx:DataServices m:DataServiceVersion="2.0" xmlns:m="http://schemas.microsoft.com/ado/2007/08/dataservices/metadata">' +
    `<Schema Namespace="${service.name}" xmlns="http://schemas.microsoft.com/ado/2008/09/edm">` +
    `<EntityContainer Name="${service.name}_Entities" m:IsDefaultEntityContainer="true">${sets}</EntityContainer>` +
    '</Schema></edmx:DataServices></edmx:Edmx>'
  );
}
