import type { SapEntitySet, SapProperty } from '../../vendor-apis/sap-s4/metadata';

/**
 * The slice of OData V2 (JSON format, as SAP Gateway speaks it) that the simulator needs: resource paths with key
 * predicates, `$filter` with `eq`/`and`, `$top`/`$skip`/`$expand`/`$select`, V2 envelopes and SAP's error body.
 * OData V2 URL conventions: https://www.odata.org/documentation/odata-version-2-0/uri-conventions/
 */

/**
 * One message of `innererror.errordetails`: what SAP collected while processing the request. A goods movement that
 * fails answers a generic top-level message and hides the cause (e.g. the stock deficit) here.
 */
export interface SapMessageDetail {
  code: string;
  message: string;
  severity: 'error' | 'warning' | 'info';
  /** The property the message is about, when there is one. */
  propertyref?: string;
}

/** A failure answered with SAP Gateway's error body; `code` is the ABAP message class and number (e.g. M7/021). */
export class SapODataError extends Error {
  constructor(
    readonly httpStatus: number,
    readonly code: string,
    message: string,
    readonly details: readonly SapMessageDetail[] = [],
  ) {
    super(message);
  }
}

/** The service an error is about, as Gateway names it in `innererror.application`. */
export interface SapServiceRef {
  name: string;
  version: string;
}

/** SAP Gateway's V2 error body; the resolution hints are the simulator's own words. */
export function sapErrorBody(err: SapODataError, transactionId: string, service?: SapServiceRef) {
  return {
    error: {
      code: err.code,
      message: { lang: 'en', value: err.message },
      innererror: {
        application: {
          component_id: '',
          service_namespace: '/SAP/',
          service_id: service?.name ?? '',
          service_version: service?.version ?? '',
        },
        transactionid: transactionId,
        timestamp: sapTimestamp(new Date()),
        Error_Resolution: {
          SAP_Transaction: 'Search the Gateway error log for the timestamp above (simulated system: nothing to find)',
          SAP_Note: '',
        },
        errordetails: err.details.map((d) => ({
          code: d.code,
          message: d.message,
          propertyref: d.propertyref ?? '',
          severity: d.severity,
          target: '',
        })),
      },
    },
  };
}

/** SAP's 14-digit UTC timestamp (YYYYMMDDhhmmss), as Gateway writes it in `innererror.timestamp`. */
function sapTimestamp(at: Date): string {
  return at.toISOString().replace(/[-:T]/g, '').slice(0, 14);
}

/** V2 JSON dates are `/Date(<ms since epoch, UTC>)/`. */
export function toODataDate(at: Date): string {
  return `/Date(${at.getTime()})/`;
}

/** Accepts `/Date(ms)/`, `/Date(ms+0000)/` and ISO-8601 (`2026-01-31T00:00:00`), which Gateway also takes on input. */
export function parseODataDate(value: unknown, property: string): Date {
  if (typeof value === 'string') {
    const legacy = /^\/Date\((-?\d+)([+-]\d{4})?\)\/$/.exec(value);
    if (legacy) return new Date(Number(legacy[1]));
    if (/^\d{4}-\d{2}-\d{2}(T[\d:.]+Z?)?$/.test(value)) {
      const at = new Date(value.endsWith('Z') || value.length === 10 ? value : `${value}Z`);
      if (!Number.isNaN(at.getTime())) return at;
    }
  }
  throw new SapODataError(
    400,
    '/IWBEP/CM_MGW_RT/022',
    `Invalid value for property '${property}' (expected Edm.DateTime)`,
  );
}

/** A property value in its V2 JSON form (decimals and dates are strings). */
export type ODataValue = string | boolean;

export interface CheckedPayload {
  properties: Record<string, ODataValue>;
  /** Navigation properties, as sent (deep insert). */
  navigations: Record<string, unknown>;
}

/**
 * Checks one entity of a create payload against the service metadata as Gateway does: a property the entity does not
 * declare is refused naming it, and each value must fit its EDM type and length. `null` counts as not sent. Values come
 * back in their V2 JSON form: decimals with the property's scale, dates as `/Date(ms)/`.
 */
export function checkPayload(set: SapEntitySet, body: unknown, navigations: readonly string[] = []): CheckedPayload {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new SapODataError(400, '/IWBEP/CM_MGW_RT/022', 'The request body must be a JSON object');
  }
  const checked: CheckedPayload = { properties: {}, navigations: {} };
  for (const [name, value] of Object.entries(body)) {
    if (name === '__metadata' || value === null) continue;
    if (navigations.includes(name)) {
      checked.navigations[name] = value;
      continue;
    }
    const property = set.properties[name];
    if (!property) throw new SapODataError(400, '/IWBEP/CM_MGW_RT/020', `Property '${name}' is invalid`);
    checked.properties[name] = checkValue(name, property, value);
  }
  return checked;
}

function checkValue(name: string, property: SapProperty, value: unknown): ODataValue {
  const invalid = (why: string) =>
    new SapODataError(400, '/IWBEP/CM_MGW_RT/022', `Invalid value for property '${name}': ${why}`);
  switch (property.type) {
    case 'Edm.Boolean':
      if (typeof value !== 'boolean') throw invalid('expected Edm.Boolean (true or false)');
      return value;
    case 'Edm.Decimal': {
      const text = typeof value === 'number' ? String(value) : value;
      const m = typeof text === 'string' ? /^-?(\d+)(?:\.(\d+))?$/.exec(text) : null;
      const scale = property.scale ?? 0;
      const integerDigits = (property.precision ?? Infinity) - scale;
      if (!m || m[1]!.replace(/^0+(?=\d)/, '').length > integerDigits || (m[2] ?? '').length > scale) {
        throw invalid(`expected Edm.Decimal(${property.precision ?? ''},${scale}) as a string`);
      }
      return toODataDecimal(text as string, scale);
    }
    case 'Edm.DateTime':
      return toODataDate(parseODataDate(value, name));
    case 'Edm.Time':
      if (typeof value !== 'string' || !/^PT(?=\d)(\d+H)?(\d+M)?(\d+(\.\d+)?S)?$/.test(value)) {
        throw invalid('expected Edm.Time as an ISO-8601 duration (PT10H30M00S)');
      }
      return value;
    default:
      if (typeof value !== 'string') throw invalid(`expected ${property.type} as a string`);
      if (property.maxLength !== undefined && value.length > property.maxLength) {
        throw invalid(`at most ${property.maxLength} characters, got ${value.length}`);
      }
      return value;
  }
}

/** Edm.Decimal travels as a string in V2 JSON; trailing zeros to the property's scale. */
export function toODataDecimal(value: string | number, scale = 3): string {
  return Number(value).toFixed(scale);
}

export interface KeyPredicate {
  /** Positional single key, e.g. `('200000001')`. */
  single?: string;
  named: Record<string, string>;
}

export interface ResourcePath {
  entitySet: string;
  key?: KeyPredicate;
  navigation?: string;
}

/** Parses `EntitySet`, `EntitySet('1')`, `EntitySet(A='1',B='2')` and `EntitySet('1')/to_Nav`. */
export function parseResourcePath(path: string): ResourcePath {
  const m = /^([A-Za-z_][A-Za-z0-9_]*)(?:\((.*)\))?(?:\/([A-Za-z_][A-Za-z0-9_]*))?\/?$/.exec(path);
  if (!m) throw new SapODataError(404, '/IWBEP/CM_MGW_RT/021', `Resource not found for segment '${path}'`);
  const [, entitySet, keyText, navigation] = m;
  const result: ResourcePath = { entitySet: entitySet! };
  if (keyText !== undefined) result.key = parseKeyPredicate(keyText);
  if (navigation !== undefined) result.navigation = navigation;
  return result;
}

function parseKeyPredicate(text: string): KeyPredicate {
  const parts = splitOutsideQuotes(text, ',');
  const named: Record<string, string> = {};
  if (parts.length === 1 && !/^[A-Za-z_]\w*=/.test(parts[0]!)) return { single: parseLiteral(parts[0]!), named };
  for (const part of parts) {
    const eq = part.indexOf('=');
    if (eq <= 0) throw new SapODataError(400, '/IWBEP/CM_MGW_RT/004', `Invalid key predicate '${text}'`);
    named[part.slice(0, eq).trim()] = parseLiteral(part.slice(eq + 1));
  }
  return { named };
}

function splitOutsideQuotes(text: string, separator: string): string[] {
  const parts: string[] = [];
  let current = '';
  let quoted = false;
  for (const ch of text) {
    if (ch === "'") quoted = !quoted;
    if (ch === separator && !quoted) {
      parts.push(current);
      current = '';
    } else current += ch;
  }
  parts.push(current);
  return parts.map((p) => p.trim());
}

/** String literals are quoted with `'` doubled inside; numbers are taken as their text. */
function parseLiteral(raw: string): string {
  const text = raw.trim();
  const quoted = /^'((?:[^']|'')*)'$/.exec(text);
  if (quoted) return quoted[1]!.replace(/''/g, "'");
  if (/^-?\d+(\.\d+)?[mMdDlL]?$/.test(text)) return text.replace(/[mMdDlL]$/, '');
  throw new SapODataError(400, '/IWBEP/CM_MGW_RT/004', `Invalid literal '${text}'`);
}

export type FilterOperator = 'eq' | 'ge' | 'gt' | 'le' | 'lt';

export interface EqualityFilter {
  property: string;
  /** `eq`, or a range comparison (`ge`, `gt`, `le`, `lt`) for a sync that pages by date or document number. */
  operator: FilterOperator;
  value: string;
  /** The literal's V2 form: `datetime'…'` and `time'…'` compare as dates and times, the rest as text. */
  literal: 'string' | 'number' | 'datetime' | 'time';
}

const OPERATORS: readonly string[] = ['eq', 'ge', 'gt', 'le', 'lt'];

/**
 * `$filter` limited to conjunctions of comparisons: `A eq 'x' and B ge datetime'2026-01-01T00:00:00'` (optionally
 * parenthesised). Anything else (`or`, `ne`, functions) is refused with 400 rather than silently ignored, so a
 * connector relying on an unsupported operator notices.
 */
export function parseFilter(text: string | undefined): EqualityFilter[] {
  if (text === undefined || text.trim() === '') return [];
  const tokens = tokenizeFilter(text);
  const filters: EqualityFilter[] = [];
  let i = 0;
  const next = () => tokens[i++];
  while (i < tokens.length) {
    const property = next();
    const op = next();
    const value = next();
    if (!property || property.kind !== 'name' || op?.kind !== 'name' || !OPERATORS.includes(op.text) || !value) {
      throw unsupportedFilter(text);
    }
    if (value.kind === 'name') throw unsupportedFilter(text);
    filters.push({
      property: property.text,
      operator: op.text as FilterOperator,
      value: value.text,
      literal: value.kind,
    });
    if (i < tokens.length) {
      const conj = next();
      if (conj?.kind !== 'name' || conj.text !== 'and' || i >= tokens.length) throw unsupportedFilter(text);
    }
  }
  return filters;
}

interface FilterToken {
  kind: 'name' | 'string' | 'number' | 'datetime' | 'time';
  text: string;
}

function tokenizeFilter(text: string): FilterToken[] {
  const tokens: FilterToken[] = [];
  const re = /\s*(?:(datetime|time)?'((?:[^']|'')*)'|(-?\d+(?:\.\d+)?)[mMdDlL]?|([A-Za-z_][A-Za-z0-9_/]*)|([()]))/y;
  let pos = 0;
  while (pos < text.length) {
    if (/^\s*$/.test(text.slice(pos))) break;
    re.lastIndex = pos;
    const m = re.exec(text);
    if (!m) throw unsupportedFilter(text);
    pos = re.lastIndex;
    if (m[2] !== undefined) {
      const kind = m[1] === 'datetime' || m[1] === 'time' ? m[1] : 'string';
      tokens.push({ kind, text: m[2].replace(/''/g, "'") });
    } else if (m[3] !== undefined) tokens.push({ kind: 'number', text: m[3] });
    else if (m[4] !== undefined) tokens.push({ kind: 'name', text: m[4] });
    // Parentheses only group conjunctions here, which does not change the meaning of a pure `and` chain.
  }
  return tokens;
}

function unsupportedFilter(text: string): SapODataError {
  return new SapODataError(
    400,
    '/IWBEP/CM_MGW_RT/005',
    `Unsupported $filter '${text}' (the simulator supports: Property eq|ge|gt|le|lt 'value' [and ...])`,
  );
}

export interface QueryOptions {
  filter: EqualityFilter[];
  top?: number;
  skip?: number;
  /** Server-driven paging: how many rows of the request's result earlier pages already gave (see `__next`). */
  skipToken?: number;
  orderBy: { property: string; descending: boolean }[];
  expand: string[];
  select?: string[];
  inlineCount: boolean;
}

export function parseQueryOptions(query: Record<string, unknown>): QueryOptions {
  const str = (name: string): string | undefined => {
    const v = query[name];
    return typeof v === 'string' ? v : undefined;
  };
  const int = (name: string): number | undefined => {
    const v = str(name);
    if (v === undefined) return undefined;
    if (!/^\d+$/.test(v)) throw new SapODataError(400, '/IWBEP/CM_MGW_RT/006', `Invalid value '${v}' for ${name}`);
    return Number(v);
  };
  const list = (name: string) =>
    (str(name) ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean);
  const select = list('$select');
  const top = int('$top');
  const skip = int('$skip');
  const skipToken = int('$skiptoken');
  const orderBy = list('$orderby').map((clause) => {
    const m = /^([A-Za-z_]\w*)(?:\s+(asc|desc))?$/.exec(clause);
    if (!m) throw new SapODataError(400, '/IWBEP/CM_MGW_RT/006', `Invalid $orderby '${clause}'`);
    return { property: m[1]!, descending: m[2] === 'desc' };
  });
  return {
    filter: parseFilter(str('$filter')),
    ...(top !== undefined ? { top } : {}),
    ...(skip !== undefined ? { skip } : {}),
    ...(skipToken !== undefined ? { skipToken } : {}),
    orderBy,
    expand: list('$expand'),
    ...(select.length > 0 ? { select } : {}),
    inlineCount: str('$inlinecount') === 'allpages',
  };
}

/** OData V2 key predicate text for a `__metadata.uri`, e.g. `(MaterialDocumentYear='2026',MaterialDocument='49…')`. */
export function keyPredicateText(keys: Record<string, string>): string {
  const entries = Object.entries(keys);
  const quote = (v: string) => `'${v.replace(/'/g, "''")}'`;
  if (entries.length === 1) return `(${quote(entries[0]![1])})`;
  return `(${entries.map(([k, v]) => `${k}=${quote(v)}`).join(',')})`;
}

/** Applies `$select` (top-level properties only; `__metadata` and expanded navigations are kept). */
export function applySelect(entity: Record<string, unknown>, select: string[] | undefined): Record<string, unknown> {
  if (!select) return entity;
  const keep = new Set(['__metadata', ...select]);
  return Object.fromEntries(
    Object.entries(entity).filter(([k, v]) => keep.has(k) || (k.startsWith('to_') && isExpanded(v))),
  );
}

function isExpanded(value: unknown): boolean {
  return typeof value === 'object' && value !== null && !('__deferred' in value);
}
