/**
 * bench:inference — frames through the whole inference worker (MQTT → decode/preprocess → batched onnxruntime →
 * decoder → recipe → OPC UA reject write → PostgreSQL ingest with outbox → result on MQTT), against a minimal service
 * loop in the same run: the same frames' bytes, the same decode and preprocessing (infra/vision/preprocess.ts), the
 * same batch size, batching and threads, the model in its own thread as the worker runs it — and nothing else (no
 * broker, no PostgreSQL, no PLC). The ratio pipeline / minimal loop is the price of everything around the model.
 * The bare model (`session.run` over tensors prepared beforehand) is reported beside it. Frames are the generator's
 * held-out seeds (never trained on), so precision and recall here are the model's, measured through the pipeline.
 *
 *   npm run bench:inference -- --frames 2000 --latency-frames 600 --reject-writes 1000
 *
 * Phase 1 (throughput): every frame queued at the broker first, then the worker starts; fps = frames after the first
 * / (last result stored − first result stored). The cameras' publishing is not in the window, the broker delivering
 * to the worker is. CPU over that window by process; the PLC simulator's apart (it stands in for a PLC, a device of
 * its own).
 * Phase 2 (latency): frames at a steady rate of half the measured fps, at least `--latency-frames` and enough
 * defective ones for `--reject-writes` reject writes; p50/p99 frame received → result committed, and fail → reject
 * write acknowledged by the PLC. Fewer writes than asked for fails the run (exit status 1).
 * The minimal loop and the bare model run before and after the pipeline; their rates are the mean of both passes.
 * Prints progress on stderr and one JSON summary line last on stdout.
 */
import { randomUUID } from 'node:crypto';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import mqtt from 'mqtt';
import * as ort from 'onnxruntime-node';
import sharp from 'sharp';
import { parseDurationMs } from '../infra/config/duration';
import { loadConfig } from '../infra/config/load';
import { MqttConnectorConfig } from '../infra/connectors/mqtt/mqtt.connector';
import { parseConnectorSettings, type ConnectorLogger } from '../infra/connectors/define';
import { migrate } from '../infra/db/migrate';
import { createMicroBatcher } from '../infra/inference/micro-batcher';
import { freePort } from '../infra/local/free-port';
import { spawnManaged } from '../infra/local/managed-process';
import { startMosquitto, visionStreamAccounts } from '../infra/local/mqtt-broker';
import { startEmbeddedPostgres } from '../infra/local/postgres';
import { frameImage } from '../infra/simulators/camera/camera.plan';
import type { DefectCandidate, RawPixels } from '../infra/vision/contracts';
import { frameTopic } from '../infra/vision/frame.schema';
import { readManifest, type InferenceItem } from '../infra/vision/onnx/model';
import { loadModelInThread } from '../infra/vision/onnx/threaded-model';
import { preprocessImage, stackBatch } from '../infra/vision/preprocess';
import { saveRecipe } from '../infra/vision/recipe.repository';
import { renderSyntheticFrame } from '../infra/vision/synthetic/part-generator';
import { HELD_OUT_SEED_START } from '../infra/vision/synthetic/seeds';
import { inferenceThreads, startInferenceWorker, type InferenceWorker } from '../workers/inference/inference-worker';
import { runBenchmark } from './harness';
import { openPool } from './pools';
import { cpuSecondsBetween, snapshotCpu } from './process-cpu';
import { percentile } from './stats';

const { values: args } = parseArgs({
  options: {
    frames: { type: 'string', default: process.env.BENCH_FRAMES ?? '2000' },
    'latency-frames': { type: 'string', default: process.env.BENCH_LATENCY_FRAMES ?? '600' },
    /** Reject writes phase 2 must measure at least: it gets as many more frames as it needs defective ones. */
    'reject-writes': { type: 'string', default: process.env.BENCH_REJECT_WRITES ?? '1000' },
    model: { type: 'string', default: 'holdfast-surface' },
    'model-version': { type: 'string', default: '1.0.0' },
    /** onnxruntime intra-op threads for every loop and the worker; default: the worker's own rule. */
    threads: { type: 'string' },
    /** How the frames carry their image: png (compressed, decoded by the worker) or raw (RGB8 pixels, GigE Vision style). */
    format: { type: 'string', default: process.env.BENCH_FORMAT ?? 'png' },
  },
});
if (args.format !== 'png' && args.format !== 'raw') throw new Error(`--format must be png or raw, not ${args.format}`);
const FORMAT: 'png' | 'raw' = args.format;
const FRAMES = Number(args.frames);
const LATENCY_FRAMES = Number(args['latency-frames']);
const REJECT_WRITES = Number(args['reject-writes']);
for (const [name, value] of Object.entries({ frames: FRAMES, 'latency-frames': LATENCY_FRAMES })) {
  if (!(Number.isInteger(value) && value >= 1)) throw new Error(`--${name} must be a whole number of frames`);
}
if (!(Number.isInteger(REJECT_WRITES) && REJECT_WRITES >= 0)) throw new Error('--reject-writes must be a whole number');
const REPO = resolve(__dirname, '..');

const round = (n: number, d = 1) => Math.round(n * 10 ** d) / 10 ** d;
const BENCH_LOGINS = {
  inference: { username: 'bench-inference', password: randomUUID() },
  camera: { username: 'bench-camera', password: randomUUID() },
};
const STATIONS = [
  { site: 'PLANT1', line: 'L1', station: 'S1' },
  { site: 'PLANT1', line: 'L1', station: 'S2' },
  { site: 'PLANT1', line: 'L2', station: 'S1' },
  { site: 'PLANT1', line: 'L3', station: 'S1' },
];
const SKU = 'BRKT-200';
/** Frames phase 2 adds beyond the defective ones it needs: a model miss must not leave it a write short. */
const REJECT_MARGIN = 1.05;

interface PreparedFrame {
  frameId: string;
  topic: string;
  payload: string;
  image: Buffer | RawPixels;
  defect: boolean;
}

async function prepareFrame(seed: number, index: number, prefix: string, tag: string): Promise<PreparedFrame> {
  const synthetic = renderSyntheticFrame({ seed });
  const image = await frameImage(synthetic, FORMAT);
  const { width, height, rgb } = synthetic;
  const st = STATIONS[index % STATIONS.length]!;
  const frameId = `${tag}-${seed}`;
  return {
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
  };
}

/** `n` frames from `firstSeed` on, and then more until `defects` of them are defective (by the generator's truth). */
async function prepareFrames(
  n: number,
  firstSeed: number,
  prefix: string,
  tag: string,
  defects = 0,
): Promise<PreparedFrame[]> {
  const frames: PreparedFrame[] = [];
  let defective = 0;
  for (let i = 0; frames.length < n || defective < defects; i++) {
    const frame = await prepareFrame(firstSeed + i, i, prefix, tag);
    if (frame.defect) defective += 1;
    frames.push(frame);
  }
  return frames;
}

runBenchmark('inference', async (bench) => {
  const { say } = bench;
  const quiet: ConnectorLogger = { info: () => undefined, warn: () => undefined, error: (m) => say(m) };
  const config = loadConfig();
  const maxInFlight = parseConnectorSettings(MqttConnectorConfig, config, config.vision.broker!).maxInFlight;
  const { batchSize } = config.vision.inference;
  if (args.threads) config.vision.inference.intraOpThreads = Number(args.threads);
  const threads = inferenceThreads(config);
  const work = mkdtempSync(join(tmpdir(), 'holdfast-bench-inference-'));
  chmodSync(work, 0o711);
  bench.onCleanUp('work directory', async () => rmSync(work, { recursive: true, force: true }));

  say('starting PostgreSQL, Mosquitto and the line PLC simulator');
  const pg = await startEmbeddedPostgres({ dataDir: join(work, 'pg') });
  bench.onCleanUp('PostgreSQL', pg.stop);
  const db = openPool(pg.url, { max: 4 });
  bench.onCleanUp('database connections', () => db.close());
  const pool = db.pool;
  await migrate(pool);
  // The broker's window per client sized to the worker's (the broker connector's maxInFlight), as a deployment sets it:
  // Mosquitto's default of 20 unacknowledged frames would hold the pipeline to 20 frames between delivery and commit.
  const broker = await startMosquitto({
    port: await freePort(),
    dataDir: join(work, 'mosquitto'),
    maxInflightMessages: maxInFlight,
    // As npm start: the worker and a camera log in; '+' for the topic prefix, chosen below.
    access: {
      accounts: visionStreamAccounts({
        prefix: '+',
        inference: BENCH_LOGINS.inference,
        cameras: [{ ...BENCH_LOGINS.camera, stations: STATIONS }],
      }),
    },
  });
  bench.onCleanUp('Mosquitto', () => broker.stop());
  const plcPort = await freePort();
  let plcReady: () => void = () => undefined;
  const plcUp = new Promise<void>((r) => (plcReady = r));
  const plc = spawnManaged({
    name: 'line-plc',
    command: process.execPath,
    args: ['--import', 'tsx', join(REPO, 'infra/simulators/line-plc/main.ts')],
    cwd: REPO,
    env: {
      ...process.env,
      LINE_PLC_PORT: String(plcPort),
      LINE_PLC_DATA_DIR: join(work, 'plc'),
      // The worker's reject station PKI (dataDir: work): the simulator and it trust each other, as under npm start.
      LINE_PLC_TRUSTED_CLIENT_PKI_DIRS: join(work, 'opcua-pki'),
    },
    onLine: (line) => line.includes('line-plc ready') && plcReady(),
  });
  bench.onCleanUp('line PLC simulator', async () => void (await plc.stop({ signal: 'SIGTERM' })));
  await Promise.race([
    plcUp,
    plc.exited.then((exit) => {
      throw new Error(`line-plc exited before it was ready (${JSON.stringify(exit)}):\n${plc.outputTail()}`);
    }),
  ]);

  const prefix = `bench${randomUUID().slice(0, 6)}`;
  say(`rendering held-out frames (seeds from ${HELD_OUT_SEED_START})`);
  const throughputFrames = await prepareFrames(FRAMES, HELD_OUT_SEED_START, prefix, 'tp');
  const latencyFrames = await prepareFrames(
    LATENCY_FRAMES,
    HELD_OUT_SEED_START + FRAMES,
    prefix,
    'lat',
    Math.ceil(REJECT_WRITES * REJECT_MARGIN),
  );
  say(`${throughputFrames.length} throughput frames, ${latencyFrames.length} latency frames`);

  const manifestPath = join(REPO, config.vision.modelsDir, args.model, 'manifest.json');
  const manifest = await readManifest(manifestPath);
  const [, c, h, w] = manifest.input.shape;

  // Bare model: `session.run` on this thread, same batch size and threads, over tensors prepared beforehand.
  const session = await ort.InferenceSession.create(join(REPO, config.vision.modelsDir, args.model, manifest.file), {
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
  });
  bench.onCleanUp('bare session', () => session.release());
  const batches: ort.Tensor[] = [];
  for (let i = 0; i < throughputFrames.length; i += batchSize) {
    const chunk = throughputFrames.slice(i, i + batchSize);
    const items = await Promise.all(chunk.map(async (f) => (await preprocessImage(f.image, manifest.input)).tensor));
    batches.push(new ort.Tensor('float32', stackBatch(items), [items.length, c, h, w]));
  }
  for (const b of batches.slice(0, 3)) await session.run({ [manifest.input.name]: b }); // warm-up
  const bareRun = async (when: string) => {
    const start = performance.now();
    for (const b of batches) await session.run({ [manifest.input.name]: b });
    const fps = FRAMES / ((performance.now() - start) / 1000);
    say(`bare session.run ${when}: ${round(fps)} frames/s (batch ${batchSize}, ${threads} intra-op threads)`);
    return fps;
  };

  // Minimal service loop: the frames' bytes → preprocessImage → the worker's batching (same batch size, wait and
  // batches in flight, as many frames in flight as the worker takes from the broker) → the model in its own thread,
  // loaded as the worker loads it. No broker, database, recipe or PLC.
  const model = await loadModelInThread(manifestPath, { intraOpNumThreads: threads });
  bench.onCleanUp('model thread', () => model.close());
  const minimalRun = async (when: string) => {
    const batcher = createMicroBatcher<InferenceItem, DefectCandidate[]>({
      maxSize: batchSize,
      maxWaitMs: parseDurationMs(config.vision.inference.maxBatchWait),
      maxConcurrent: 2,
      run: (items) => model.infer(items),
    });
    const cpuBefore = snapshotCpu();
    const start = performance.now();
    let next = 0;
    await Promise.all(
      Array.from({ length: maxInFlight }, async () => {
        while (next < throughputFrames.length) {
          const frame = throughputFrames[next++]!;
          const pre = await preprocessImage(frame.image, manifest.input);
          await batcher.submit({
            tensor: pre.tensor,
            geometry: { sourceWidth: pre.sourceWidth, sourceHeight: pre.sourceHeight },
          });
        }
      }),
    );
    const seconds = (performance.now() - start) / 1000;
    const { totalS } = cpuSecondsBetween(cpuBefore, snapshotCpu());
    const fps = FRAMES / seconds;
    say(`minimal service loop ${when}: ${round(fps)} frames/s`);
    return { fps, cpuMsPerFrame: (totalS * 1000) / FRAMES };
  };
  await minimalRun('(warm-up)');
  const bareFpsBefore = await bareRun('before the pipeline');
  const minimalBefore = await minimalRun('before the pipeline');

  // The worker, as `npm start` runs it, in this process.
  const benchConfig = structuredClone(config);
  benchConfig.vision.topicPrefix = prefix;
  const plcName = benchConfig.vision.rejectStation!;
  benchConfig.connectors[plcName] = {
    ...benchConfig.connectors[plcName]!,
    endpointUrl: `opc.tcp://127.0.0.1:${plcPort}`,
  };
  const brokerName = benchConfig.vision.broker!;
  benchConfig.connectors[brokerName] = { ...benchConfig.connectors[brokerName]!, ...BENCH_LOGINS.inference };
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
  const publisher = await mqtt.connectAsync(broker.url, {
    clientId: `bench-pub-${prefix}`,
    clean: true,
    ...BENCH_LOGINS.camera,
  });
  bench.onCleanUp('MQTT publisher', () => publisher.endAsync());

  /** Until `worker` has stored `n` more results than when this is called (or than `from`); counted in process. */
  const waitStored = async (worker: InferenceWorker, n: number, from = worker.pipeline.stats().stored) => {
    const target = from + n;
    while (worker.pipeline.stats().stored < target) await new Promise((r) => setTimeout(r, 20));
  };

  // Warm-up outside both measurements; it also creates the worker's persistent session at the broker.
  const warming = await startWorker();
  bench.onCleanUp('warm-up worker', () => warming.close());
  const warm = await prepareFrames(16, HELD_OUT_SEED_START + FRAMES + latencyFrames.length, prefix, 'warm');
  const warmed = waitStored(warming, warm.length);
  await Promise.all(warm.map((f) => publisher.publishAsync(f.topic, f.payload, { qos: 1 })));
  await warmed;
  await warming.close();

  // Phase 1: the frames wait at the broker for the worker's session (as after a worker restart), so the cameras'
  // own publishing cost stays out of the window. Steady state is timed from the worker's first stored result to its
  // last, as the loops above are timed once their model exists; the worker's start (model thread and session, broker,
  // PLC and database connections) is reported on its own, and the rate with it included too.
  say(`phase 1: ${FRAMES} frames queued at the broker, then the worker starts`);
  await Promise.all(throughputFrames.map((f) => publisher.publishAsync(f.topic, f.payload, { qos: 1 })));
  const tpStart = performance.now();
  const worker = await startWorker();
  bench.onCleanUp('worker', () => worker.close());
  const workerStartMs = performance.now() - tpStart;
  while (worker.pipeline.stats().stored < 1) await new Promise((r) => setTimeout(r, 1));
  const firstStored = performance.now();
  const storedAtFirst = worker.pipeline.stats().stored;
  const cpuBefore = snapshotCpu();
  await waitStored(worker, FRAMES, 0); // a new worker: it may have stored some before this line runs
  const tpEnd = performance.now();
  // The steady state's CPU, every process of the run: this one (the worker and its model thread), the PLC
  // simulator, Mosquitto, PostgreSQL. The PLC simulator stands in for a PLC with a CPU of its own: reported apart.
  const cpu = cpuSecondsBetween(cpuBefore, snapshotCpu());
  const plcCpuS = cpu.byRole['line-plc'] ?? 0;
  const steadyFrames = FRAMES - storedAtFirst;
  const fps = steadyFrames / ((tpEnd - firstStored) / 1000);
  const fpsWithStart = FRAMES / ((tpEnd - tpStart) / 1000);
  say(
    `pipeline: ${round(fps)} frames/s steady, ${round(fpsWithStart)} with the worker's start (${round(workerStartMs)} ms)`,
  );

  const latencyRate = Math.max(1, Math.floor(fps / 2));
  say(`phase 2: ${latencyFrames.length} frames at ${latencyRate}/s`);
  const before = worker.pipeline.stats();
  const frameSamplesBefore = before.frameLatencyMs.length;
  const rejectSamplesBefore = before.rejectLatencyMs.length;
  const latencyStored = waitStored(worker, latencyFrames.length);
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

  // The host's speed drifts over a run (other tenants, clocks): both loops again, and the ratios against the means.
  const minimalAfter = await minimalRun('after the pipeline');
  const bareFpsAfter = await bareRun('after the pipeline');
  const minimalFps = (minimalBefore.fps + minimalAfter.fps) / 2;
  const bareFps = (bareFpsBefore + bareFpsAfter) / 2;
  say(`pipeline / minimal service loop: ${round(fps / minimalFps, 3)}`);
  const frameLatency = after.frameLatencyMs.slice(frameSamplesBefore).sort((a, b) => a - b);
  const rejectLatency = after.rejectLatencyMs.slice(rejectSamplesBefore).sort((a, b) => a - b);
  const rejectShort = rejectLatency.length < REJECT_WRITES;
  if (rejectShort) say(`FAILED: ${rejectLatency.length} reject writes measured, ${REJECT_WRITES} asked for`);

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
    ok: !rejectShort,
    model: `${args.model}@${args['model-version']}`,
    frames: FRAMES,
    latency_frames: latencyFrames.length,
    frame_format: FORMAT,
    batch: batchSize,
    intra_op_threads: threads,
    sharp: { concurrency: sharp.concurrency(), cache: sharp.cache() },
    fps: round(fps),
    minimal_fps: round(minimalFps),
    // The bar's ratio: the pipeline against the minimal service loop.
    ratio: round(fps / minimalFps, 3),
    minimal_fps_before: round(minimalBefore.fps),
    minimal_fps_after: round(minimalAfter.fps),
    minimal_cpu_ms_per_frame: round((minimalBefore.cpuMsPerFrame + minimalAfter.cpuMsPerFrame) / 2, 2),
    bare_fps: round(bareFps),
    ratio_to_bare: round(fps / bareFps, 3),
    bare_fps_before: round(bareFpsBefore),
    bare_fps_after: round(bareFpsAfter),
    fps_with_start: round(fpsWithStart),
    // Everything but the PLC simulator: this process (the worker), Mosquitto, PostgreSQL.
    cpu_ms_per_frame: round(((cpu.totalS - plcCpuS) * 1000) / steadyFrames, 2),
    plc_sim_cpu_ms_per_frame: round((plcCpuS * 1000) / steadyFrames, 2),
    cpu_cores: round((cpu.totalS - plcCpuS) / ((tpEnd - firstStored) / 1000), 2),
    cpu_s_by_process: cpu.byProcess,
    worker_start_ms: round(workerStartMs),
    latency_rate: latencyRate,
    p50_ms: round(percentile(frameLatency, 50)),
    p99_ms: round(percentile(frameLatency, 99)),
    reject_p50_ms: round(percentile(rejectLatency, 50), 2),
    reject_p99_ms: round(percentile(rejectLatency, 99), 2),
    reject_max_ms: round(rejectLatency.at(-1) ?? NaN, 2),
    reject_writes: rejectLatency.length,
    reject_writes_wanted: REJECT_WRITES,
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
  return { summary, exitCode: rejectShort ? 1 : 0 };
});
