import type { z } from 'zod';
import { ExternalSystemError } from '../../../activities/errors';
import { createHttpTransport, DEFAULT_MAX_RESPONSE_BYTES, ResponseTooLargeError } from '../http-transport';
import { type MesProblemBody, mesHttpError, mesMalformedResponse, mesTransportError } from './errors';

export interface MesRestClientOptions {
  /** Instance name from temporal.yaml, used as the system name in errors. */
  system: string;
  baseUrl: string;
  apiKey?: string;
  timeoutMs: number;
  /** Larger bodies are refused as malformed rather than buffered (OWASP API10). */
  maxResponseBytes?: number;
}

export interface MesRequest<T> {
  /** The port operation, for error messages (e.g. 'holdLot'). */
  operation: string;
  method: 'GET' | 'POST';
  path: string;
  query?: Record<string, string | undefined>;
  body?: unknown;
  response: z.ZodType<T>;
}

/**
 * HTTP client for the holdfast-mes-rest API over a connection pool of its own (../http-transport.ts). It makes
 * exactly one attempt per call: Temporal's activity retry policy is the only retry owner (docs/reliability.md#retry-classification: one retry owner per call).
 */
export function createMesRestClient(opts: MesRestClientOptions) {
  const baseUrl = opts.baseUrl.replace(/\/+$/, '');
  const http = createHttpTransport({
    timeoutMs: opts.timeoutMs,
    maxResponseBytes: opts.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES,
  });
  let closed = false;

  async function request<T>(req: MesRequest<T>): Promise<T> {
    const { system } = opts;
    if (closed) {
      throw new ExternalSystemError(system, 'transient', `${system} ${req.operation}: connector is closed`);
    }
    const url = new URL(baseUrl + req.path);
    for (const [key, value] of Object.entries(req.query ?? {})) {
      if (value !== undefined) url.searchParams.set(key, value);
    }
    const headers: Record<string, string> = { accept: 'application/json' };
    if (req.body !== undefined) headers['content-type'] = 'application/json';
    if (opts.apiKey) headers['x-api-key'] = opts.apiKey;

    let status: number;
    let text: string;
    try {
      const res = await http.send({
        method: req.method,
        url,
        headers,
        ...(req.body === undefined ? {} : { body: JSON.stringify(req.body) }),
      });
      status = res.status;
      text = res.text;
    } catch (err) {
      if (err instanceof ResponseTooLargeError)
        throw mesMalformedResponse(system, req.operation, err.status, err.message);
      throw mesTransportError(system, req.operation, err, opts.timeoutMs);
    }

    if (status < 200 || status >= 300) {
      throw mesHttpError(system, req.operation, status, parseProblem(text));
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      throw mesMalformedResponse(
        system,
        req.operation,
        status,
        `body is not JSON: ${JSON.stringify(text.slice(0, 80))}`,
      );
    }
    const parsed = req.response.safeParse(json);
    if (!parsed.success) throw mesMalformedResponse(system, req.operation, status, parsed.error);
    return parsed.data;
  }

  return {
    request,
    /** Fails the calls in flight and releases every socket. */
    close(): void {
      closed = true;
      http.close();
    },
  };
}

export type MesRestClient = ReturnType<typeof createMesRestClient>;

function parseProblem(text: string): MesProblemBody | undefined {
  try {
    const body: unknown = JSON.parse(text);
    if (typeof body !== 'object' || body === null) return undefined;
    const { code, detail, title, error } = body as Record<string, unknown>;
    // `error` is the plain-JSON shape some gateways (and the fault injector) use instead of problem details.
    const message = typeof detail === 'string' ? detail : typeof error === 'string' ? error : undefined;
    return {
      ...(typeof code === 'string' ? { code } : {}),
      ...(message !== undefined ? { detail: message } : {}),
      ...(typeof title === 'string' ? { title } : {}),
    };
  } catch {
    return text ? { detail: text.slice(0, 200) } : undefined;
  }
}
