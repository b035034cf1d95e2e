import type { FastifyReply } from 'fastify';
import type { z } from 'zod';
import { SAP_SERVICES, type SapEntitySet, type SapService } from '../../vendor-apis/sap-s4/metadata';
import {
  keyPredicateText,
  parseQueryOptions,
  parseResourcePath,
  SapODataError,
  type KeyPredicate,
  type QueryOptions,
} from './odata';
import type { Entity, ServiceContext } from './odata-service';

/**
 * The slice of OData V4 (JSON format, as SAP's RAP runtime speaks it) that the simulator needs: `value` collections,
 * entities without an envelope carrying `@odata.etag`, deep insert and create through a composition, bound actions,
 * `If-Match` on every change, and the V4 error body. Every property a request names (body, `$filter`, `$select`,
 * `$expand`, `$orderby`) is checked against infra/vendor-apis/sap-s4/metadata.ts first, so an unknown one is refused
 * as SAP refuses it, and one the simulator does not model is refused rather than ignored.
 * OData V4.01 JSON format: https://docs.oasis-open.org/odata/odata-json-format/v4.01/odata-json-format-v4.01.html
 */

/** A V4 error; `target` names the property or resource at fault, as RAP fills it. */
export class SapODataV4Error extends SapODataError {
  constructor(
    httpStatus: number,
    code: string,
    message: string,
    readonly target?: string,
  ) {
    super(httpStatus, code, message);
  }
}

const V4_SEVERITY = { info: 2, warning: 3, error: 4 } as const;

export function v4ErrorBody(err: SapODataError, transactionId: string) {
  const target = err instanceof SapODataV4Error ? err.target : undefined;
  return {
    error: {
      code: err.code,
      message: err.message,
      ...(target ? { target } : {}),
      // V4 names the severity as a number (SAP's Common vocabulary: 2 info, 3 warning, 4 error).
      details: err.details.map((d) => ({
        code: d.code,
        message: d.message,
        target: d.propertyref ?? '',
        '@Common.numericSeverity': V4_SEVERITY[d.severity],
      })),
      innererror: { transactionid: transactionId, timestamp: new Date().toISOString() },
    },
  };
}

/** `Edm.Date` is a plain calendar date in V4 JSON. */
export function toEdmDate(at: Date): string {
  return at.toISOString().slice(0, 10);
}

/**
 * RAP derives an entity's ETag from its change timestamp (a packed UTC timestamp with 7 decimals). Clients must
 * treat it as opaque; the form is the simulator's reading of what RAP sends, not confirmed.
 */
export function etagOf(changedAt: Date): string {
  return `W/"${changedAt.toISOString().replace(/[-:TZ]/g, '')}0000"`;
}

const weak = (tag: string) => tag.trim().replace(/^W\//, '');

/**
 * RAP's optimistic lock on a change: no `If-Match` is `428 Precondition Required`, one that does not match the
 * current ETag is `412 Precondition Failed`; `*` matches any version.
 */
export function checkIfMatch(ifMatch: string | undefined, current: string, resource: string): void {
  if (ifMatch === undefined || ifMatch.trim() === '') {
    throw new SapODataV4Error(
      428,
      'ZHFS_SIM/020',
      `Precondition required: a change of ${resource} must send If-Match with its ETag`,
      resource,
    );
  }
  const tags = ifMatch.split(',').map(weak);
  if (tags.includes('*') || tags.includes(weak(current))) return;
  throw new SapODataV4Error(
    412,
    'ZHFS_SIM/021',
    `Precondition failed: ${resource} was changed since it was read (ETag mismatch)`,
    resource,
  );
}

export interface V4Query extends QueryOptions {
  orderBy: { property: string; descending: boolean }[];
}

export interface V4NavigationHandler {
  list(ctx: ServiceContext, key: KeyPredicate, q: V4Query): Promise<Entity[]>;
  create?(ctx: ServiceContext, key: KeyPredicate, body: Entity, ifMatch: string | undefined): Promise<Entity>;
}

export interface V4EntitySetHandler {
  /** The properties the simulator fills; a metadata property outside them is refused in a query, never ignored. */
  served: readonly string[];
  list?(ctx: ServiceContext, q: V4Query): Promise<Entity[]>;
  get?(ctx: ServiceContext, key: KeyPredicate, q: V4Query): Promise<Entity>;
  create?(ctx: ServiceContext, body: Entity): Promise<Entity>;
  update?(ctx: ServiceContext, key: KeyPredicate, body: Entity, ifMatch: string | undefined): Promise<Entity>;
  navigations?: Record<string, V4NavigationHandler>;
  /** Bound actions by their unqualified name. */
  actions?: Record<
    string,
    (ctx: ServiceContext, key: KeyPredicate, body: Entity, ifMatch: string | undefined) => Promise<Entity>
  >;
}

export interface ODataV4Service {
  /** The service's name in metadata.ts; its path, entity sets and actions come from there. */
  name: string;
  entitySets: Record<string, V4EntitySetHandler>;
}

export interface V4Request {
  method: string;
  /** The resource path below the service root, e.g. `QualityNotification('200000001')/_QualityNotificationItem`. */
  resource: string;
  query: Record<string, unknown>;
  body: unknown;
  ifMatch: string | undefined;
}

const QUERY_OPTIONS = new Set(['$filter', '$select', '$expand', '$orderby', '$top', '$skip']);
/** SAP's own URL parameters, valid on every request. */
const SAP_PARAMETERS = new Set(['sap-client', 'sap-language']);

function metadataOf(service: ODataV4Service): SapService {
  const metadata = SAP_SERVICES[service.name];
  if (metadata?.odataVersion !== 'V4') throw new Error(`${service.name} is not an OData V4 service in metadata.ts`);
  return metadata;
}

function unknownProperty(setName: string, name: string): SapODataV4Error {
  return new SapODataV4Error(
    400,
    '/IWBEP/CM_MGW_RT/020',
    `Property '${name}' is not defined for entity type '${setName}'`,
    name,
  );
}

/** A property a request may name: in the metadata (else SAP's refusal), and one the simulator models. */
function requireServed(setName: string, set: SapEntitySet, handler: V4EntitySetHandler, name: string): void {
  if (!(name in set.properties)) throw unknownProperty(setName, name);
  if (!handler.served.includes(name)) {
    throw new SapODataV4Error(
      400,
      '/IWBEP/CM_MGW_RT/005',
      `Property '${name}' exists in the metadata but is not supported by the simulator`,
      name,
    );
  }
}

/**
 * The query options of a read, each property checked against the entity set. Writes take none (only SAP's own
 * parameters): the simulator answers what it created or changed, whole.
 */
export function parseV4Query(
  query: Record<string, unknown>,
  setName: string,
  set: SapEntitySet,
  handler: V4EntitySetHandler,
  reading: boolean,
): V4Query {
  for (const name of Object.keys(query)) {
    if (SAP_PARAMETERS.has(name) || (reading && QUERY_OPTIONS.has(name))) continue;
    throw new SapODataV4Error(
      400,
      '/IWBEP/CM_MGW_RT/006',
      `Query option '${name}' is not supported here by the simulator`,
      name,
    );
  }
  const q: V4Query = { ...parseQueryOptions(query), orderBy: [] };
  for (const f of q.filter) requireServed(setName, set, handler, f.property);
  for (const nav of q.expand) {
    if (!(nav in set.navigations)) {
      throw new SapODataV4Error(
        400,
        '/IWBEP/CM_MGW_RT/023',
        `Navigation property '${nav}' is not defined for entity type '${setName}' (nested options are not supported)`,
        nav,
      );
    }
  }
  for (const name of q.select ?? []) {
    if (!(name in set.navigations)) requireServed(setName, set, handler, name);
  }
  const orderBy = typeof query.$orderby === 'string' ? query.$orderby.split(',') : [];
  for (const clause of orderBy) {
    const m = /^\s*([A-Za-z_]\w*)(?:\s+(asc|desc))?\s*$/.exec(clause);
    if (!m) throw new SapODataV4Error(400, '/IWBEP/CM_MGW_RT/006', `Invalid $orderby '${clause.trim()}'`, '$orderby');
    requireServed(setName, set, handler, m[1]!);
    q.orderBy.push({ property: m[1]!, descending: m[2] === 'desc' });
  }
  return q;
}

/** `ORDER BY` for `$orderby`; `columns` maps the properties to columns, `fallback` orders the rest (the keys). */
export function orderSql(q: V4Query, columns: Record<string, string>, fallback: string): string {
  const clauses = q.orderBy.map((o) => {
    const column = columns[o.property];
    if (!column) {
      throw new SapODataV4Error(400, '/IWBEP/CM_MGW_RT/005', `Property '${o.property}' cannot be used in $orderby`);
    }
    return `${column} ${o.descending ? 'DESC' : 'ASC'}`;
  });
  return [...clauses, fallback].join(', ');
}

/**
 * Checks every property of a request body against the metadata, into deep-insert navigations, and returns the body
 * without instance annotations (`@odata.type` and the like, which clients may send).
 */
function checkBody(service: SapService, setName: string, body: unknown): Entity {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new SapODataV4Error(400, '/IWBEP/CM_MGW_RT/022', `The body for '${setName}' must be a JSON object`);
  }
  const set = service.entitySets[setName]!;
  const checked: Entity = {};
  for (const [name, value] of Object.entries(body)) {
    if (name.startsWith('@')) continue;
    const nav = set.navigations[name];
    if (nav) {
      if (nav.many && !Array.isArray(value)) {
        throw new SapODataV4Error(400, '/IWBEP/CM_MGW_RT/022', `Navigation property '${name}' must be an array`, name);
      }
      checked[name] = nav.many ? (value as unknown[]).map((v) => checkBody(service, nav.target, v)) : value;
    } else if (name in set.properties) checked[name] = value;
    else throw unknownProperty(setName, name);
  }
  return checked;
}

/**
 * Parses a checked body with the service's schema. A property in the metadata that the schema does not take is
 * read-only (`readOnly`) or one the simulator does not model: both are refused naming it.
 */
export function parseV4Body<T extends z.ZodType>(schema: T, body: Entity, readOnly: ReadonlySet<string>): z.infer<T> {
  const parsed = schema.safeParse(body);
  if (parsed.success) return parsed.data;
  // A property the schema does not take says more than a missing one, so it is named first.
  const issues = parsed.error.issues;
  const issue = issues.find((i) => i.code === 'unrecognized_keys') ?? issues[0]!;
  if (issue.code === 'unrecognized_keys') {
    const name = issue.keys[0]!;
    const why = readOnly.has(name) ? 'is read-only' : 'is not supported by the simulator';
    throw new SapODataV4Error(400, '/IWBEP/CM_MGW_RT/020', `Property '${name}' ${why}`, name);
  }
  const name = issue.path.join('/') || '(body)';
  throw new SapODataV4Error(
    400,
    '/IWBEP/CM_MGW_RT/022',
    `Invalid value for property '${name}': ${issue.message}`,
    String(issue.path.at(-1) ?? ''),
  );
}

/** `$select` keeps the selected properties, the keys, the annotations and what `$expand` asked for. */
function applySelect(entity: Entity, set: SapEntitySet, q: V4Query): Entity {
  if (!q.select) return entity;
  const keep = (name: string) =>
    name.startsWith('@') || q.select!.includes(name) || q.expand.includes(name) || set.properties[name]?.key;
  return Object.fromEntries(Object.entries(entity).filter(([name]) => keep(name)));
}

function keysOf(set: SapEntitySet, entity: Entity): Record<string, string> {
  const keys = Object.entries(set.properties).filter(([, p]) => p.key);
  return Object.fromEntries(keys.map(([name]) => [name, String(entity[name])]));
}

function methodNotAllowed(method: string): SapODataV4Error {
  return new SapODataV4Error(405, '/IWBEP/CM_MGW_RT/003', `Method '${method}' is not allowed for this resource`);
}

function notFound(segment: string): SapODataV4Error {
  return new SapODataV4Error(404, '/IWBEP/CM_MGW_RT/021', `Resource not found for segment '${segment}'`, segment);
}

/** Service document, `$metadata`, then the entity sets: reads, creates, PATCH and bound actions. */
export async function handleODataV4(
  service: ODataV4Service,
  req: V4Request,
  ctx: ServiceContext,
  reply: FastifyReply,
): Promise<FastifyReply> {
  const metadata = metadataOf(service);
  const reading = req.method === 'GET' || req.method === 'HEAD';
  reply.header('odata-version', '4.0');
  if (req.resource === '' || req.resource === '$metadata') {
    if (!reading) throw methodNotAllowed(req.method);
    if (req.resource === '$metadata') return reply.type('application/xml').send(csdlOf(metadata, service.name));
    const value = Object.keys(service.entitySets).map((name) => ({ name, url: name, kind: 'EntitySet' }));
    return reply.send({ '@odata.context': '$metadata', value });
  }

  // A bound action is the last segment, qualified by the service's namespace: `Set('1')/namespace.Action`.
  const action = /^(.+\))\/([A-Za-z_][\w]*(?:\.[A-Za-z_][\w]*)+)$/.exec(req.resource);
  const path = parseResourcePath(action ? action[1]! : req.resource);
  const setMetadata = metadata.entitySets[path.entitySet];
  const handler = service.entitySets[path.entitySet];
  if (!setMetadata || !handler) throw notFound(path.entitySet);

  if (action) {
    const qualified = action[2]!;
    const prefix = `${metadata.namespace}.`;
    const name = qualified.startsWith(prefix) ? qualified.slice(prefix.length) : '';
    const run = metadata.actions?.[name]?.boundTo === path.entitySet ? handler.actions?.[name] : undefined;
    if (!run) throw notFound(qualified);
    if (req.method !== 'POST' || !path.key) throw methodNotAllowed(req.method);
    parseV4Query(req.query, path.entitySet, setMetadata, handler, false);
    const body = req.body === undefined || req.body === null ? {} : req.body;
    if (typeof body !== 'object' || Array.isArray(body) || Object.keys(body).length > 0) {
      throw new SapODataV4Error(400, '/IWBEP/CM_MGW_RT/022', `Action '${name}' takes no parameters`);
    }
    return sendEntity(reply, 200, path.entitySet, await run(ctx, path.key, {}, req.ifMatch));
  }

  if (path.navigation) {
    const navMetadata = setMetadata.navigations[path.navigation];
    const nav = handler.navigations?.[path.navigation];
    if (!navMetadata || !nav || !path.key) throw notFound(path.navigation);
    const targetSet = metadata.entitySets[navMetadata.target]!;
    const targetHandler = service.entitySets[navMetadata.target]!;
    const q = parseV4Query(req.query, navMetadata.target, targetSet, targetHandler, reading);
    if (reading) {
      const value = (await nav.list(ctx, path.key, q)).map((e) => applySelect(e, targetSet, q));
      return reply.send({ '@odata.context': `$metadata#${req.resource}`, value });
    }
    if (req.method !== 'POST' || !nav.create) throw methodNotAllowed(req.method);
    const created = await nav.create(ctx, path.key, checkBody(metadata, navMetadata.target, req.body), req.ifMatch);
    return sendCreated(reply, ctx, navMetadata.target, targetSet, created);
  }

  const q = parseV4Query(req.query, path.entitySet, setMetadata, handler, reading);
  if (reading && path.key) {
    if (!handler.get) throw methodNotAllowed(req.method);
    return sendEntity(reply, 200, path.entitySet, applySelect(await handler.get(ctx, path.key, q), setMetadata, q));
  }
  if (reading) {
    if (!handler.list) throw methodNotAllowed(req.method);
    const value = (await handler.list(ctx, q)).map((e) => applySelect(e, setMetadata, q));
    const expanded = q.expand.map((nav) => `${nav}()`).join(',');
    return reply.send({ '@odata.context': `$metadata#${path.entitySet}${expanded ? `(${expanded})` : ''}`, value });
  }
  if (req.method === 'POST' && !path.key && handler.create) {
    const created = await handler.create(ctx, checkBody(metadata, path.entitySet, req.body));
    return sendCreated(reply, ctx, path.entitySet, setMetadata, created);
  }
  if (req.method === 'PATCH' && path.key && handler.update) {
    const body = checkBody(metadata, path.entitySet, req.body);
    return sendEntity(reply, 200, path.entitySet, await handler.update(ctx, path.key, body, req.ifMatch));
  }
  throw methodNotAllowed(req.method);
}

function sendEntity(reply: FastifyReply, status: number, setName: string, entity: Entity): FastifyReply {
  const etag = entity['@odata.etag'];
  if (typeof etag === 'string') reply.header('etag', etag);
  return reply.code(status).send({ '@odata.context': `$metadata#${setName}/$entity`, ...entity });
}

function sendCreated(
  reply: FastifyReply,
  ctx: ServiceContext,
  setName: string,
  set: SapEntitySet,
  entity: Entity,
): FastifyReply {
  reply.header('location', `${ctx.serviceUrl}/${setName}${keyPredicateText(keysOf(set, entity))}`);
  return sendEntity(reply, 201, setName, entity);
}

const EDM_XML_ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' };
const xml = (text: string) => text.replace(/[&<>"]/g, (c) => EDM_XML_ESCAPES[c]!);

/** CSDL (XML) generated from metadata.ts: entity types with keys, properties and navigations, sets, bound actions. */
function csdlOf(service: SapService, name: string): string {
  const ns = xml(service.namespace ?? name);
  const types = Object.entries(service.entitySets).map(([setName, set]) => {
    const keys = Object.entries(set.properties).filter(([, p]) => p.key);
    const properties = Object.entries(set.properties).map(
      ([p, d]) =>
        `<Property Name="${p}" Type="${d.type}"${d.key ? ' Nullable="false"' : ''}` +
        `${d.maxLength ? ` MaxLength="${d.maxLength}"` : ''}${d.precision ? ` Precision="${d.precision}"` : ''}` +
        `${d.scale !== undefined ? ` Scale="${d.scale}"` : ''}/>`,
    );
    const navigations = Object.entries(set.navigations).map(
      ([n, d]) =>
        `<NavigationProperty Name="${n}" Type="${d.many ? `Collection(${ns}.${d.target}Type)` : `${ns}.${d.target}Type`}"/>`,
    );
    return (
      `<EntityType Name="${setName}Type"><Key>${keys.map(([k]) => `<PropertyRef Name="${k}"/>`).join('')}</Key>` +
      `${properties.join('')}${navigations.join('')}</EntityType>`
    );
  });
  const actions = Object.entries(service.actions ?? {}).map(
    ([a, d]) =>
      `<Action Name="${a}" IsBound="true"><Parameter Name="_it" Type="${ns}.${d.boundTo}Type" Nullable="false"/>` +
      `<ReturnType Type="${ns}.${d.boundTo}Type" Nullable="false"/></Action>`,
  );
  const sets = Object.entries(service.entitySets).map(([setName, set]) => {
    const bindings = Object.entries(set.navigations).map(
      ([n, d]) => `<NavigationPropertyBinding Path="${n}" Target="${d.target}"/>`,
    );
    return `<EntitySet Name="${setName}" EntityType="${ns}.${setName}Type">${bindings.join('')}</EntitySet>`;
  });
  return (
    '<?xml version="1.0" encoding="utf-8"?>' +
    '<edmx:Edmx Version="4.0" xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx"><edmx:DataServices>' +
    `<Schema Namespace="${ns}" xmlns="http://docs.oasis-open.org/odata/ns/edm">` +
    `${types.join('')}${actions.join('')}<EntityContainer Name="Container">${sets.join('')}</EntityContainer>` +
    '</Schema></edmx:DataServices></edmx:Edmx>'
  );
}
