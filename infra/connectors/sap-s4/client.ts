import { z } from 'zod';
import { ExternalSystemError } from '../../../activities/errors';
import {
  createHttpTransport,
  DEFAULT_MAX_RESPONSE_BYTES,
  ResponseTooLargeError,
  type HttpTransport,
} from '../http-transport';
import { SAP_SERVICES } from '../../vendor-apis/sap-s4/metadata';
import { sapHttpError, sapMalformedResponse, sapTransportError } from './errors';
import { ODataCollection, ODataEntity, ODataV4Collection } from './sap-s4.schemas';

/**
 * The OData clients for SAP: `SapODataClient` speaks V2 (SAP Gateway), `SapODataV4Client` V4 (RAP services), and both
 * go through one `SapHttpSession`: a connection pool of its own (../http-transport.ts) with a deadline per call and a
 * size cap, Basic auth, the session cookies and one CSRF token. One attempt per call (Temporal's retry policy is the
 * only retry owner, house rule 4), with the exceptions the protocol demands: a write refused with `403` +
 * `X-CSRF-Token: Required` re-fetches the token once and is sent again (docs/vendor-interfaces.md#sap-csrf-tokens; the
 * SAP Cloud SDK does the same), and a V4 change refused for its ETag is read again and sent once more.
 */
export interface SapODataClientOptions {
  /** Instance name from temporal.yaml, used as the system name in errors. */
  system: string;
  /** Scheme, host and port; each service's path comes from infra/vendor-apis/sap-s4/metadata.ts. */
  baseUrl: string;
  sapClient: string;
  username: string;
  password: string;
  timeoutMs: number;
  /** Larger bodies are refused as malformed rather than buffered (OWASP API10). */
  maxResponseBytes?: number;
}

export interface ODataQuery {
  /** Equality conditions joined by `and`. */
  filter?: Record<string, string>;
  /** Further conditions as written, e.g. `CreationDate gt datetime'2026-12-01T00:00:00'`, joined by `and`. */
  conditions?: string[];
  /** `$orderby` clauses, e.g. `CreationDate`, `MaterialDocument desc`. */
  orderBy?: string[];
  top?: number;
  expand?: string[];
  select?: string[];
}

interface Exchange {
  status: number;
  headers: Headers;
  text: string;
}

/** OData string literal (V2 and V4 alike): single quotes, an embedded quote doubled. */
export function odataString(value: string): string {
  return `'${value.replace(/'/g, "''")}'`;
}

const isSuccess = (status: number) => status >= 200 && status < 300;

/**
 * The HTTP session with one SAP system that the OData clients share: SAP binds the CSRF token to the session cookies,
 * and the token fetched on one service is good for the others of the same system (a `403 Required` fetches anew on
 * the service being written).
 */
export class SapHttpSession {
  readonly system: string;
  private readonly origin: string;
  private readonly authorization: string;
  private readonly http: HttpTransport;
  private closed = false;
  /** Session and anti-XSRF cookies: SAP binds the CSRF token to them. */
  private readonly cookies = new Map<string, string>();
  private token: string | undefined;
  private tokenFetch: Promise<string> | undefined;

  constructor(private readonly opts: SapODataClientOptions) {
    this.system = opts.system;
    this.origin = opts.baseUrl.replace(/\/+$/, '');
    this.authorization = `Basic ${Buffer.from(`${opts.username}:${opts.password}`, 'utf8').toString('base64')}`;
    this.http = createHttpTransport({
      timeoutMs: opts.timeoutMs,
      maxResponseBytes: opts.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES,
    });
  }

  /** Fetches a fresh CSRF token (and session cookies) on the service; doubles as the health check. */
  async refreshCsrfToken(service: string, operation = 'fetch CSRF token'): Promise<void> {
    await this.renewToken(service, this.token, operation);
  }

  /** Fails the calls in flight, releases every socket and forgets the session. */
  close(): void {
    this.closed = true;
    this.http.close();
    this.cookies.clear();
    this.token = undefined;
  }

  /** The URL of a resource of the service, with the query options and the SAP client. */
  url(service: string, resourcePath: string, query: ODataQuery = {}): string {
    // encodeURIComponent, not URLSearchParams: '+' for a space is form encoding, which an OData server need not accept.
    const params: string[] = [`sap-client=${encodeURIComponent(this.opts.sapClient)}`];
    const filter = [
      ...Object.entries(query.filter ?? {}).map(([property, value]) => `${property} eq ${odataString(value)}`),
      ...(query.conditions ?? []),
    ].join(' and ');
    if (filter) params.push(`$filter=${encodeURIComponent(filter)}`);
    if (query.orderBy?.length) params.push(`$orderby=${encodeURIComponent(query.orderBy.join(','))}`);
    if (query.top !== undefined) params.push(`$top=${query.top}`);
    if (query.expand?.length) params.push(`$expand=${encodeURIComponent(query.expand.join(','))}`);
    if (query.select?.length) params.push(`$select=${encodeURIComponent(query.select.join(','))}`);
    return `${this.serviceRoot(service)}/${resourcePath}?${params.join('&')}`;
  }

  /** GET; a status other than 200 is thrown as SAP's error. */
  async read(url: string, operation: string): Promise<Exchange> {
    const res = await this.exchange('GET', url, {}, undefined, operation);
    if (res.status !== 200) throw sapHttpError(this.system, operation, res.status, res.text);
    return res;
  }

  /**
   * A modifying request with the CSRF token and the session cookies, sent again once with a fresh token after a
   * `403 Required`. A status in `answered` comes back for the caller to handle; any other non-2xx is thrown.
   */
  async write(
    method: 'POST' | 'PATCH',
    service: string,
    url: string,
    body: unknown,
    operation: string,
    headers: Record<string, string> = {},
    answered: readonly number[] = [],
  ): Promise<Exchange> {
    const send = (token: string) =>
      this.exchange(
        method,
        url,
        { 'content-type': 'application/json', ...headers, ...(token ? { 'x-csrf-token': token } : {}) },
        JSON.stringify(body),
        operation,
      );
    let token = await this.currentToken(service, operation);
    let res = await send(token);
    if (res.status === 403 && res.headers.get('x-csrf-token')?.toLowerCase() === 'required') {
      // The session (and its token) expired or was never bound: fetch once more and resend, then give up.
      token = await this.renewToken(service, token, operation);
      res = await send(token);
    }
    if (!isSuccess(res.status) && !answered.includes(res.status)) {
      throw sapHttpError(this.system, operation, res.status, res.text);
    }
    return res;
  }

  /** The body as JSON, validated with `schema` (OWASP API10): anything else is a malformed answer. */
  parse<T>(res: Exchange, schema: z.ZodType<T>, operation: string): T {
    let json: unknown;
    try {
      json = JSON.parse(res.text);
    } catch {
      throw sapMalformedResponse(
        this.system,
        operation,
        res.status,
        `body is not JSON: ${JSON.stringify(res.text.slice(0, 80))}`,
      );
    }
    const parsed = schema.safeParse(json);
    if (!parsed.success) throw sapMalformedResponse(this.system, operation, res.status, parsed.error);
    return parsed.data;
  }

  private serviceRoot(service: string): string {
    const described = SAP_SERVICES[service];
    if (!described) throw new Error(`SAP service ${service} is not in infra/vendor-apis/sap-s4/metadata.ts`);
    return this.origin + described.path;
  }

  private currentToken(service: string, operation: string): Promise<string> {
    if (this.token !== undefined) return Promise.resolve(this.token);
    return this.renewToken(service, undefined, operation);
  }

  /** Single flight: concurrent writes that all saw the same stale token share one fetch. */
  private renewToken(service: string, stale: string | undefined, operation: string): Promise<string> {
    if (this.token !== undefined && this.token !== stale) return Promise.resolve(this.token);
    if (!this.tokenFetch) {
      this.token = undefined;
      this.tokenFetch = this.fetchToken(service, operation).then(
        (token) => {
          this.token = token;
          this.tokenFetch = undefined;
          return token;
        },
        (err: unknown) => {
          this.tokenFetch = undefined;
          throw err;
        },
      );
    }
    return this.tokenFetch;
  }

  /**
   * CSRF handshake: `HEAD {service}/` with `X-CSRF-Token: Fetch`, then `GET {service}` for systems that answer only
   * that form (SAP Cloud SDK order). A 2xx without a token means the service does not check CSRF: writes go without.
   */
  private async fetchToken(service: string, operation: string): Promise<string> {
    const client = `sap-client=${encodeURIComponent(this.opts.sapClient)}`;
    const attempts: ['HEAD' | 'GET', string][] = [
      ['HEAD', `${this.serviceRoot(service)}/?${client}`],
      ['GET', `${this.serviceRoot(service)}?${client}`],
    ];
    let last: Exchange | undefined;
    for (const [method, url] of attempts) {
      last = await this.exchange(method, url, { 'x-csrf-token': 'Fetch' }, undefined, `${operation} (CSRF fetch)`);
      const token = last.headers.get('x-csrf-token');
      if (last.status >= 200 && last.status < 300) return token && token.toLowerCase() !== 'required' ? token : '';
      if (last.status === 401 || last.status >= 500 || last.status === 429) break;
    }
    throw sapHttpError(this.system, `${operation} (CSRF fetch)`, last!.status, last!.text);
  }

  private async exchange(
    method: string,
    url: string,
    headers: Record<string, string>,
    body: string | undefined,
    operation: string,
  ): Promise<Exchange> {
    if (this.closed) {
      throw new ExternalSystemError(this.system, 'transient', `SAP ${this.system} ${operation}: connector is closed`);
    }
    const cookie = [...this.cookies].map(([name, value]) => `${name}=${value}`).join('; ');
    try {
      const res = await this.http.send({
        method,
        url,
        headers: {
          accept: 'application/json',
          authorization: this.authorization,
          ...(cookie ? { cookie } : {}),
          ...headers,
        },
        ...(body !== undefined ? { body } : {}),
      });
      this.storeCookies(res.headers);
      return res;
    } catch (err) {
      if (err instanceof ResponseTooLargeError) {
        throw sapMalformedResponse(this.system, operation, err.status, err.message);
      }
      throw sapTransportError(this.system, operation, err, this.opts.timeoutMs);
    }
  }

  private storeCookies(headers: Headers): void {
    for (const setCookie of headers.getSetCookie()) {
      const pair = setCookie.split(';', 1)[0] ?? '';
      const eq = pair.indexOf('=');
      if (eq <= 0) continue;
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      const expired = /;\s*max-age=0\b/i.test(setCookie) || value === '';
      if (expired) this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
  }
}

/** OData V2 (SAP Gateway): `{"d": …}` envelopes. */
export class SapODataClient {
  readonly system: string;

  constructor(private readonly session: SapHttpSession) {
    this.system = session.system;
  }

  /** GET a collection; each record is validated with `entity`. */
  async list<T>(
    service: string,
    entitySet: string,
    query: ODataQuery,
    entity: z.ZodType<T>,
    operation: string,
  ): Promise<T[]> {
    const res = await this.session.read(this.session.url(service, entitySet, query), operation);
    return this.session.parse(res, ODataCollection(entity), operation).d.results;
  }

  /** GET one entity by its resource path, e.g. `A_MaterialDocumentHeader(MaterialDocumentYear='2026',…)`. */
  async get<T>(
    service: string,
    resourcePath: string,
    query: ODataQuery,
    entity: z.ZodType<T>,
    operation: string,
  ): Promise<T> {
    const res = await this.session.read(this.session.url(service, resourcePath, query), operation);
    return this.session.parse(res, ODataEntity(entity), operation).d;
  }

  /** POST a (deep) insert; SAP answers 201 with the created entity. */
  async create<T>(
    service: string,
    entitySet: string,
    body: unknown,
    entity: z.ZodType<T>,
    operation: string,
  ): Promise<T> {
    const res = await this.session.write('POST', service, this.session.url(service, entitySet), body, operation);
    return this.session.parse(res, ODataEntity(entity), operation).d;
  }

  /** PATCH an entity's properties; SAP answers 204 without a body. */
  async update(service: string, resourcePath: string, body: unknown, operation: string): Promise<void> {
    await this.session.write('PATCH', service, this.session.url(service, resourcePath), body, operation);
  }
}

/** What a fresh read says about a change: the ETag to send (undefined when it carried none), or nothing to do. */
export type ETagPrecondition = { etag: string | undefined } | 'already-done';

/** A change of an entity: a PATCH of it or a bound action on it (`Entity('1')/namespace.Action`). */
export interface ODataV4Change {
  method: 'PATCH' | 'POST';
  resourcePath: string;
  body: unknown;
}

const ETagAnnotation = z.looseObject({ '@odata.etag': z.string().optional() });

/** OData V4 (RAP): collections in `value`, entities without an envelope, changes guarded by ETags. */
export class SapODataV4Client {
  readonly system: string;

  constructor(private readonly session: SapHttpSession) {
    this.system = session.system;
  }

  /** GET a collection (an entity set, or a navigation such as `Root('1')/_Items`); records validated with `entity`. */
  async list<T>(
    service: string,
    resourcePath: string,
    query: ODataQuery,
    entity: z.ZodType<T>,
    operation: string,
  ): Promise<T[]> {
    const res = await this.session.read(this.session.url(service, resourcePath, query), operation);
    return this.session.parse(res, ODataV4Collection(entity), operation).value;
  }

  /** GET one entity with its ETag: the `@odata.etag` annotation, or the `ETag` header when the body has none. */
  async read<T>(
    service: string,
    resourcePath: string,
    query: ODataQuery,
    entity: z.ZodType<T>,
    operation: string,
  ): Promise<{ entity: T; etag: string | undefined }> {
    const res = await this.session.read(this.session.url(service, resourcePath, query), operation);
    const annotated = this.session.parse(res, ETagAnnotation, operation)['@odata.etag'];
    return {
      entity: this.session.parse(res, entity, operation),
      etag: annotated ?? res.headers.get('etag') ?? undefined,
    };
  }

  /** POST a (deep) insert, or a create through a composition (`Root('1')/_Items`); SAP answers 201 with the entity. */
  async create<T>(
    service: string,
    resourcePath: string,
    body: unknown,
    entity: z.ZodType<T>,
    operation: string,
  ): Promise<T> {
    const url = this.session.url(service, resourcePath);
    return this.session.parse(await this.session.write('POST', service, url, body, operation), entity, operation);
  }

  /**
   * A change RAP guards with the entity's ETag: sent with `If-Match` and the ETag `current()` read afresh. A `412`
   * (changed since that read) reads again and sends once more, then fails transient, for the next attempt to start
   * from a fresh read. A `428` means SAP wants an ETag the read did not carry: read again once, and without one still,
   * fail validation, since no retry can supply it. `current()` answers `already-done` when the change is not needed
   * (any more), which ends the change without sending it.
   */
  async changeWithETag(
    service: string,
    change: ODataV4Change,
    current: () => Promise<ETagPrecondition>,
    operation: string,
  ): Promise<void> {
    const url = this.session.url(service, change.resourcePath);
    const noETag = (refused: ExternalSystemError) =>
      new ExternalSystemError(
        this.system,
        'validation',
        `${refused.message} (SAP requires If-Match, and a fresh read of ${change.resourcePath} gave no usable ETag)`,
        428,
      );
    let precondition = await current();
    let reread = false;
    for (;;) {
      if (precondition === 'already-done') return;
      const { etag } = precondition;
      const headers: Record<string, string> = etag ? { 'if-match': etag } : {};
      const res = await this.session.write(change.method, service, url, change.body, operation, headers, [412, 428]);
      if (isSuccess(res.status)) return;
      const refused = sapHttpError(this.system, operation, res.status, res.text);
      if (reread && res.status === 428) throw noETag(refused);
      if (reread) {
        const message = `${refused.message} (changed again since a fresh read)`;
        throw new ExternalSystemError(this.system, 'transient', message, 412);
      }
      reread = true;
      precondition = await current();
      if (res.status === 428 && precondition !== 'already-done' && !precondition.etag) throw noETag(refused);
    }
  }
}
