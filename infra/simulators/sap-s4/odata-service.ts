import type pg from 'pg';
import type { z } from 'zod';
import {
  parseODataDate,
  SapODataError,
  type EqualityFilter,
  type FilterOperator,
  type KeyPredicate,
  type QueryOptions,
} from './odata';

export type Entity = Record<string, unknown>;

export interface ServiceContext {
  pool: pg.Pool;
  /** Quoted schema identifier, checked by quoteSchema(). */
  s: string;
  /** Absolute service root for `__metadata.uri`, e.g. http://127.0.0.1:4020/sap/opu/odata/sap/API_MATERIAL_DOCUMENT_SRV */
  serviceUrl: string;
  /** The Basic-auth user, recorded as CreatedByUser. */
  user: string;
}

export interface NavigationHandler {
  list(ctx: ServiceContext, key: KeyPredicate, q: QueryOptions): Promise<Entity[]>;
  create?(ctx: ServiceContext, key: KeyPredicate, body: unknown): Promise<Entity>;
}

export interface EntitySetHandler {
  list?(ctx: ServiceContext, q: QueryOptions): Promise<Entity[]>;
  /**
   * Server-driven paging, as Gateway does for large sets: a read without `$top` (or with a larger one) gets at most
   * this many rows and a `__next` link carrying `$skiptoken`. Absent: every row in one answer.
   */
  pageSize?: number;
  get?(ctx: ServiceContext, key: KeyPredicate, q: QueryOptions): Promise<Entity>;
  create?(ctx: ServiceContext, body: unknown, q: QueryOptions): Promise<Entity>;
  update?(ctx: ServiceContext, key: KeyPredicate, body: unknown): Promise<void>;
  navigations?: Record<string, NavigationHandler>;
}

export interface ODataService {
  name: string;
  entitySets: Record<string, EntitySetHandler>;
}

/**
 * A property's column: a column name or SQL expression (text comparison), or one with its EDM kind so that a
 * `datetime'…'` or `time'…'` literal compares as a date or time of day.
 */
export type ColumnSpec = string | { sql: string; type: 'date' | 'time' };

const SQL_OPERATOR: Record<FilterOperator, string> = { eq: '=', ge: '>=', gt: '>', le: '<=', lt: '<' };

/** A filter literal as the column's kind expects it; `/Date(ms)/`, ISO-8601 and `PT…H…M…S` are taken. */
function filterValue(f: EqualityFilter, spec: ColumnSpec): string {
  if (typeof spec === 'string') return f.value;
  if (spec.type === 'date') return parseODataDate(f.value, f.property).toISOString();
  const m =
    /^PT(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)(?:\.\d+)?S)?$/.exec(f.value) ?? /^(\d{1,2}):(\d{2})(?::(\d{2}))?$/.exec(f.value);
  if (!m) {
    throw new SapODataError(
      400,
      '/IWBEP/CM_MGW_RT/022',
      `Invalid value for property '${f.property}' (expected Edm.Time)`,
    );
  }
  const part = (v: string | undefined) => String(Number(v ?? 0)).padStart(2, '0');
  return `${part(m[1])}:${part(m[2])}:${part(m[3])}`;
}

/**
 * Turns filters into a parameterised WHERE fragment. `columns` maps OData properties to columns; `constants` are
 * properties the simulator does not store because they are always one value (e.g. no special stock), so a filter on
 * them (equality only) either matches everything or nothing.
 */
export function filterSql(
  filters: EqualityFilter[],
  columns: Record<string, ColumnSpec>,
  params: unknown[],
  constants: Record<string, string> = {},
): string {
  const clauses: string[] = [];
  for (const f of filters) {
    const spec = columns[f.property];
    if (spec !== undefined) {
      params.push(filterValue(f, spec));
      const column = typeof spec === 'string' ? spec : spec.sql;
      const param = `$${params.length}`;
      const value =
        typeof spec === 'string'
          ? param
          : spec.type === 'date'
            ? `(${param}::timestamptz AT TIME ZONE 'UTC')::date`
            : `${param}::time`;
      clauses.push(`${column} ${SQL_OPERATOR[f.operator]} ${value}`);
    } else if (f.property in constants && f.operator === 'eq') {
      if (constants[f.property] !== f.value) clauses.push('FALSE');
    } else {
      throw new SapODataError(400, '/IWBEP/CM_MGW_RT/005', `Property '${f.property}' cannot be used in $filter`);
    }
  }
  return clauses.length > 0 ? clauses.join(' AND ') : 'TRUE';
}

/** `ORDER BY` for `$orderby` over `columns`, then `keys` (the entity's keys, so pages never overlap). */
export function orderBySql(q: QueryOptions, columns: Record<string, ColumnSpec>, keys: string): string {
  const clauses = q.orderBy.map((o) => {
    const spec = columns[o.property];
    if (spec === undefined) {
      throw new SapODataError(400, '/IWBEP/CM_MGW_RT/005', `Property '${o.property}' cannot be used in $orderby`);
    }
    return `${typeof spec === 'string' ? spec : spec.sql} ${o.descending ? 'DESC' : 'ASC'}`;
  });
  return [...clauses, keys].join(', ');
}

export function pagingSql(q: QueryOptions, params: unknown[]): string {
  let sql = '';
  if (q.top !== undefined) {
    params.push(q.top);
    sql += ` LIMIT $${params.length}`;
  }
  if (q.skip !== undefined) {
    params.push(q.skip);
    sql += ` OFFSET $${params.length}`;
  }
  return sql;
}

/** Validates a request body; the message names the property as Gateway does ("Property 'X' is invalid"). */
export function parseBody<T extends z.ZodType>(schema: T, body: unknown): z.infer<T> {
  const parsed = schema.safeParse(body ?? {});
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0]!;
  if (issue.code === 'unrecognized_keys') {
    throw new SapODataError(400, '/IWBEP/CM_MGW_RT/020', `Property '${issue.keys.join("', '")}' is invalid`);
  }
  const path = issue.path.join('/') || '(body)';
  throw new SapODataError(400, '/IWBEP/CM_MGW_RT/022', `Invalid value for property '${path}': ${issue.message}`);
}

export function requireKey(key: KeyPredicate, name: string): string {
  const value = key.named[name] ?? key.single;
  if (value === undefined) throw new SapODataError(400, '/IWBEP/CM_MGW_RT/004', `Key property '${name}' is missing`);
  return value;
}

export function notFound(segment: string): SapODataError {
  return new SapODataError(404, '/IWBEP/CM_MGW_RT/021', `Resource not found for segment '${segment}'`);
}

export function checkExpand(q: QueryOptions, allowed: string[]): void {
  for (const nav of q.expand) {
    if (!allowed.includes(nav)) {
      throw new SapODataError(400, '/IWBEP/CM_MGW_RT/023', `Navigation property '${nav}' cannot be expanded`);
    }
  }
}

/** Deep-insert payloads carry a navigation either as an array or as `{ results: [...] }`. */
export function navigationArray(value: unknown): unknown[] {
  if (value === undefined) return [];
  if (Array.isArray(value)) return value;
  if (typeof value === 'object' && value !== null && Array.isArray((value as { results?: unknown }).results)) {
    return (value as { results: unknown[] }).results;
  }
  throw new SapODataError(400, '/IWBEP/CM_MGW_RT/022', 'Navigation property in deep insert must be an array');
}
