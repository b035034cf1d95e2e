/**
 * Checks an HTTP request to SAP against the checked-in service metadata (infra/vendor-apis/sap-s4/metadata.ts): every
 * service, entity set, key, navigation, bound action and property it names must be listed there. The SAP connector's
 * metadata test records what the connector sends and runs each request through `sapRequestViolations`.
 */
import { SAP_SERVICES, type SapEntitySet, type SapService } from '../../infra/vendor-apis/sap-s4/metadata';

export interface RecordedSapRequest {
  method: string;
  /** Path and query, as the server saw them. */
  url: string;
  /** The parsed JSON body, if any. */
  body?: unknown;
}

/** What a request names that the metadata does not list; empty when every name is known. */
export function sapRequestViolations(req: RecordedSapRequest): string[] {
  const url = new URL(req.url, 'http://sap.invalid');
  const found = serviceOf(decodeURIComponent(url.pathname));
  if (!found) return [`service of ${url.pathname} is not in the metadata`];
  const { name, service, resource } = found;
  const problems: string[] = [];
  const where = `${req.method} ${name}/${resource}`;

  // The service root (CSRF fetch, service document) and $metadata name nothing else.
  if (resource === '' || resource === '$metadata') return problems;

  let set: SapEntitySet | undefined;
  let setName = '';
  for (const segment of splitSegments(resource)) {
    const open = segment.indexOf('(');
    const head = open < 0 ? segment : segment.slice(0, open);
    const keyText = open < 0 ? undefined : segment.slice(open + 1, -1);
    if (!set) {
      set = service.entitySets[head];
      setName = head;
      if (!set) {
        problems.push(`${where}: entity set ${head} is not in the metadata`);
        return problems;
      }
    } else if (set.navigations[head]) {
      setName = set.navigations[head].target;
      set = service.entitySets[setName]!;
    } else if (service.namespace && head.startsWith(`${service.namespace}.`)) {
      const action = head.slice(service.namespace.length + 1);
      if (service.actions?.[action]?.boundTo !== setName) {
        problems.push(`${where}: action ${action} bound to ${setName} is not in the metadata`);
      }
      return problems;
    } else {
      problems.push(`${where}: ${head} is neither a navigation nor an action of ${setName}`);
      return problems;
    }
    if (keyText !== undefined) problems.push(...keyProblems(where, setName, set, keyText));
  }
  if (!set) return problems;

  for (const option of ['$select', '$orderby']) {
    for (const property of listOption(url.searchParams.get(option))) {
      if (!set.properties[property]) problems.push(`${where}: ${option} names ${property}, not in ${setName}`);
    }
  }
  for (const navigation of listOption(url.searchParams.get('$expand'))) {
    if (!set.navigations[navigation]) problems.push(`${where}: $expand names ${navigation}, not in ${setName}`);
  }
  for (const property of filterProperties(url.searchParams.get('$filter'))) {
    if (!set.properties[property]) problems.push(`${where}: $filter names ${property}, not in ${setName}`);
  }
  if (req.body !== undefined && req.method !== 'GET' && req.method !== 'HEAD') {
    problems.push(...bodyProblems(where, service, setName, req.body));
  }
  return problems;
}

function serviceOf(path: string): { name: string; service: SapService; resource: string } | undefined {
  for (const [name, service] of Object.entries(SAP_SERVICES)) {
    // A version suffix on the V2 service name (`;v=0002`) addresses the same service.
    const match = new RegExp(`^${escapeRegExp(service.path)}(;v=\\d+)?(/|$)`).exec(path);
    if (match) return { name, service, resource: path.slice(match[0].length).replace(/\/$/, '') };
  }
  return undefined;
}

/** Splits `Set(Key='a/b')/nav` at slashes outside parentheses and quotes. */
function splitSegments(resource: string): string[] {
  const segments: string[] = [];
  let depth = 0;
  let quoted = false;
  let start = 0;
  for (let i = 0; i < resource.length; i += 1) {
    const c = resource[i];
    if (c === "'") quoted = !quoted;
    else if (!quoted && c === '(') depth += 1;
    else if (!quoted && c === ')') depth -= 1;
    else if (!quoted && depth === 0 && c === '/') {
      segments.push(resource.slice(start, i));
      start = i + 1;
    }
  }
  segments.push(resource.slice(start));
  return segments.filter((s) => s !== '');
}

function keyProblems(where: string, setName: string, set: SapEntitySet, keyText: string): string[] {
  const keys = Object.entries(set.properties)
    .filter(([, p]) => p.key)
    .map(([name]) => name);
  const named = [...keyText.matchAll(/([A-Za-z_]\w*)\s*=/g)].map((m) => m[1]!);
  // `Set('200000001')` names no property: fine when the entity set has a single key.
  if (named.length === 0) return keys.length === 1 ? [] : [`${where}: ${setName} has ${keys.length} keys`];
  return named.filter((n) => !keys.includes(n)).map((n) => `${where}: ${n} is not a key of ${setName}`);
}

function listOption(value: string | null): string[] {
  if (!value) return [];
  return value
    .split(',')
    .map((part) => part.trim().split(/[\s(/]/)[0]!)
    .filter((part) => part !== '');
}

/** Property names in an OData `$filter`: identifiers compared with eq/ne/gt/ge/lt/le or passed to a function. */
function filterProperties(filter: string | null): string[] {
  if (!filter) return [];
  const withoutLiterals = filter.replace(/'(?:[^']|'')*'/g, "''");
  const compared = [...withoutLiterals.matchAll(/([A-Za-z_]\w*)\s+(?:eq|ne|gt|ge|lt|le)\s/g)].map((m) => m[1]!);
  const inFunctions = [...withoutLiterals.matchAll(/\(\s*([A-Za-z_]\w*)\s*,/g)].map((m) => m[1]!);
  return [...compared, ...inFunctions];
}

function bodyProblems(where: string, service: SapService, setName: string, body: unknown): string[] {
  if (body === null || typeof body !== 'object') return [];
  const set = service.entitySets[setName];
  if (!set) return [];
  const problems: string[] = [];
  for (const [key, value] of Object.entries(body)) {
    // Annotations (`@odata.type`) and V2's `__metadata` are protocol, not properties.
    if (key.startsWith('@') || key === '__metadata') continue;
    const navigation = set.navigations[key];
    if (navigation) {
      const records = Array.isArray(value)
        ? value
        : value && typeof value === 'object' && 'results' in value
          ? (value as { results: unknown[] }).results
          : [value];
      for (const record of records) problems.push(...bodyProblems(where, service, navigation.target, record));
    } else if (!set.properties[key]) {
      problems.push(`${where}: body names ${key}, not in ${setName}`);
    }
  }
  return problems;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
