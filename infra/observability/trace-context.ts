/**
 * Spans and W3C trace context through the OpenTelemetry API only. Without a tracer provider (tracing is off unless
 * configured, see tracing.ts) every span here is the API's no-op span and `currentTraceparent()` is undefined.
 */
import {
  type Attributes,
  type Context,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  SpanStatusCode,
  context,
  propagation,
  trace,
} from '@opentelemetry/api';
import type { FastifyInstance, FastifyRequest } from 'fastify';

export { SpanKind };

/** Holdfast's own spans; the API's no-op tracer while no provider is registered. */
export const holdfastTracer = () => trace.getTracer('holdfast');

/**
 * Runs `fn` in a new active span, ended when `fn` settles; a throw or rejection marks the span as failed. `parent`
 * defaults to the active context; pass ROOT_CONTEXT (or `contextFromTraceparent`) to start from elsewhere.
 */
export function inSpan<T>(
  name: string,
  opts: { kind?: SpanKind; attributes?: Attributes; parent?: Context },
  fn: (span: Span) => Promise<T>,
): Promise<T> {
  const parent = opts.parent ?? context.active();
  return holdfastTracer().startActiveSpan(
    name,
    { kind: opts.kind ?? SpanKind.INTERNAL, ...(opts.attributes ? { attributes: opts.attributes } : {}) },
    parent,
    async (span) => {
      try {
        return await fn(span);
      } catch (err) {
        failSpan(span, err);
        throw err;
      } finally {
        span.end();
      }
    },
  );
}

export function failSpan(span: Span, err: unknown): void {
  if (err instanceof Error) span.recordException(err);
  span.setStatus({ code: SpanStatusCode.ERROR, message: err instanceof Error ? err.message : String(err) });
}

/**
 * The active span as a W3C `traceparent` header value, to store next to work that continues elsewhere (the outbox
 * row a dispatcher starts a workflow from); undefined when nothing is traced.
 */
export function currentTraceparent(): string | undefined {
  const carrier: Record<string, string> = {};
  propagation.inject(context.active(), carrier);
  return carrier.traceparent;
}

/** The context a stored `traceparent` names, to continue its trace; the root context when there is none. */
export function contextFromTraceparent(traceparent: string | null | undefined): Context {
  return traceparent ? propagation.extract(ROOT_CONTEXT, { traceparent }) : ROOT_CONTEXT;
}

const UNTRACED_ROUTES = new Set(['/health', '/metrics']);

/**
 * One server span per request of `app`, continuing the caller's trace when it sends `traceparent`; the route's
 * handler runs inside it, so what it calls (ingest, the Temporal client) adds child spans. Register before the
 * routes: handlers are wrapped as routes are added.
 */
export function traceRequests(app: FastifyInstance): void {
  const spans = new WeakMap<FastifyRequest, Span>();
  app.addHook('onRequest', async (request) => {
    const route = request.routeOptions.url;
    // Probes and scrapers every few seconds would bury the requests worth reading.
    if (route !== undefined && UNTRACED_ROUTES.has(route)) return;
    const parent = propagation.extract(ROOT_CONTEXT, request.headers);
    spans.set(
      request,
      holdfastTracer().startSpan(
        `${request.method} ${route ?? 'unmatched'}`,
        {
          kind: SpanKind.SERVER,
          attributes: { 'http.request.method': request.method, ...(route ? { 'http.route': route } : {}) },
        },
        parent,
      ),
    );
  });
  app.addHook('onRoute', (route) => {
    const handler = route.handler;
    route.handler = function tracedHandler(this: unknown, request, reply) {
      const span = spans.get(request);
      const run = () => handler.call(this as never, request, reply);
      return span ? context.with(trace.setSpan(context.active(), span), run) : run();
    };
  });
  app.addHook('onResponse', async (request, reply) => {
    const span = spans.get(request);
    if (!span) return;
    span.setAttribute('http.response.status_code', reply.statusCode);
    if (reply.statusCode >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
    span.end();
  });
}
