/**
 * HTTP for the REST and OData connectors: one attempt per call, a deadline per call, and a connection pool the
 * connector owns. Node's fetch pools sockets in a process-wide dispatcher that no connector can close, so a closed
 * connector would leave its keep-alive sockets open until they time out; here `close()` destroys every socket and
 * fails the calls still in flight.
 *
 * Failures keep the names the connectors' error mapping reads (errors.ts `describeNetworkError`): `TimeoutError` for
 * the deadline, `AbortError` for a call cut by close(), and the socket's own error (ECONNREFUSED, ECONNRESET "socket
 * hang up" for a response dropped after the server committed) otherwise.
 *
 * Redirects are never followed (node:http does not): a 3xx is the answer the connector gets, so a vendor system or
 * webhook cannot send a call, with its credentials, to a host the configuration did not name (OWASP API7).
 */
import http from 'node:http';
import https from 'node:https';

export interface HttpCall {
  method: string;
  url: string | URL;
  headers?: Record<string, string>;
  body?: string;
}

export interface HttpAnswer {
  status: number;
  headers: Headers;
  text: string;
}

export interface HttpTransport {
  send(call: HttpCall): Promise<HttpAnswer>;
  /** Destroys every pooled socket and fails the calls in flight; later calls fail at once. Idempotent. */
  close(): void;
}

export interface HttpTransportOptions {
  /** The whole call, from sending to the last byte of the body. */
  timeoutMs: number;
  /** A larger body fails the call with ResponseTooLargeError instead of being buffered (OWASP API10). */
  maxResponseBytes?: number;
}

export class HttpTimeoutError extends Error {
  override readonly name = 'TimeoutError';
}

export class HttpClosedError extends Error {
  override readonly name = 'AbortError';
}

export class ResponseTooLargeError extends Error {
  override readonly name = 'ResponseTooLargeError';
  constructor(
    readonly status: number,
    readonly maxBytes: number,
  ) {
    super(`body larger than ${maxBytes} bytes`);
  }
}

/** What the MES and SAP connectors buffer at most of one answer; a larger one is malformed (OWASP API10). */
export const DEFAULT_MAX_RESPONSE_BYTES = 8 * 1024 * 1024;

/**
 * Idle keep-alive sockets are dropped after this. Below the keep-alive timeout of common servers (nginx 75 s, SAP
 * ICM and fastify 60-72 s), so a request rarely goes out on a socket the server is closing at that moment.
 */
const IDLE_SOCKET_MS = 4_000;

export function createHttpTransport(opts: HttpTransportOptions): HttpTransport {
  const agents = new Map<string, http.Agent>();
  /** Each call in flight, with what fails it. */
  const inFlight = new Map<http.ClientRequest, (err: Error) => void>();
  let closed = false;

  const agentFor = (protocol: string): http.Agent => {
    let agent = agents.get(protocol);
    if (!agent) {
      const settings = { keepAlive: true, timeout: IDLE_SOCKET_MS };
      agent = protocol === 'https:' ? new https.Agent(settings) : new http.Agent(settings);
      agents.set(protocol, agent);
    }
    return agent;
  };

  function send(call: HttpCall): Promise<HttpAnswer> {
    if (closed) return Promise.reject(new HttpClosedError('the connector is closed'));
    const url = typeof call.url === 'string' ? new URL(call.url) : call.url;
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      return Promise.reject(new Error(`unsupported protocol ${url.protocol}`));
    }
    const request = url.protocol === 'https:' ? https.request : http.request;
    const body = call.body === undefined ? undefined : Buffer.from(call.body, 'utf8');
    const headers = { ...call.headers, ...(body ? { 'content-length': String(body.length) } : {}) };

    return new Promise<HttpAnswer>((resolve, reject) => {
      let settled = false;
      let timer: NodeJS.Timeout | undefined;
      const finish = (err: Error | undefined, answer?: HttpAnswer) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        inFlight.delete(req);
        if (err) reject(err);
        else resolve(answer!);
      };
      const req = request(url, { method: call.method, headers, agent: agentFor(url.protocol) }, (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (opts.maxResponseBytes !== undefined && size > opts.maxResponseBytes) {
            finish(new ResponseTooLargeError(res.statusCode ?? 0, opts.maxResponseBytes));
            req.destroy();
            return;
          }
          chunks.push(chunk);
        });
        res.on('end', () =>
          finish(undefined, {
            status: res.statusCode ?? 0,
            headers: toHeaders(res.headers),
            text: Buffer.concat(chunks).toString('utf8'),
          }),
        );
        // A connection dropped after the headers fails here (ECONNRESET "aborted"), not on the request.
        res.on('error', (err) => finish(closed ? new HttpClosedError('aborted: the connector closed') : err));
      });
      inFlight.set(req, finish);
      req.on('error', (err) => finish(closed ? new HttpClosedError('aborted: the connector closed') : err));
      timer = setTimeout(() => {
        finish(new HttpTimeoutError(`no response within ${opts.timeoutMs} ms`));
        req.destroy();
      }, opts.timeoutMs);
      req.end(body);
    });
  }

  return {
    send,
    close() {
      if (closed) return;
      closed = true;
      for (const [req, fail] of [...inFlight]) {
        fail(new HttpClosedError('aborted: the connector closed'));
        req.destroy();
      }
      for (const agent of agents.values()) agent.destroy();
      agents.clear();
    },
  };
}

function toHeaders(raw: http.IncomingHttpHeaders): Headers {
  const headers = new Headers();
  for (const [name, value] of Object.entries(raw)) {
    if (Array.isArray(value)) for (const v of value) headers.append(name, v);
    else if (value !== undefined) headers.append(name, value);
  }
  return headers;
}
