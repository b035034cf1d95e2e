import type { z } from 'zod';
import { ExternalSystemError } from '../../../activities/errors';
import { createHttpTransport, ResponseTooLargeError, type HttpTransport } from '../http-transport';
import { sapHttpError, sapMalformedResponse, sapTransportError } from './errors';
import { ODataCollection, ODataEntity } from './sap-s4.schemas';

/**
 * OData V2 client for SAP Gateway over a connection pool of its own (../http-transport.ts). One attempt per call (Temporal's retry policy is the only retry
 * owner, house rule 4), with one exception the protocol demands: a write refused with `403` + `X-CSRF-Token: Required`
 * re-fetches the token once and is sent again (docs/vendor-interfaces.md#sap-csrf-tokens; the SAP Cloud SDK does the
 * same).
 */
export interface SapODataClientOptions {
  /** Instance name from temporal.yaml, used as the system name in errors. */
  system: string;
  /** Scheme, host and port; the client appends /sap/opu/odata/sap/{service}. */
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
  top?: number;
  expand?: string[];
  select?: string[];
}

interface Exchange {
  status: number;
  headers: Headers;
  text: string;
}

const ODATA_PATH = '/sap/opu/odata/sap';
const DEFAULT_MAX_RESPONSE_BYTES = 8 * 1024 * 1024;

/** OData V2 string literal: single quotes, an embedded quote doubled. */
export function odataString(value: string): string {
  return `'${value.replace(/'/g, "''")}'`;
}

export class SapODataClient {
  readonly system: string;
  private readonly root: string;
  private readonly authorization: string;
  private readonly http: HttpTransport;
  private closed = false;
  /** Session and anti-XSRF cookies: SAP binds the CSRF token to them. */
  private readonly cookies = new Map<string, string>();
  private token: string | undefined;
  private tokenFetch: Promise<string> | undefined;

  constructor(private readonly opts: SapODataClientOptions) {
    this.system = opts.system;
    this.root = opts.baseUrl.replace(/\/+$/, '') + ODATA_PATH;
    this.authorization = `Basic ${Buffer.from(`${opts.username}:${opts.password}`, 'utf8').toString('base64')}`;
    this.http = createHttpTransport({
      timeoutMs: opts.timeoutMs,
      maxResponseBytes: opts.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES,
    });
  }

  /** GET a collection; each record is validated with `entity`. */
  async list<T>(
    service: string,
    entitySet: string,
    query: ODataQuery,
    entity: z.ZodType<T>,
    operation: string,
  ): Promise<T[]> {
    const res = await this.exchange('GET', this.url(service, entitySet, query), {}, undefined, operation);
    if (res.status !== 200) throw sapHttpError(this.system, operation, res.status, res.text);
    return this.parse(res, ODataCollection(entity), operation).d.results;
  }

  /** GET one entity by its resource path, e.g. `QualityNotification('200000001')`. */
  async get<T>(
    service: string,
    resourcePath: string,
    query: ODataQuery,
    entity: z.ZodType<T>,
    operation: string,
  ): Promise<T> {
    const res = await this.exchange('GET', this.url(service, resourcePath, query), {}, undefined, operation);
    if (res.status !== 200) throw sapHttpError(this.system, operation, res.status, res.text);
    return this.parse(res, ODataEntity(entity), operation).d;
  }

  /** POST a (deep) insert; SAP answers 201 with the created entity. */
  async create<T>(
    service: string,
    entitySet: string,
    body: unknown,
    entity: z.ZodType<T>,
    operation: string,
  ): Promise<T> {
    const res = await this.modify('POST', service, entitySet, body, operation);
    return this.parse(res, ODataEntity(entity), operation).d;
  }

  /** PATCH (partial update, the MERGE of OData V2); SAP answers 204. */
  async update(service: string, resourcePath: string, body: unknown, operation: string): Promise<void> {
    await this.modify('PATCH', service, resourcePath, body, operation);
  }

  /** Fetches a fresh CSRF token (and session cookies); doubles as the health check. */
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

  private url(service: string, resourcePath: string, query: ODataQuery = {}): string {
    // encodeURIComponent, not URLSearchParams: '+' for a space is form encoding, which an OData server need not accept.
    const params: string[] = [`sap-client=${encodeURIComponent(this.opts.sapClient)}`];
    const filter = Object.entries(query.filter ?? {})
      .map(([property, value]) => `${property} eq ${odataString(value)}`)
      .join(' and ');
    if (filter) params.push(`$filter=${encodeURIComponent(filter)}`);
    if (query.top !== undefined) params.push(`$top=${query.top}`);
    if (query.expand?.length) params.push(`$expand=${encodeURIComponent(query.expand.join(','))}`);
    if (query.select?.length) params.push(`$select=${encodeURIComponent(query.select.join(','))}`);
    return `${this.root}/${service}/${resourcePath}?${params.join('&')}`;
  }

  private async modify(
    method: 'POST' | 'PATCH',
    service: string,
    resourcePath: string,
    body: unknown,
    operation: string,
  ): Promise<Exchange> {
    const url = this.url(service, resourcePath);
    const send = (token: string) =>
      this.exchange(
        method,
        url,
        { 'content-type': 'application/json', ...(token ? { 'x-csrf-token': token } : {}) },
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
    if (res.status < 200 || res.status >= 300) throw sapHttpError(this.system, operation, res.status, res.text);
    return res;
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
    const attempts: ['HEAD' | 'GET', string][] = [
      ['HEAD', `${this.root}/${service}/?sap-client=${encodeURIComponent(this.opts.sapClient)}`],
      ['GET', `${this.root}/${service}?sap-client=${encodeURIComponent(this.opts.sapClient)}`],
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

  private parse<T>(res: Exchange, schema: z.ZodType<T>, operation: string): T {
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
}
