/**
 * The camera simulator: one simulated camera per station publishes synthetic part images at a set rate over MQTT
 * (QoS 1, `<prefix>/<site>/<line>/<station>/frames`), for parts of the demo plant's lots and work orders, and keeps
 * what each frame really shows in its own PostgreSQL schema, readable over HTTP for checking the worker's verdicts.
 */
import Fastify, { type FastifyError, type FastifyInstance } from 'fastify';
import { serializerCompiler, validatorCompiler, type ZodTypeProvider } from 'fastify-type-provider-zod';
import type { Pool } from 'pg';
import { z } from 'zod';
import type { ConnectorLogger } from '../../connectors/define';
import { createMqttClient, endClient, firstConnect, type MqttAuth } from '../../connectors/mqtt/mqtt.client';
import { DEFECT_CLASSES } from '../../vision/contracts';
import { DEFAULT_TOPIC_PREFIX, FrameId } from '../../vision/frame.schema';
import {
  planFrame,
  renderPlannedFrame,
  type CameraFrameFormat,
  type CameraStation,
  type LineOrder,
  type LineOrderRun,
  type PlanOptions,
} from './camera.plan';
import { createCameraTruthStore, type CameraTruthStore, type FrameTruth } from './camera.store';
import { fastifyLogging } from '../../observability/fastify-logging';
import type { Logger } from '../../observability/logger';

export interface CameraSimulatorOptions {
  pool: Pool;
  mqttUrl: string;
  /** The broker login (a camera account: it may publish only its stations' frames). */
  mqttAuth?: MqttAuth;
  stations: CameraStation[];
  /** Frames per second, per station. */
  ratePerStation: number;
  /** Share of frames with a defect, 0..1. */
  defectRate: number;
  /** Same seed, same frames. Default 1. */
  seed?: number;
  /** PostgreSQL schema for the ground truth. Default camera_sim. */
  schema?: string;
  prefix?: string;
  clientId?: string;
  format?: CameraFrameFormat;
  framesPerLot?: number;
  /** Stop each station after this many frames (tests, finite runs). Default: run until stopped. */
  framesPerStation?: number;
  /**
   * Each station shoots frame numbers below this one, then stops: one fixed set of frames, also when the simulator is
   * restarted part-way (it resumes after its last recorded frame). Default: no limit.
   */
  frameLimit?: number;
  log: ConnectorLogger;
}

export interface CameraSimulator {
  store: CameraTruthStore;
  /** Frames the broker has acknowledged, all stations. */
  published(): number;
  /**
   * Switches what the line runs (a changeover on the line): every station of the line shoots `order`'s parts from the
   * returned frame number on, the next frame of the station furthest ahead (so that each part still passes the
   * stations in turn). Persisted: a restart goes on with it. Rejects for a line the simulator has no camera on.
   */
  setLineOrder(line: { site: string; line: string }, order: LineOrder): Promise<LineOrderRun>;
  /** The order the line runs now (or from its next frame): the last switch, else the demo order's current lot. */
  lineOrder(line: { site: string; line: string }): LineOrderRun | undefined;
  /**
   * Resolves when every station has published `framesPerStation` frames (or reached `frameLimit`), or after stop();
   * rejects when a station's camera failed (PostgreSQL gone, say).
   */
  finished: Promise<void>;
  /**
   * Stops shooting: a frame in the middle of publishing gets up to 5 s for the broker's PUBACK (a frame the broker
   * never acknowledged stays unpublished in the truth table). Then disconnects.
   */
  stop(): Promise<void>;
}

export const DEFAULT_CAMERA_SCHEMA = 'camera_sim';

/** Creates its schema, connects to the broker and starts one publishing loop per station. */
export async function startCameraSimulator(opts: CameraSimulatorOptions): Promise<CameraSimulator> {
  if (!(opts.ratePerStation > 0 && opts.ratePerStation <= 1000)) {
    throw new Error(
      `camera rate must be more than 0 and at most 1000 frames/s per station, got ${opts.ratePerStation}`,
    );
  }
  if (opts.stations.length === 0) throw new Error('the camera simulator needs at least one station');
  const seed = opts.seed ?? 1;
  const prefix = opts.prefix ?? DEFAULT_TOPIC_PREFIX;
  const plan: PlanOptions = { seed, defectRate: opts.defectRate, framesPerLot: opts.framesPerLot };
  // Fails fast on a bad defect rate or an id that cannot be a frame id, before anything connects.
  for (const station of opts.stations) planFrame(station, 0, plan);

  const store = createCameraTruthStore(opts.pool, opts.schema ?? DEFAULT_CAMERA_SCHEMA);
  await store.migrate();

  const clientId = opts.clientId ?? `holdfast-camera-sim-${process.pid}`;
  // Clean session: a camera has nothing to resume; its unacknowledged frames are resent by MQTT.js after a
  // reconnect from its outgoing store (MQTT 3.1.1 §4.4).
  const client = createMqttClient({
    url: opts.mqttUrl,
    auth: opts.mqttAuth,
    clientId,
    clean: true,
    role: 'camera simulator',
    log: opts.log,
  });
  try {
    await firstConnect(client, 30_000, `camera simulator ${clientId}`);
  } catch (err) {
    await endClient(client, { force: true });
    throw err;
  }

  const lineKey = (l: { site: string; line: string }) => `${l.site}/${l.line}`;
  const stationKey = (st: CameraStation) => `${st.site}/${st.line}/${st.station}`;
  // Per line, the orders it was switched to; per station, the next frame number it will plan.
  const runs = await store.lineOrders(seed);
  const nextPlanned = new Map<string, number>();

  let stopping = false;
  let published = 0;
  const wakers = new Set<() => void>();
  const intervalMs = 1000 / opts.ratePerStation;

  const pause = (ms: number) =>
    new Promise<void>((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        wakers.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, Math.max(0, ms));
      wakers.add(wake);
    });

  async function shoot(station: CameraStation): Promise<void> {
    let sequence = await store.nextSequence(seed, station);
    const first = sequence;
    nextPlanned.set(stationKey(station), sequence);
    const meta = { site: station.site, line: station.line, station: station.station };
    // The ready line names every station; one line each is detail.
    opts.log.debug?.('camera started', { ...meta, firstFrame: sequence, ratePerSecond: opts.ratePerStation });
    let due = performance.now();
    let behindLogged = false;
    const more = () =>
      (opts.framesPerStation === undefined || sequence - first < opts.framesPerStation) &&
      (opts.frameLimit === undefined || sequence < opts.frameLimit);
    while (!stopping && more()) {
      await pause(due - performance.now());
      if (stopping) break;
      // Planned and marked in one synchronous step, so that a line switch never lands on a frame already planned.
      const planned = planFrame(station, sequence, plan, runs.get(lineKey(station)));
      nextPlanned.set(stationKey(station), sequence + 1);
      const frame = await renderPlannedFrame(planned, { prefix, format: opts.format });
      await store.recordPlanned(frame, seed);
      // Resolves on the broker's PUBACK; while the broker is away MQTT.js holds the frame and this waits.
      await client.publishAsync(frame.topic, frame.payload, { qos: 1 });
      await store.markPublished(frame.plan.frameId);
      published += 1;
      sequence += 1;
      due += intervalMs;
      const lagMs = performance.now() - due;
      if (lagMs > 1_000) {
        // A camera is triggered per part; a slow one shoots fewer parts, it does not queue them.
        if (!behindLogged) opts.log.warn('camera cannot keep its rate; frames are spaced out', { ...meta, lagMs });
        behindLogged = true;
        due = performance.now();
      }
    }
  }

  const loops = opts.stations.map((station) =>
    shoot(station).catch((err: unknown) => {
      opts.log.error('camera stopped on an error', {
        site: station.site,
        line: station.line,
        station: station.station,
        error: err instanceof Error ? err.message : String(err),
      });
      throw err;
    }),
  );
  const finished = Promise.all(loops).then(() => undefined);
  // Observed here so an error is not unhandled; callers that await `finished` still see it.
  finished.catch(() => undefined);

  let stopped: Promise<void> | undefined;
  return {
    store,
    published: () => published,
    async setLineOrder(line, order) {
      const onLine = opts.stations.filter((st) => st.site === line.site && st.line === line.line);
      if (onLine.length === 0) throw new Error(`no camera on line ${lineKey(line)}`);
      const fromSequence = Math.max(...onLine.map((st) => nextPlanned.get(stationKey(st)) ?? 0));
      const run: LineOrderRun = { ...order, fromSequence };
      const list = runs.get(lineKey(line)) ?? [];
      const before = [...list];
      // Two switches before the next frame: the later one wins.
      const kept = list.filter((r) => r.fromSequence < fromSequence);
      runs.set(lineKey(line), [...kept, run]);
      try {
        await store.recordLineOrder(seed, line, run);
      } catch (err) {
        runs.set(lineKey(line), before);
        throw err;
      }
      opts.log.info('line switched to another order', { ...line, ...run });
      return run;
    },
    lineOrder(line) {
      const list = runs.get(lineKey(line));
      if (list && list.length > 0) return list[list.length - 1];
      const station = opts.stations.find((st) => st.site === line.site && st.line === line.line);
      if (!station) return undefined;
      const next = nextPlanned.get(stationKey(station)) ?? 0;
      const p = planFrame(station, next, plan);
      return { workOrder: p.workOrder, sku: p.sku, lotId: p.lotId, fromSequence: 0 };
    },
    finished,
    stop() {
      stopped ??= (async () => {
        stopping = true;
        for (const wake of wakers) wake();
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([
          Promise.allSettled(loops),
          new Promise((resolve) => {
            timer = setTimeout(resolve, 5_000);
          }),
        ]);
        clearTimeout(timer);
        await endClient(client, { force: false });
      })();
      return stopped;
    },
  };
}

const TruthSchema = z.object({
  frameId: z.string(),
  site: z.string(),
  line: z.string(),
  station: z.string(),
  partId: z.string(),
  lotId: z.string(),
  workOrder: z.string(),
  sku: z.string(),
  class: z.enum(['good', ...DEFECT_CLASSES]),
  box: z.object({ x: z.number(), y: z.number(), width: z.number(), height: z.number() }).optional(),
  imageSeed: z.number(),
  capturedAt: z.string(),
  publishedAt: z.string().optional(),
}) satisfies z.ZodType<FrameTruth>;

const TruthQuery = z
  .strictObject({
    since: z.iso.datetime({ offset: true }).optional(),
    /** With `since`: the last frameId already read at that instant (the `next` cursor of the previous page). */
    after: FrameId.optional(),
    limit: z.coerce.number().int().min(1).max(1000).default(100),
  })
  .refine((q) => q.after === undefined || q.since !== undefined, { error: 'after needs since', path: ['after'] });

const TruthPage = z.object({
  items: z.array(TruthSchema),
  /** Present when the page is full: the query for the next page. */
  next: z.object({ since: z.string(), after: z.string() }).optional(),
});

const LineParams = z.object({ site: z.string().min(1), line: z.string().min(1) });
const LineOrderBody = z.strictObject({
  workOrder: z.string().min(1).max(64),
  sku: z.string().min(1).max(64),
  lotId: z.string().min(1).max(64),
});
const LineOrderRunSchema = LineOrderBody.extend({
  site: z.string(),
  line: z.string(),
  fromSequence: z.number().int().nonnegative(),
});

/**
 * The admin API on 127.0.0.1 (CAMERA_SIM_PORT): GET /health, GET /truth?since=&after=&limit=, GET /truth/{frameId},
 * GET /counts, and with `lines` GET and PUT /lines/{site}/{line}/order. The caller listens and closes.
 */
export function buildCameraAdminApp(
  store: CameraTruthStore,
  logger?: Logger,
  lines?: Pick<CameraSimulator, 'setLineOrder' | 'lineOrder'>,
): FastifyInstance {
  const app = Fastify(fastifyLogging(logger));
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  app.setErrorHandler((err: FastifyError, _req, reply) => {
    const status = err.statusCode !== undefined && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 500;
    return reply.code(status).send({ error: status === 500 ? 'internal error' : err.message });
  });
  const r = app.withTypeProvider<ZodTypeProvider>();

  r.get('/health', async () => ({ status: 'ok' as const }));

  r.get('/truth', { schema: { querystring: TruthQuery, response: { 200: TruthPage } } }, async (req) => {
    const items = await store.listPublished(req.query);
    const last = items.length === req.query.limit ? items[items.length - 1] : undefined;
    return { items, ...(last ? { next: { since: last.publishedAt!, after: last.frameId } } : {}) };
  });

  r.get(
    '/truth/:frameId',
    {
      schema: {
        params: z.object({ frameId: FrameId }),
        response: { 200: TruthSchema, 404: z.object({ error: z.string() }) },
      },
    },
    async (req, reply) => {
      const truth = await store.get(req.params.frameId);
      if (!truth) return reply.code(404).send({ error: `no frame ${req.params.frameId}` });
      return truth;
    },
  );

  if (lines) {
    const NotFound = z.object({ error: z.string() });
    r.get(
      '/lines/:site/:line/order',
      { schema: { params: LineParams, response: { 200: LineOrderRunSchema, 404: NotFound } } },
      async (req, reply) => {
        const run = lines.lineOrder(req.params);
        if (!run) return reply.code(404).send({ error: `no camera on line ${req.params.site}/${req.params.line}` });
        return { ...req.params, ...run };
      },
    );
    // A simulator's control, on 127.0.0.1 only, as the rest of this API: what the line runs from its next part on.
    r.put(
      '/lines/:site/:line/order',
      { schema: { params: LineParams, body: LineOrderBody, response: { 200: LineOrderRunSchema, 404: NotFound } } },
      async (req, reply) => {
        if (!lines.lineOrder(req.params)) {
          return reply.code(404).send({ error: `no camera on line ${req.params.site}/${req.params.line}` });
        }
        const run = await lines.setLineOrder(req.params, req.body);
        return { ...req.params, ...run };
      },
    );
  }

  r.get(
    '/counts',
    {
      schema: {
        response: {
          200: z.object({ published: z.number(), unpublished: z.number(), byClass: z.record(z.string(), z.number()) }),
        },
      },
    },
    async () => store.counts(),
  );

  return app;
}
