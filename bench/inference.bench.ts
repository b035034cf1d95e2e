/**
 * bench:inference — frames through the whole inference worker (MQTT → decode/preprocess → batched onnxruntime →
 * decoder → recipe → OPC UA reject write → PostgreSQL ingest with outbox → result on MQTT), against a bare
 * `session.run` loop over the same model, batch size and threads in the same run. The ratio is the pipeline's
 * overhead. Frames are the generator's held-out seeds (never trained on), so precision and recall here are the
 * model's, measured through the running pipeline.
 *
 *   npm run bench:inference -- --frames 2000 --latency-frames 600
 *
 * Phase 1 (throughput): every frame queued at the broker first, then the worker starts; fps = frames after the first
 * / (last result stored − first result stored). The cameras' publishing is not in the window, the broker delivering
 * to the worker is.
 * Phase 2 (latency): frames at a steady rate of half the measured fps; p50/p99 frame received → result committed,
 * and fail → reject write acknowledged by the PLC.
 * Prints progress on stderr and one JSON summary line last on stdout.
 */
import { randomUUID } from 'node:crypto';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import mqtt from 'mqtt';
import * as ort from 'onnxruntime-node';
import { loadConfig } from '../infra/config/load';
import { parseConnectorSettings, type ConnectorLogger } from '../infra/connectors/define';
import { MqttConnectorConfig } from '../infra/connectors/mqtt/mqtt.connector';
import { migrate } from '../infra/db/migrate';
import { createPool } from '../infra/db/pool';
import { spawnManaged } from '../infra/local/managed-process';
import { startMosquitto } from '../infra/local/mqtt-broker';
import { startEmbeddedPostgres } from '../infra/local/postgres';
import { frameTopic } from '../infra/vision/frame.schema';
import type { RawPixels } from '../infra/vision/contracts';
import { readManifest } from '../infra/vision/onnx/model';
import { preprocessImage, stackBatch } from '../infra/vision/preprocess';
import { saveRecipe } from '../infra/vision/recipe.repository';
import { renderSyntheticFrame } from '../infra/vision/synthetic/part-generator';
import { frameImage } from '../infra/simulators/camera/camera.plan';
import { HELD_OUT_SEED_START } from '../infra/vision/synthetic/seeds';
import { inferenceThreads, startInferenceWorker, type InferenceWorker } from '../workers/inference/inference-worker';
import { freePort } from '../infra/local/free-port';
import { cpuSecondsBetween, snapshotCpu } from './process-cpu';
import { percentile } from './stats';
import { cleanUpOnInterrupt } from './interrupt';

const { values: args } = parseArgs({
  options: {
    frames: { type: 'string', default: process.env.BENCH_FRAMES ?? '2000' },
    'latency-frames': { type: 'string', default: process.env.BENCH_LATENCY_FRAMES ?? '600' },
    model: { type: 'string', default: 'holdfast-surface' },
    'model-version': { type: 'string', default: '1.0.0' },
    /** onnxruntime intra-op threads for both the bare loop and the worker; default: the worker's own rule. */
    threads: { type: 'string' },
    /** How the frames carry their image: png (compressed, decoded by the worker) or raw (RGB8 pixels, GigE Vision style). */
    format: { type: 'string', default: process.env.BENCH_FORMAT ?? 'png' },
  },
});
if (args.format !== 'png' && args.format !== 'raw') throw new Error(`--format must be png or raw, not ${args.format}`);
const FORMAT: 'png' | 'raw' = args.format;
const FRAMES = Number(args.frames);
const LATENCY_FRAMES = Number(args['latency-frames']);
const say = (msg: string) => process.stderr.write(`[bench:inference] ${msg}\n`);
const quiet: ConnectorLogger = { info: () => undefined, warn: () => undefined, error: (m) => say(m) };
const REPO = resolve(__dirname, '..');

const round = (n: number, d = 1) => Math.round(n * 10 ** d) / 10 ** d;
const STATIONS = [
  { site: 'PLANT1', line: 'L1', station: 'S1' },
  { site: 'PLANT1', line: 'L1', station: 'S2' },
  { site: 'PLANT1', line: 'L2', station: 'S1' },
  { site: 'PLANT1', line: 'L3', station: 'S1' },
];
const SKU = 'BRKT-200';

interface PreparedFrame {
  frameId: string;
  topic: string;
  payload: string;
  image: Buffer | RawPixels;
  defect: boolean;
}

async function prepareFrames(n: number, firstSeed: number, prefix: string, tag: string): Promise<PreparedFrame[]> {
  const frames: PreparedFrame[] = [];
  for (let i = 0; i < n; i++) {
    const seed = firstSeed + i;
    const synthetic = renderSyntheticFrame({ seed });
    const image = await frameImage(synthetic, FORMAT);
    const { width, height, rgb } = synthetic;
    const st = STATIONS[i % STATIONS.length]!;
    const frameId = `${tag}-${seed}`;
    frames.push({
      frameId,
      topic: frameTopic(prefix, st.site, st.line, st.station),
      image: image.encoding === 'raw' ? { pixels: rgb, width, height, channels: 3 } : Buffer.from(image.data, 'base64'),
      defect: synthetic.truth.class !== 'good',
      payload: JSON.stringify({
        frameId,
        partId: `P-${seed}`,
        lotId: `LOT-${tag}`,
        workOrder: '1000100',
        sku: SKU,
        capturedAt: new Date().toISOString(),
        image,
      }),
    });
  }
  return frames;
}

async function main(): Promise<void> {
  const config = loadConfig();
  const { batchSize } = config.vision.inference;
  if (args.threads) config.vision.inference.intraOpThreads = Number(args.threads);
  const threads = inferenceThreads(config);
  const work = mkdtempSync(join(tmpdir(), 'holdfast-bench-inference-'));
  chmodSync(work, 0o711);
  const cleanups: (() => Promise<void>)[] = [];
  const cleanUp = async () => {
    for (const c of cleanups.splice(0).reverse()) await c().catch((err: Error) => say(`cleanup: ${err.message}`));
    rmSync(work, { recursive: true, force: true });
  };
  const stopHandling = cleanUpOnInterrupt(cleanUp, say);
  try {
    say('starting PostgreSQL, Mosquitto and the line PLC simulator');
    const pg = await startEmbeddedPostgres({ dataDir: join(work, 'pg') });
    cleanups.push(pg.stop);
    const pool = createPool(pg.url, { max: 4 });
    cleanups.push(() => pool.end());
    await migrate(pool);
    // The broker's window per client sized to the worker's (the broker connector's maxInFlight), as a vision deployment sets it:
    // Mosquitto's default of 20 unacknowledged frames would hold the pipeline to 20 frames between delivery and commit.
    const broker = await startMosquitto({
      port: await freePort(),
      dataDir: join(work, 'mosquitto'),
      maxInflightMessages: parseConnectorSettings(MqttConnectorConfig, config, config.vision.broker!).maxInFlight,
    });
    cleanups.push(() => broker.stop());
    const plcPort = await freePort();
    let plcReady: () => void = () => undefined;
    const plcUp = new Promise<void>((r) => (plcReady = r));
    const plc = spawnManaged({
      name: 'line-plc',
      command: process.execPath,
      args: ['--import', 'tsx', join(REPO, 'infra/simulators/line-plc/main.ts')],
      cwd: REPO,
      env: { ...process.env, LINE_PLC_PORT: String(plcPort), LINE_PLC_DATA_DIR: join(work, 'plc') },
      onLine: (line) => line.includes('line-plc ready') && plcReady(),
    });
    cleanups.push(async () => void (await plc.stop({ signal: 'SIGTERM' })));
    await plcUp;

    const prefix = `bench${randomUUID().slice(0, 6)}`;
    say(`rendering ${FRAMES + LATENCY_FRAMES} held-out frames (seeds from ${HELD_OUT_SEED_START})`);
    const throughputFrames = await prepareFrames(FRAMES, HELD_OUT_SEED_START, prefix, 'tp');
    const latencyFrames = await prepareFrames(LATENCY_FRAMES, HELD_OUT_SEED_START + FRAMES, prefix, 'lat');

    // Baseline: the bare model, same batch size and threads, tensors prepared beforehand (nothing else timed).
    const manifestPath = join(REPO, config.vision.modelsDir, args.model, 'manifest.json');
    const manifest = await readManifest(manifestPath);
    const session = await ort.InferenceSession.create(join(REPO, config.vision.modelsDir, args.model, manifest.file), {
      intraOpNumThreads: threads,
      interOpNumThreads: 1,
      executionMode: 'sequential',
      graphOptimizationLevel: 'all',
    });
    const [, c, h, w] = manifest.input.shape;
    const tensors = await Promise.all(throughputFrames.map((f) => preprocessImage(f.image, manifest.input)));
    const batches: ort.Tensor[] = [];
    for (let i = 0; i < tensors.length; i += batchSize) {
      const items = tensors.slice(i, i + batchSize).map((t) => t.tensor);
      batches.push(new ort.Tensor('float32', stackBatch(items), [items.length, c, h, w]));
    }
    for (const b of batches.slice(0, 3)) await session.run({ [manifest.input.name]: b }); // warm-up
    /** One pass of the bare loop over every throughput frame. Run before and after the pipeline: see `bareFps`. */
    const bareRun = async (when: string) => {
      const bareStart = performance.now();
      for (const b of batches) await session.run({ [manifest.input.name]: b });
      const fps = FRAMES / ((performance.now() - bareStart) / 1000);
      say(`bare session.run ${when}: ${round(fps)} frames/s (batch ${batchSize}, ${threads} intra-op threads)`);
      return fps;
    };
    const bareFpsBefore = await bareRun('before the pipeline');

    // The worker, as `npm start` runs it, in this process.
    const benchConfig = structuredClone(config);
    benchConfig.vision.topicPrefix = prefix;
    const plcName = benchConfig.vision.rejectStation!;
    benchConfig.connectors[plcName] = {
      ...benchConfig.connectors[plcName]!,
      endpointUrl: `opc.tcp://127.0.0.1:${plcPort}`,
    };
    benchConfig.vision.http.port = 0;
    benchConfig.vision.recipes = [];
    for (const st of STATIONS) {
      await saveRecipe(
        pool,
        {
          ...st,
          sku: SKU,
          version: 'bench',
          model: { name: args.model, version: args['model-version'] },
          thresholds: {},
          minDefectAreaPx: 0,
        },
        'bench',
      );
    }
    const startWorker = () =>
      startInferenceWorker({
        config: benchConfig,
        pool,
        mqttUrl: broker.url,
        dataDir: work,
        clientId: `bench-${prefix}`,
        seedRecipes: false,
        log: quiet,
      });
    const publisher = await mqtt.connectAsync(broker.url, { clientId: `bench-pub-${prefix}`, clean: true });
    cleanups.push(() => publisher.endAsync());

    /** Until `worker` has stored `n` more results than when this is called (or than `from`); counted in process. */
    const waitStored = async (worker: InferenceWorker, n: number, from = worker.pipeline.stats().stored) => {
      const target = from + n;
      while (worker.pipeline.stats().stored < target) await new Promise((r) => setTimeout(r, 20));
    };

    // Warm-up outside both measurements; it also creates the worker's persistent session at the broker.
    const warming = await startWorker();
    const warm = await prepareFrames(16, HELD_OUT_SEED_START + FRAMES + LATENCY_FRAMES, prefix, 'warm');
    const warmed = waitStored(warming, warm.length);
    await Promise.all(warm.map((f) => publisher.publishAsync(f.topic, f.payload, { qos: 1 })));
    await warmed;
    await warming.close();

    // Phase 1: the frames wait at the broker for the worker's session (as after a worker restart), so the cameras'
    // own publishing cost stays out of the window. Steady state is timed from the worker's first stored result to its
    // last, as the bare loop is timed after its session exists and has run; the worker's start (model thread and
    // session, broker, PLC and database connections) is reported on its own, and the rate with it included too.
    say(`phase 1: ${FRAMES} frames queued at the broker, then the worker starts`);
    await Promise.all(throughputFrames.map((f) => publisher.publishAsync(f.topic, f.payload, { qos: 1 })));
    const tpStart = performance.now();
    const worker = await startWorker();
    cleanups.push(() => worker.close());
    const workerStartMs = performance.now() - tpStart;
    while (worker.pipeline.stats().stored < 1) await new Promise((r) => setTimeout(r, 1));
    const firstStored = performance.now();
    const storedAtFirst = worker.pipeline.stats().stored;
    const cpuBefore = snapshotCpu();
    await waitStored(worker, FRAMES, 0); // a new worker: it may have stored some before this line runs
    const tpEnd = performance.now();
    // The steady state's CPU, every process of the run: this one (the worker and its model thread), the PLC
    // simulator, Mosquitto, PostgreSQL. Set against the bare loop's ms per frame, it says where the ratio's ceiling is.
    const { totalS: cpuTotalS, byProcess: cpuByProcess } = cpuSecondsBetween(cpuBefore, snapshotCpu());
    const fps = (FRAMES - storedAtFirst) / ((tpEnd - firstStored) / 1000);
    const fpsWithStart = FRAMES / ((tpEnd - tpStart) / 1000);
    say(
      `pipeline: ${round(fps)} frames/s steady, ${round(fpsWithStart)} with the worker's start (${round(workerStartMs)} ms)`,
    );

    const latencyRate = Math.max(1, Math.floor(fps / 2));
    say(`phase 2: ${LATENCY_FRAMES} frames at ${latencyRate}/s`);
    const before = worker.pipeline.stats();
    const frameSamplesBefore = before.frameLatencyMs.length;
    const rejectSamplesBefore = before.rejectLatencyMs.length;
    const latencyStored = waitStored(worker, LATENCY_FRAMES);
    const latStart = performance.now();
    const sent: Promise<unknown>[] = [];
    for (let i = 0; i < latencyFrames.length; i++) {
      const wait = latStart + (i * 1000) / latencyRate - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      sent.push(publisher.publishAsync(latencyFrames[i]!.topic, latencyFrames[i]!.payload, { qos: 1 }));
    }
    await Promise.all(sent);
    await latencyStored;
    const after = worker.pipeline.stats();
    await worker.close();
    // The host's speed drifts over a run (other tenants, clocks): the bare loop again, and the ratio against the mean.
    const bareFpsAfter = await bareRun('after the pipeline');
    await session.release();
    const bareFps = (bareFpsBefore + bareFpsAfter) / 2;
    say(`pipeline / bare: ${round(fps / bareFps, 3)}`);
    const frameLatency = after.frameLatencyMs.slice(frameSamplesBefore).sort((a, b) => a - b);
    const rejectLatency = after.rejectLatencyMs.slice(rejectSamplesBefore).sort((a, b) => a - b);

    // Precision and recall (defect vs good) over every measured frame, against the generator's ground truth.
    const all = [...throughputFrames, ...latencyFrames];
    const truth = new Map(all.map((f) => [f.frameId, f.defect]));
    const rows = (
      await pool.query<{ frame_id: string; result: string }>(
        `SELECT frame_id, result FROM holdfast.inspection WHERE frame_id = ANY($1::text[])`,
        [all.map((f) => f.frameId)],
      )
    ).rows;
    let tp = 0;
    let fp = 0;
    let fn = 0;
    for (const r of rows) {
      const actual = truth.get(r.frame_id)!;
      const predicted = r.result === 'fail';
      if (predicted && actual) tp += 1;
      else if (predicted && !actual) fp += 1;
      else if (!predicted && actual) fn += 1;
    }
    const summary = {
      bench: 'inference',
      model: `${args.model}@${args['model-version']}`,
      frames: FRAMES,
      latency_frames: LATENCY_FRAMES,
      frame_format: FORMAT,
      batch: batchSize,
      intra_op_threads: threads,
      fps: round(fps),
      bare_fps: round(bareFps),
      ratio: round(fps / bareFps, 3),
      bare_fps_before: round(bareFpsBefore),
      bare_fps_after: round(bareFpsAfter),
      fps_with_start: round(fpsWithStart),
      cpu_ms_per_frame: round((cpuTotalS * 1000) / (FRAMES - storedAtFirst), 2),
      cpu_cores: round(cpuTotalS / ((tpEnd - firstStored) / 1000), 2),
      cpu_s_by_process: cpuByProcess,
      worker_start_ms: round(workerStartMs),
      latency_rate: latencyRate,
      p50_ms: round(percentile(frameLatency, 50)),
      p99_ms: round(percentile(frameLatency, 99)),
      reject_p50_ms: round(percentile(rejectLatency, 50), 2),
      reject_p99_ms: round(percentile(rejectLatency, 99), 2),
      reject_writes: rejectLatency.length,
      reject_failures: after.rejectSignalFailures,
      precision: round(tp / (tp + fp), 4),
      recall: round(tp / (tp + fn), 4),
      results: rows.length,
      refused_frames: after.rejectedFrames,
      machine: {
        cpus: cpus().length,
        cpu: cpus()[0]?.model,
        mem_gib: round(totalmem() / 2 ** 30),
        node: process.version,
      },
    };
    process.stdout.write(`${JSON.stringify(summary)}\n`);
  } finally {
    stopHandling();
    await cleanUp();
  }
}

main().catch((err: unknown) => {
  say(`failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  process.exit(1);
});
