/**
 * Prometheus for a process: one registry per process (tests run several "processes" in one jest worker, and each
 * keeps its own), Node's and the OS process's standard series, and GET /metrics on a fastify edge.
 */
import type { FastifyInstance } from 'fastify';
import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/**
 * A registry with the standard process and Node.js series (`process_cpu_seconds_total`, `nodejs_eventloop_lag_seconds`,
 * …) under their usual names, so stock dashboards work; Holdfast's own series are added by each process.
 */
export function createProcessRegistry(): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  return registry;
}

/** Seconds; from a fast health check to a slow batch of inspections. */
const HTTP_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/**
 * Counts and times every request of `app` by its route template (never the raw URL, which would make a series per
 * lot id) and serves the registry at GET /metrics. Call before the app is ready.
 */
export function exposeMetrics(app: FastifyInstance, registry: Registry): void {
  const requests = new Counter({
    name: 'holdfast_http_requests_total',
    help: 'HTTP requests answered, by method, route template and status code.',
    labelNames: ['method', 'route', 'status_code'],
    registers: [registry],
  });
  const duration = new Histogram({
    name: 'holdfast_http_request_duration_seconds',
    help: 'Time from the request to its answer, by method and route template.',
    labelNames: ['method', 'route'],
    buckets: HTTP_BUCKETS,
    registers: [registry],
  });
  app.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url ?? 'unmatched';
    requests.inc({ method: request.method, route, status_code: String(reply.statusCode) });
    duration.observe({ method: request.method, route }, reply.elapsedTime / 1000);
  });
  app.get('/metrics', { schema: { hide: true }, config: { access: 'public' } }, async (_request, reply) => {
    const body = await registry.metrics();
    return reply.type(registry.contentType).send(body);
  });
}
