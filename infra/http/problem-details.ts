/**
 * Every 4xx and 5xx leaves as application/problem+json (RFC 9457). Validation failures name each bad field;
 * 5xx answers never carry stack traces, SQL or driver messages (OWASP API8, docs/reliability.md#error-responses).
 */
import type { FastifyError, FastifyInstance, FastifyReply, FastifyServerOptions } from 'fastify';
import { hasZodFastifySchemaValidationErrors } from 'fastify-type-provider-zod';
import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';

export const PROBLEM_CONTENT_TYPE = 'application/problem+json';

export interface FieldError {
  field: string;
  message: string;
}

export interface Problem {
  type: string;
  title: string;
  status: number;
  detail?: string;
  errors?: FieldError[];
  [extension: string]: unknown;
}

/** Problem types Holdfast defines; plain HTTP failures use about:blank with the status phrase as title. */
export function problemType(slug: string): string {
  return `urn:holdfast:problem:${slug}`;
}

/** Thrown by routes and services for an answer that is already a problem; the error handler sends it as is. */
export class ProblemError extends Error {
  override readonly name = 'ProblemError';
  constructor(
    readonly problem: Problem,
    readonly headers: Record<string, string> = {},
  ) {
    super(problem.detail ?? problem.title);
  }
}

export function httpProblem(status: number, detail?: string): Problem {
  return { type: 'about:blank', title: STATUS_CODES[status] ?? 'Error', status, ...(detail ? { detail } : {}) };
}

export function notFound(detail: string): ProblemError {
  return new ProblemError(httpProblem(404, detail));
}

/**
 * 503: Temporal is not wired into this process, or could not be reached. `retry` says what the caller should do; with
 * it the answer carries `Retry-After: 5`.
 */
export function workflowServiceUnavailable(retry?: string): ProblemError {
  const problem: Problem = {
    type: problemType('workflow-service-unavailable'),
    title: 'Service Unavailable',
    status: 503,
    ...(retry ? { detail: retry } : {}),
  };
  return new ProblemError(problem, retry ? { 'retry-after': '5' } : {});
}

export function validationProblem(errors: FieldError[], detail?: string): Problem {
  return {
    type: problemType('validation'),
    title: 'Request validation failed',
    status: 400,
    detail: detail ?? errors.map((e) => `${e.field}: ${e.message}`).join('; '),
    errors,
  };
}

export function sendProblem(reply: FastifyReply, problem: Problem, headers: Record<string, string> = {}): FastifyReply {
  // Pre-serialised: a string with a JSON media type bypasses the route's response serializer.
  return reply.code(problem.status).headers(headers).type(PROBLEM_CONTENT_TYPE).send(JSON.stringify(problem));
}

/** What fastify refuses before routing, in words that do not echo the (possibly huge) path back. */
const FRAMEWORK_REFUSALS: Record<string, string> = {
  FST_ERR_MAX_PARAM_LENGTH: 'a path parameter is longer than any this API accepts',
  FST_ERR_BAD_URL: 'the path is not a valid URL (bad percent-encoding)',
};

const CLIENT_ERRORS: Record<number, string> = {
  400: 'the request is not valid HTTP',
  408: 'the request did not arrive in time',
  431: 'the request line or headers are larger than the server accepts',
};

/**
 * Server options of every Holdfast fastify app (the API and the inference edge). fastify answers a few requests
 * before any route or handler sees them (a path parameter over maxParamLength, a path it cannot decode), in plain
 * JSON unless `frameworkErrors` answers: here as problems too. maxParamLength (fastify's default is 100) admits the
 * identifiers the schemas accept, 200 characters of up to 9 bytes each once percent-encoded, so that the schema,
 * not the router, judges them and names the field.
 */
export const problemServerOptions = {
  routerOptions: { maxParamLength: 2048 },
  frameworkErrors(err: FastifyError, _request: unknown, reply: FastifyReply) {
    const status =
      typeof err.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 400;
    sendProblem(reply, httpProblem(status, FRAMEWORK_REFUSALS[err.code] ?? STATUS_CODES[status]));
  },
  /**
   * A request Node's HTTP parser refuses (headers or request line over its limit: 431, a malformed request: 400),
   * answered on the socket before fastify has a request or reply: fastify's default handler, in problem+json.
   */
  clientErrorHandler(err: NodeJS.ErrnoException, socket: Socket) {
    // A reset connection has no one to answer (https://nodejs.org/api/http.html#event-clienterror).
    if (err.code === 'ECONNRESET' || socket.destroyed) return;
    const status = err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : err.code === 'HPE_HEADER_OVERFLOW' ? 431 : 400;
    const body = JSON.stringify(httpProblem(status, CLIENT_ERRORS[status]));
    if (socket.writable) {
      socket.write(
        `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` +
          `Content-Type: ${PROBLEM_CONTENT_TYPE}\r\nConnection: close\r\n\r\n${body}`,
      );
    }
    socket.destroy(err);
  },
} satisfies Partial<FastifyServerOptions>;

export function registerProblemHandlers(app: FastifyInstance): void {
  app.setNotFoundHandler((request, reply) => {
    sendProblem(
      reply,
      httpProblem(404, `no route ${request.method} ${request.routeOptions.url ?? request.url.split('?')[0]}`),
    );
  });

  app.setErrorHandler((err: FastifyError, request, reply) => {
    if (err instanceof ProblemError) return sendProblem(reply, err.problem, err.headers);
    if (hasZodFastifySchemaValidationErrors(err)) {
      return sendProblem(reply, validationProblem(fieldErrors(err.validation, err.validationContext)));
    }
    const status = typeof err.statusCode === 'number' ? err.statusCode : 500;
    if (status >= 400 && status < 500) {
      // fastify's own 4xx (bad JSON, body too large, unsupported media type) carry safe, fixed messages.
      return sendProblem(reply, httpProblem(status, err.message));
    }
    request.log.error({ err }, 'request failed');
    return sendProblem(reply, httpProblem(500, 'internal error; the request was not completed'));
  });
}

interface RawIssue {
  path: (string | number)[];
  code?: string;
  message: string;
  keys?: string[];
}

type ValidationEntry = {
  instancePath: string;
  keyword: string;
  message?: string;
  params: Record<string, unknown>;
};

/** Body fields are named by their path alone (`results.2.defects.0.score`); others get their part as prefix. */
function fieldErrors(validation: readonly ValidationEntry[], context: string | undefined): FieldError[] {
  const issues: RawIssue[] = [];
  for (const v of validation) {
    const path = v.instancePath.split('/').filter((p) => p !== '');
    if (v.keyword === 'invalid_union' && Array.isArray(v.params.errors)) {
      issues.push(
        ...closestUnionBranch(v.params.errors as RawIssue[][]).map((i) => ({ ...i, path: [...path, ...i.path] })),
      );
    } else {
      issues.push({
        path,
        code: v.keyword,
        message: v.message ?? 'invalid',
        keys: v.params.keys as string[] | undefined,
      });
    }
  }
  const prefix = context && context !== 'body' ? `${context}.` : '';
  return issues.flatMap((issue) => {
    if (issue.code === 'unrecognized_keys' && issue.keys?.length) {
      return issue.keys.map((key) => ({
        field: `${prefix}${[...issue.path, key].join('.')}`,
        message: 'unknown property (not allowed)',
      }));
    }
    return [{ field: `${prefix}${issue.path.join('.') || '(root)'}`, message: issue.message }];
  });
}

/**
 * zod reports a failed union as one issue holding every branch's issues. The caller meant one shape: the branch
 * that did not reject the top-level keys as unknown, or failing that the one with the fewest issues.
 */
function closestUnionBranch(branches: RawIssue[][]): RawIssue[] {
  const score = (issues: RawIssue[]) =>
    (issues.some((i) => i.code === 'unrecognized_keys' && i.path.length === 0) ? 1_000 : 0) + issues.length;
  return branches.reduce((best, b) => (score(b) < score(best) ? b : best), branches[0] ?? []);
}
