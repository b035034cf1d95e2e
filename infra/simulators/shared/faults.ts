import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';

/**
 * Fault injection for the vendor simulators, driven over HTTP by tests and benchmarks:
 * added latency, a random error rate, outage windows, and "commit the change but drop the response"
 * (the request is fully processed and persisted, then the socket is destroyed before any byte is sent).
 * Control requests (under /__faults) are never subject to faults themselves.
 */
export const FaultSettings = z.strictObject({
  latencyMs: z.number().int().min(0).max(60_000).default(0),
  /** Uniform extra latency in [0, jitterMs). Deterministic tests leave it at 0. */
  jitterMs: z.number().int().min(0).max(60_000).default(0),
  /** Share of matching requests answered 503 without being processed. */
  errorRate: z.number().min(0).max(1).default(0),
  /** Requests are refused with 503 until this instant (ISO-8601); null clears the outage. */
  outageUntil: z.iso.datetime().nullable().default(null),
  dropResponse: z
    .strictObject({
      /** How many more matching requests get their response dropped (after commit). */
      remaining: z.number().int().min(0).default(0),
      /** Or a share of matching requests (0 disables). */
      rate: z.number().min(0).max(1).default(0),
      methods: z.array(z.string().toUpperCase()).default(['POST']),
      /** Only requests whose URL contains this text. */
      pathContains: z.string().optional(),
    })
    .prefault({}),
  /** Faults apply only to URLs containing this text (all, when absent). */
  pathContains: z.string().optional(),
});
export type FaultSettings = z.infer<typeof FaultSettings>;

export interface FaultCounters {
  delayed: number;
  errored: number;
  outageRejected: number;
  responsesDropped: number;
}

const CONTROL_PREFIX = '/__faults';

export function registerFaultInjection(app: FastifyInstance, initial: Partial<FaultSettings> = {}): void {
  let settings = FaultSettings.parse(initial);
  const counters: FaultCounters = { delayed: 0, errored: 0, outageRejected: 0, responsesDropped: 0 };
  const applies = (req: FastifyRequest) =>
    !req.url.startsWith(CONTROL_PREFIX) && (!settings.pathContains || req.url.includes(settings.pathContains));

  app.addHook('onRequest', async (req, reply) => {
    if (!applies(req)) return;
    const delay = settings.latencyMs + (settings.jitterMs ? Math.floor(Math.random() * settings.jitterMs) : 0);
    if (delay > 0) {
      counters.delayed++;
      await new Promise((r) => setTimeout(r, delay));
    }
    if (settings.outageUntil && Date.parse(settings.outageUntil) > Date.now()) {
      counters.outageRejected++;
      return reply.code(503).header('retry-after', '1').send({ error: 'simulated outage' });
    }
    if (settings.errorRate > 0 && Math.random() < settings.errorRate) {
      counters.errored++;
      return reply.code(503).send({ error: 'simulated transient error' });
    }
  });

  app.addHook('onSend', async (req, reply, payload) => {
    if (!applies(req)) return payload;
    const drop = settings.dropResponse;
    const matches = drop.methods.includes(req.method) && (!drop.pathContains || req.url.includes(drop.pathContains));
    // Only successful writes: the point is a change that happened while the caller never heard about it.
    if (!matches || reply.statusCode >= 400) return payload;
    const byCount = drop.remaining > 0;
    if (byCount || (drop.rate > 0 && Math.random() < drop.rate)) {
      if (byCount) drop.remaining--;
      counters.responsesDropped++;
      req.raw.socket.destroy();
    }
    return payload;
  });

  app.get(CONTROL_PREFIX, async () => ({ settings, counters }));
  app.put(CONTROL_PREFIX, async (req, reply) => {
    const parsed = FaultSettings.safeParse(req.body ?? {});
    if (!parsed.success) {
      return reply
        .code(400)
        .type('application/problem+json')
        .send({ title: 'invalid fault settings', errors: parsed.error.issues });
    }
    settings = parsed.data;
    return { settings, counters };
  });
  app.delete(CONTROL_PREFIX, async () => {
    settings = FaultSettings.parse({});
    Object.assign(counters, { delayed: 0, errored: 0, outageRejected: 0, responsesDropped: 0 });
    return { settings, counters };
  });
}
