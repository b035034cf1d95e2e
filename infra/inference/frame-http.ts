/**
 * The inference worker's HTTP edge, for one-off images (a re-check at the bench, a lab camera, an integrator's test)
 * next to the MQTT stream: POST /v1/stations/{site}/{line}/{station}/frames. The body is the MQTT frame payload as
 * JSON, or the image itself (image/png, image/jpeg) with the frame's fields in the query string. Either way the frame
 * goes through the same pipeline as a frame from the station's topic: same checks, recipe, reject signal (the
 * station's mode decides), durable ingest and outbox, and the answer waits for the committed result.
 *
 * It also lets an operator see and act on the frames kept while their image source was down (deferred-frames.ts):
 * GET /v1/deferred-frames, POST /v1/deferred-frames/{eventId}/retry and POST /v1/deferred-frames/{eventId}/drop.
 */
import Fastify, { type FastifyInstance } from 'fastify';
import {
  serializerCompiler,
  validatorCompiler,
  type FastifyPluginAsyncZod,
  type ZodTypeProvider,
} from 'fastify-type-provider-zod';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import { z } from 'zod';
import { type ListedRoute, recordRoutes, registeredRoutes, registerOpenApi } from '../http/openapi';
import { registerRateLimit } from '../http/rate-limit';
import { registerSecurityHeaders } from '../http/security-headers';
import {
  ProblemError,
  httpProblem,
  problemType,
  problemServerOptions,
  registerProblemHandlers,
  validationProblem,
} from '../http/problem-details';
import { requestActor } from '../http/request-actor';
import type { Authenticator } from '../identity/authenticate';
import { enforceRouteAccess } from '../identity/route-access';
import { ProblemSchema } from '../http/schemas';
import { StationParamsSchema } from '../http/schemas';
import { findStation } from '../config/load';
import type { HoldfastConfig } from '../config/schema';
import type { ConnectorLogger } from '../connectors/define';
import { fastifyLogging } from '../observability/fastify-logging';
import type { Logger } from '../observability/logger';
import { FramePayload, frameTopic } from '../vision/frame.schema';
import { ImageUnavailableError } from '../vision/image-source';
import type { HealthCheck } from '../observability/health-checks';
import { registerHealthRoute } from '../observability/health-route';
import { exposeMetrics } from '../observability/http-metrics';
import type { DeferredFrameAdmin } from './deferred-frames';
import type { FrameOutcome, InferencePipeline } from './inference-pipeline';
import { closeApp } from '../http/close-app';

export interface FrameHttpOptions {
  config: HoldfastConfig;
  pipeline: Pick<InferencePipeline, 'handleFrame'>;
  /** The kept frames (holdfast.frame_deferred); without it the /v1/deferred-frames routes are not served. */
  deferredFrames?: DeferredFrameAdmin;
  /** Failures the caller gets as a bare 500 (database down) are logged here with their cause. */
  log: ConnectorLogger;
  /** The process's logger for fastify (requests at debug); without it fastify logs nothing. */
  httpLogger?: Logger;
  /** Served at GET /metrics, with this edge's request counts added. */
  metrics?: Registry;
  /** What GET /health checks (the worker's dependencies). */
  health?: readonly HealthCheck[];
  /** Who is calling (the same tokens and keys as the API's: docs/identity.md). */
  authenticator: Authenticator;
}

export interface FrameHttpServer {
  /** http://host:port, the port as bound (config port 0 picks a free one). */
  url: string;
  /** Every route it serves (the OpenAPI inventory test compares them with /docs/json). */
  routes: readonly ListedRoute[];
  close(): Promise<void>;
}

const IMAGE_TYPES = { 'image/png': 'png', 'image/jpeg': 'jpeg' } as const;

/** The frame's fields when the body is the image: the JSON payload's, without `image` and `imageRef`. */
const ImageQuerySchema = z.strictObject({
  frameId: z.string(),
  partId: z.string(),
  lotId: z.string(),
  workOrder: z.string(),
  sku: z.string(),
  /** Default: when the request arrived. */
  capturedAt: z.string().optional(),
});

/**
 * An image sent here is usually not of a part at the reject gate (a re-check at the bench, a lab camera): a reject
 * written for it would divert whichever part is there. So a fail diverts only when the caller says so.
 */
const RouteQuerySchema = ImageQuerySchema.partial().extend({
  divert: z
    .enum(['true', 'false'], { error: 'true or false' })
    .optional()
    .describe('true: a fail at a production station writes the reject signal, as a frame from the camera does'),
});

const FrameResultSchema = z.object({
  eventId: z.string(),
  /** `duplicate`: this frame id was inspected before at this station; the first stored result stands. */
  ingest: z.enum(['accepted', 'duplicate']),
  result: z.enum(['pass', 'fail']),
  defects: z.array(
    z.object({
      class: z.string(),
      score: z.number(),
      bbox: z.object({ x: z.number(), y: z.number(), width: z.number(), height: z.number() }).optional(),
    }),
  ),
  modelVersion: z.string(),
  recipeVersion: z.string(),
  inspectedAt: z.string(),
  frame: z.object({ id: z.string(), sha256: z.string() }),
  rejectSignal: z.enum(['written', 'failed', 'not-configured', 'not-requested', 'shadow', 'none']),
});

const frameRoutes: FastifyPluginAsyncZod<FrameHttpOptions> = async (app, { config, pipeline }) => {
  // The pipeline parses the payload itself (parseFrame), exactly as it does a payload from MQTT.
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser(
    ['application/json', ...Object.keys(IMAGE_TYPES)],
    { parseAs: 'buffer' },
    (_req, body, done) => done(null, body),
  );

  app.post('/v1/stations/:site/:line/:station/frames', {
    config: {
      access: { roles: ['operator', 'quality-engineer', 'integrator'], machine: ['frames:write'] },
      // A station's key sends frames for its own station only (Part 11 §11.10(h)).
      accessTargets: (request) => {
        const { site, line, station } = request.params as { site: string; line: string; station: string };
        return [{ site, line, station }];
      },
    },
    schema: {
      summary: 'Inspect one image now, as a frame from this station',
      description:
        'Body: the MQTT frame payload as `application/json`, or the image itself as `image/png` or `image/jpeg` ' +
        "with the frame's fields (frameId, partId, lotId, workOrder, sku, optional capturedAt) in the query string. " +
        'The answer comes once the result is stored. A fail writes the reject signal only with `divert=true` (and ' +
        'at a production station): an image sent here is rarely of the part at the reject gate. The same frameId ' +
        'again is a duplicate: the first result stands. At a station a changeover has switched, an image of another ' +
        'work order or SKU than the one it runs is refused with 409 `recipe-mismatch` (docs/changeover.md).',
      tags: ['frames'],
      params: StationParamsSchema,
      querystring: RouteQuerySchema,
      response: {
        200: FrameResultSchema,
        400: ProblemSchema,
        404: ProblemSchema,
        409: ProblemSchema,
        415: ProblemSchema,
        422: ProblemSchema,
        503: ProblemSchema,
      },
    },
    handler: async (request) => {
      const receivedAt = process.hrtime.bigint();
      const station = request.params;
      if (!findStation(config, station)) {
        throw new ProblemError(
          httpProblem(404, `no station ${station.site}/${station.line}/${station.station} in the configuration`),
        );
      }
      let topic: string;
      try {
        topic = frameTopic(config.vision.topicPrefix, station.site, station.line, station.station);
      } catch (err) {
        throw new ProblemError(validationProblem([{ field: 'station', message: (err as Error).message }]));
      }
      const mediaType = (request.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
      const body = request.body as Buffer;
      const { divert, ...frameFields } = request.query;
      if (!(mediaType in IMAGE_TYPES) && Object.keys(frameFields).length > 0) {
        throw new ProblemError(
          validationProblem(
            Object.keys(frameFields).map((field) => ({
              field: `querystring.${field}`,
              message: 'only with an image body: a JSON body carries the frame fields itself',
            })),
          ),
        );
      }
      const payload = mediaType in IMAGE_TYPES ? framePayloadFor(frameFields, body, mediaType) : body;
      let outcome: FrameOutcome;
      try {
        // The caller is here to retry: an unavailable image source is a 503, not a frame kept for later.
        outcome = await pipeline.handleFrame({
          topic,
          payload,
          receivedAt,
          divert: divert === 'true',
          deferUnavailable: false,
        });
      } catch (err) {
        if (!(err instanceof ImageUnavailableError)) throw err;
        throw new ProblemError(
          {
            type: problemType('image-unavailable'),
            title: 'Image source unavailable',
            status: 503,
            detail: err.message,
          },
          { 'retry-after': '5' },
        );
      }
      return answer(outcome);
    },
  });
};

const DeferredFrameSchema = z.object({
  eventId: z.string(),
  topic: z.string(),
  deferredAt: z.string(),
  attempts: z.number().int(),
  nextAttemptAt: z.string(),
  lastError: z.string(),
});
const EventIdParamsSchema = z.strictObject({ eventId: z.string().min(1).max(512) });

/**
 * Kept frames are the plant's image-source outages, listed across sites: people who run the plant's integration (and
 * admins), not one site's staff. Dropping one loses an inspection for good, so no machine key may.
 */
const KEPT_FRAMES_READERS = { roles: ['integrator', 'quality-manager'], machine: ['deferred-frames:read'] } as const;
const KEPT_FRAMES_ACTORS = { roles: ['integrator', 'quality-manager'] } as const;

const deferredFrameRoutes: FastifyPluginAsyncZod<{ deferredFrames: DeferredFrameAdmin }> = async (
  app,
  { deferredFrames },
) => {
  const notKept = (eventId: string) =>
    new ProblemError(httpProblem(404, `no frame ${eventId} is kept (inspected, dropped or never kept)`));

  app.get('/v1/deferred-frames', {
    config: { access: KEPT_FRAMES_READERS },
    schema: {
      summary: 'Frames kept while their image source was down',
      description:
        'Oldest first, with their attempts and last error. Each is tried again until its image can be read, ' +
        'and given up (recorded as refused) after `vision.imageRetryMaxAge`.',
      tags: ['deferred frames'],
      querystring: z.strictObject({ limit: z.coerce.number().int().min(1).max(500).default(100) }),
      response: {
        200: z.object({ total: z.number().int(), frames: z.array(DeferredFrameSchema) }),
        400: ProblemSchema,
      },
    },
    handler: (request) => deferredFrames.list({ limit: request.query.limit }),
  });

  app.post('/v1/deferred-frames/:eventId/retry', {
    config: { access: KEPT_FRAMES_ACTORS },
    schema: {
      summary: 'Try a kept frame again now',
      description: 'For when its image source is back: the frame is due at once instead of after its backoff.',
      tags: ['deferred frames'],
      params: EventIdParamsSchema,
      response: { 200: DeferredFrameSchema, 404: ProblemSchema },
    },
    handler: async (request) => {
      const frame = await deferredFrames.retryNow(request.params.eventId, requestActor(request));
      if (!frame) throw notKept(request.params.eventId);
      return frame;
    },
  });

  app.post('/v1/deferred-frames/:eventId/drop', {
    config: { access: KEPT_FRAMES_ACTORS },
    schema: {
      summary: 'Give a kept frame up',
      description:
        'For an image that will never come back. The frame is recorded as refused (holdfast.frame_rejection, ' +
        'reason `dropped`) with who dropped it and why; it is never inspected.',
      tags: ['deferred frames'],
      params: EventIdParamsSchema,
      body: z.strictObject({
        droppedBy: z.string().trim().min(1).max(200),
        reason: z.string().trim().min(1).max(1000),
      }),
      response: { 200: z.object({ eventId: z.string(), rejectionId: z.string() }), 404: ProblemSchema },
    },
    handler: async (request) => {
      const dropped = await deferredFrames.drop(request.params.eventId, request.body, requestActor(request));
      if (!dropped) throw notKept(request.params.eventId);
      return { eventId: request.params.eventId, rejectionId: dropped.rejectionId };
    },
  });
};

/**
 * The JSON payload for an image sent as the body, so that one parser checks both forms. The route's schema has
 * already checked the query's types and refused unknown keys; what is left is the fields an image body requires.
 */
function framePayloadFor(query: z.infer<typeof RouteQuerySchema>, image: Buffer, mediaType: string): Buffer {
  const fields = ImageQuerySchema.safeParse(query);
  if (!fields.success) {
    throw new ProblemError(
      validationProblem(
        fields.error.issues.map((i) => ({ field: `querystring.${i.path.map(String).join('.')}`, message: 'required' })),
      ),
    );
  }
  const frame: FramePayload = {
    ...fields.data,
    capturedAt: fields.data.capturedAt ?? new Date().toISOString(),
    image: { encoding: IMAGE_TYPES[mediaType as keyof typeof IMAGE_TYPES], data: image.toString('base64') },
  };
  return Buffer.from(JSON.stringify(frame), 'utf8');
}

function answer(outcome: FrameOutcome): z.infer<typeof FrameResultSchema> {
  if (outcome.kind === 'inspected') {
    const { result } = outcome;
    return {
      eventId: result.eventId,
      ingest: outcome.ingest,
      result: result.result,
      defects: result.defects,
      modelVersion: result.modelVersion,
      recipeVersion: result.recipeVersion,
      inspectedAt: result.inspectedAt,
      frame: result.frame!,
      rejectSignal: outcome.rejectSignal,
    };
  }
  if (outcome.kind === 'deferred') throw new Error(`frame ${outcome.eventId} deferred, though this edge never defers`);
  switch (outcome.reason) {
    case 'bad-payload':
      throw new ProblemError(validationProblem(outcome.issues ?? [{ field: 'payload', message: outcome.detail }]));
    case 'bad-image':
      throw new ProblemError(validationProblem(outcome.issues ?? [{ field: 'image', message: outcome.detail }]));
    case 'unknown-station':
    case 'bad-topic':
      throw new ProblemError(httpProblem(404, outcome.detail));
    case 'no-recipe':
      throw new ProblemError({
        type: problemType('no-recipe'),
        title: 'No active recipe',
        status: 422,
        detail: `${outcome.detail}: activate one for this station and SKU first`,
      });
    case 'recipe-mismatch':
      throw new ProblemError({
        type: problemType('recipe-mismatch'),
        title: 'Not the order the station runs',
        status: 409,
        detail: outcome.detail,
      });
    case 'model':
      throw new ProblemError({
        type: problemType('model-unavailable'),
        title: 'Model unavailable',
        status: 503,
        detail: outcome.detail,
      });
  }
}

export async function openFrameHttp(opts: FrameHttpOptions): Promise<FrameHttpServer> {
  const { host, port, bodyLimitBytes } = opts.config.vision.http;
  const app: FastifyInstance = Fastify({
    ...fastifyLogging(opts.httpLogger),
    ...problemServerOptions,
    bodyLimit: bodyLimitBytes,
  });
  recordRoutes(app);
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  registerProblemHandlers(app);
  await registerSecurityHeaders(app);
  enforceRouteAccess(app, { authenticator: opts.authenticator });
  // After the access hooks, so that a station's key has a count of its own (as on the API).
  await registerRateLimit(app, opts.config.vision.http.rateLimit);
  app.addHook('onError', async (request, _reply, err) => {
    if (err instanceof ProblemError || (err.statusCode ?? 500) < 500) return;
    opts.log.error('one-off image failed', { url: request.url, error: err.message });
  });
  await registerOpenApi(app, {
    ui: false,
    info: {
      title: 'Holdfast inference worker',
      description: 'One-off images, inspected as frames from a station.',
    },
  });
  if (opts.metrics) exposeMetrics(app, opts.metrics);
  if (opts.health) {
    registerHealthRoute(
      app,
      opts.health,
      'PostgreSQL, the MQTT broker, the reject station (line PLC, when configured) and the models.',
    );
  }
  await app.withTypeProvider<ZodTypeProvider>().register(frameRoutes, opts);
  if (opts.deferredFrames) {
    await app
      .withTypeProvider<ZodTypeProvider>()
      .register(deferredFrameRoutes, { deferredFrames: opts.deferredFrames });
  }
  try {
    await app.listen({ host, port });
  } catch (err) {
    await app.close();
    throw err;
  }
  const bound = app.server.address() as AddressInfo;
  return {
    url: `http://${host.includes(':') ? `[${host}]` : host}:${bound.port}`,
    routes: registeredRoutes(app),
    close: () => closeApp(app),
  };
}
