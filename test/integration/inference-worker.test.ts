/**
 * The inference worker against real parts: Mosquitto (Debian), a node-opcua line PLC, PostgreSQL, and onnxruntime on a
 * model dropped into a models directory. Frames go in over MQTT; what comes out is read where it lands: inspection and
 * outbox rows, the PLC's reject log, the result topic.
 */
// First: it makes onnxruntime's typed arrays jest's (see shareProcessTypedArrays in test/support/onnx-builder.ts).
import { SPOT_MODEL, spotFrame, writeBrightSpotModel } from '../support/vision-fixtures';
import { createHash, randomUUID } from 'node:crypto';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import sharp from 'sharp';
import type { Pool } from 'pg';
import { loadConfig } from '../../infra/config/load';
import type { HoldfastConfig } from '../../infra/config/schema';
import { startMosquitto, visionStreamAccounts, type MosquittoBroker } from '../../infra/local/mqtt-broker';
import { startLinePlcSimulator, type LinePlcSimulator } from '../../infra/simulators/line-plc/line-plc.simulator';
import { frameTopic, resultTopic } from '../../infra/vision/frame.schema';
import { saveRecipe } from '../../infra/vision/recipe.repository';
import { startInferenceWorker, type InferenceWorker } from '../../workers/inference/inference-worker';
import { inspectionEventId } from '../../infra/inference/inference-pipeline';
import { freePort } from '../../infra/local/free-port';
import { eventually } from '../support/eventually';
import { quietLog } from '../support/quiet-log';
import { testPool } from '../support/test-env';
import { lotCaseWorkflowId } from '../../workflows/contracts';
import { asAdmin, testSigningKey } from '../support/identity';

/** The second model: another manifest (identity, class name) over the same kind of network. */
const BLOB_MODEL = { name: 'blob-finder', version: '2.0', defectClass: 'blob' };
const S1 = { site: 'PLANT1', line: 'L1', station: 'S1' };
const S2 = { site: 'PLANT1', line: 'L1', station: 'S2' };
/** Not in the config: the camera may publish there, the worker must refuse it. */
const UNKNOWN_STATION = { site: 'PLANT1', line: 'L9', station: 'S1' };

let pool: Pool;
let workDir: string;
let broker: MosquittoBroker;
let plc: LinePlcSimulator;
let config: HoldfastConfig;
let publisher: MqttClient;
const workers: InferenceWorker[] = [];
const login = (username: string) => ({ username, password: randomUUID() });
const LOGINS = { inference: login('inference'), camera: login('camera-l1'), observer: login('observer') };
/** Isolates this file's recipes and frames from every other test sharing the database. */
const run = randomUUID().slice(0, 8);
const sku = `SKU-${run}`;
const prefix = `hf${run}`;

beforeAll(async () => {
  pool = testPool();
  workDir = mkdtempSync(join(tmpdir(), 'holdfast-inference-'));
  // As root, Mosquitto drops to its own OS user, which must be able to pass through to its data directory.
  chmodSync(workDir, 0o711);
  // Closed as npm start runs it: the worker, a camera for S1 and S2, and an observer that reads results.
  broker = await startMosquitto({
    port: await freePort(),
    dataDir: join(workDir, 'mosquitto'),
    access: {
      accounts: [
        ...visionStreamAccounts({
          prefix,
          inference: LOGINS.inference,
          cameras: [{ ...LOGINS.camera, stations: [S1, S2, UNKNOWN_STATION] }],
        }),
        { ...LOGINS.observer, publish: [], subscribe: [`${prefix}/+/+/+/inspection`] },
      ],
    },
  });
  plc = await startLinePlcSimulator({
    port: await freePort(),
    stations: [S1, S2],
    dataDir: join(workDir, 'plc'),
    // The reject station connector's default pkiDir under the worker's data directory, as npm start names it.
    trustedClientPkiDirs: [join(workDir, 'opcua-pki')],
  });
  writeBrightSpotModel(join(workDir, 'models'));
  writeBrightSpotModel(join(workDir, 'models'), BLOB_MODEL);

  const base = loadConfig();
  config = structuredClone(base);
  config.vision.topicPrefix = prefix;
  config.vision.recipes = [];
  const plcName = config.vision.rejectStation!;
  config.connectors[plcName] = { ...config.connectors[plcName]!, endpointUrl: plc.endpointUrl };
  const brokerName = config.vision.broker!;
  config.connectors[brokerName] = { ...config.connectors[brokerName]!, ...LOGINS.inference };
  config.vision.inference.maxBatchWait = '2ms';
  config.vision.http.port = 0;
  // S2 validates in parallel monitoring: results recorded, nothing rejected, nothing done in MES/ERP.
  const line = config.sites[0]!.lines.find((l) => l.id === 'L1')!;
  line.stations = [
    { id: 'S1', mode: 'production' },
    { id: 'S2', mode: 'shadow' },
  ];
  for (const station of [S1, S2]) {
    await saveRecipe(
      pool,
      { ...station, sku, version: `spot-${run}`, model: SPOT_MODEL, thresholds: {}, minDefectAreaPx: 100 },
      'test',
    );
  }
  publisher = await connectPublisher(broker.url, `pub-${run}`, LOGINS.camera);
}, 60_000);

afterAll(async () => {
  for (const w of workers.splice(0)) await w.close({ force: true });
  publisher?.end(true);
  await plc?.stop();
  await broker?.stop();
  await pool?.end();
  rmSync(workDir, { recursive: true, force: true });
});

async function startWorker(workerConfig = config): Promise<InferenceWorker> {
  const worker = await startInferenceWorker({
    signingKey: await testSigningKey(),
    config: workerConfig,
    pool,
    mqttUrl: broker.url,
    dataDir: workDir,
    modelsDir: join(workDir, 'models'),
    clientId: `inference-${run}`,
    seedRecipes: false,
    log: quietLog(),
  });
  workers.push(worker);
  return worker;
}

async function stopWorker(worker: InferenceWorker, opts: { force?: boolean } = {}): Promise<void> {
  workers.splice(workers.indexOf(worker), 1);
  await worker.close(opts);
}

function connectPublisher(
  url: string,
  clientId: string,
  login: { username: string; password: string },
): Promise<MqttClient> {
  return new Promise((resolve, reject) => {
    // A persistent session: QoS 1 frames not yet PUBACKed by the broker are re-sent after a reconnect.
    const client = mqtt.connect(url, { clientId, clean: false, reconnectPeriod: 200, ...login });
    client.once('connect', () => resolve(client));
    client.once('error', reject);
  });
}

let partSeq = 0;
async function publishFrame(
  station: typeof S1,
  opts: { spot: boolean; frameId?: string; lotId?: string; sku?: string },
): Promise<{ frameId: string; partId: string }> {
  partSeq += 1;
  const frameId = opts.frameId ?? `f-${run}-${partSeq}`;
  const partId = `P-${run}-${partSeq}`;
  const payload = {
    frameId,
    partId,
    lotId: opts.lotId ?? `LOT-${run}`,
    workOrder: '1000100',
    sku: opts.sku ?? sku,
    capturedAt: new Date().toISOString(),
    image: { encoding: 'png', data: (await spotFrame(opts.spot)).toString('base64') },
  };
  await publisher.publishAsync(
    frameTopic(prefix, station.site, station.line, station.station),
    JSON.stringify(payload),
    {
      qos: 1,
    },
  );
  return { frameId, partId };
}

interface InspectionRow {
  event_id: string;
  frame_id: string;
  result: string;
  mode: string;
  defects: { class: string; score: number; bbox?: { x: number; y: number; width: number; height: number } }[];
  model_version: string;
  recipe_version: string;
  frame_sha256: string;
}

async function inspections(frameIds: string[]): Promise<InspectionRow[]> {
  const res = await pool.query<InspectionRow>(
    `SELECT event_id, frame_id, result, mode, defects, model_version, recipe_version, frame_sha256
       FROM holdfast.inspection WHERE frame_id = ANY($1::text[]) ORDER BY frame_id`,
    [frameIds],
  );
  return res.rows;
}

async function allStored(frameIds: string[], timeoutMs = 30_000): Promise<InspectionRow[]> {
  return eventually(
    `${frameIds.length} inspection rows`,
    () => inspections(frameIds),
    (rows) => rows.length === frameIds.length,
    { timeoutMs },
  );
}

async function outboxFor(eventIds: string[]) {
  const res = await pool.query<{ event_id: string; workflow_id: string; payload: { mode?: string } }>(
    `SELECT event_id, workflow_id, payload FROM holdfast.outbox WHERE event_id = ANY($1::text[])`,
    [eventIds],
  );
  return res.rows;
}

describe('inference worker', () => {
  it('inspects frames from MQTT: durable results, a reject on the PLC for each fail, outbox rows, results on MQTT', async () => {
    const worker = await startWorker();
    const published: string[] = [];
    const listener = await connectPublisher(broker.url, `listen-${run}`, LOGINS.observer);
    listener.on('message', (_topic, message) => published.push(String(message)));
    await listener.subscribeAsync(resultTopic(prefix, S1.site, S1.line, S1.station), { qos: 1 });

    const good = await publishFrame(S1, { spot: false });
    const bad = await publishFrame(S1, { spot: true });
    const rows = await allStored([good.frameId, bad.frameId]);
    const byFrame = new Map(rows.map((r) => [r.frame_id, r]));

    expect(byFrame.get(good.frameId)).toMatchObject({ result: 'pass', defects: [], mode: 'production' });
    const fail = byFrame.get(bad.frameId)!;
    expect(fail).toMatchObject({
      result: 'fail',
      model_version: `${SPOT_MODEL.name}@${SPOT_MODEL.version}`,
      recipe_version: `spot-${run}`,
      event_id: inspectionEventId(S1, bad.frameId),
    });
    expect(fail.frame_sha256).toMatch(/^[0-9a-f]{64}$/);
    // The white square is 24×24 at (40, 40) of the 128×128 frame; the model sees it at half size.
    expect(fail.defects).toHaveLength(1);
    expect(fail.defects[0]!.class).toBe('spot');
    const box = fail.defects[0]!.bbox!;
    expect(Math.abs(box.x - 40)).toBeLessThanOrEqual(2);
    expect(Math.abs(box.y - 40)).toBeLessThanOrEqual(2);
    expect(Math.abs(box.width - 24)).toBeLessThanOrEqual(4);

    const rejects = plc.rejects().filter((r) => r.eventId === fail.event_id);
    expect(rejects).toEqual([expect.objectContaining({ partId: bad.partId, station: 'S1', duplicate: false })]);
    expect(plc.rejects().some((r) => r.partId === good.partId)).toBe(false);

    const outbox = await outboxFor(rows.map((r) => r.event_id));
    expect(outbox.map((o) => o.event_id)).toEqual([fail.event_id]);
    expect(outbox[0]!.payload.mode).toBeUndefined();

    await eventually('two results on the inspection topic', () => published.length >= 2);
    expect(published.map((p) => (JSON.parse(p) as { eventId: string }).eventId).sort()).toEqual(
      rows.map((r) => r.event_id).sort(),
    );
    expect(worker.pipeline.stats().rejectSignals).toBeGreaterThanOrEqual(1);
    listener.end(true);
    await stopWorker(worker);
  });

  it('refuses bad frames with a reason, records them, and keeps inspecting', async () => {
    const worker = await startWorker();
    const topic = frameTopic(prefix, S1.site, S1.line, S1.station);
    const bad: [string, string][] = [
      [topic, '{not json'],
      [topic, JSON.stringify({ frameId: `x-${run}`, partId: 'P', sku })],
      [
        topic,
        JSON.stringify({
          frameId: `undecodable-${run}`,
          partId: 'P',
          lotId: 'L',
          workOrder: 'W',
          sku,
          capturedAt: new Date().toISOString(),
          // A PNG cut short: the signature is right, the image cannot be decoded.
          image: { encoding: 'png', data: (await spotFrame(true)).subarray(0, 120).toString('base64') },
        }),
      ],
      [frameTopic(prefix, UNKNOWN_STATION.site, UNKNOWN_STATION.line, UNKNOWN_STATION.station), '{}'],
    ];
    for (const [t, body] of bad) await publisher.publishAsync(t, body, { qos: 1 });
    const unknownSku = await publishFrame(S1, { spot: false, sku: `NOPE-${run}` });
    const after = await publishFrame(S1, { spot: true });
    await allStored([after.frameId]);

    const reasons = await eventually(
      'five refused frames',
      async () => {
        const res = await pool.query<{ reason: string; frame_id: string | null }>(
          `SELECT reason, frame_id FROM holdfast.frame_rejection WHERE topic LIKE $1 ORDER BY id`,
          [`${prefix}/%`],
        );
        return res.rows;
      },
      (rows) => rows.length >= 5,
    );
    const text = reasons.map((r) => r.reason).join('\n');
    expect(text).toMatch(/bad-payload: payload: not JSON/);
    expect(text).toMatch(/bad-payload: .*lotId/);
    expect(text).toMatch(/bad-image: /);
    expect(text).toMatch(/unknown-station: PLANT1\/L9\/S1/);
    expect(reasons.find((r) => r.frame_id === unknownSku.frameId)?.reason).toMatch(/no-recipe: .*NOPE-/);
    expect(worker.pipeline.stats().rejectedFrames).toMatchObject({ 'bad-payload': 2, 'bad-image': 1 });
    await stopWorker(worker);
  });

  it('shadow station: results recorded, no reject written, the workflow is told to only record what it would do', async () => {
    const worker = await startWorker();
    const bad = await publishFrame(S2, { spot: true });
    const [row] = await allStored([bad.frameId]);
    expect(row).toMatchObject({ result: 'fail', mode: 'shadow' });
    const outbox = await outboxFor([row!.event_id]);
    expect(outbox).toHaveLength(1);
    expect(outbox[0]!.payload.mode).toBe('shadow');
    expect(plc.rejects().some((r) => r.partId === bad.partId)).toBe(false);
    expect(worker.pipeline.stats().shadowFails).toBe(1);
    await stopWorker(worker);
  });

  it('a worker killed mid-stream loses no frame and duplicates nothing; the next worker finishes the stream', async () => {
    // The broker queues the frames for the worker's persistent session while no worker is connected.
    const frames: { frameId: string; partId: string }[] = [];
    for (let i = 0; i < 150; i++) frames.push(await publishFrame(S1, { spot: i % 3 === 0 }));
    const ids = frames.map((f) => f.frameId);
    const first = await startWorker();
    // Polled in process, every few ms: the crash must come while most frames are still unfinished.
    await eventually('ten frames stored by the first worker', () => first.pipeline.stats().stored >= 10, {
      intervalMs: 2,
      timeoutMs: 60_000,
    });
    await stopWorker(first, { force: true }); // as a crash would: no PUBACK for unfinished frames

    const second = await startWorker();
    const rows = await allStored(ids, 60_000);
    await eventually(
      'the second worker to take the unacknowledged frames',
      () => second.subscriber.stats(),
      (sub) => sub.acknowledged > 0 && sub.inFlight === 0,
    );
    expect(new Set(rows.map((r) => r.frame_id)).size).toBe(150);
    const fails = rows.filter((r) => r.result === 'fail').map((r) => r.event_id);
    expect(fails).toHaveLength(50);
    const outbox = await outboxFor(rows.map((r) => r.event_id));
    expect(outbox.map((o) => o.event_id).sort()).toEqual([...fails].sort());
    // One hand-over per failed part, each to the lot's case.
    expect(outbox).toHaveLength(50);
    expect(new Set(outbox.map((o) => o.workflow_id))).toEqual(new Set([lotCaseWorkflowId('PLANT1', `LOT-${run}`)]));
    // The frames the first worker had not acknowledged came back (DUP) and were recognised by their event id.
    expect(second.subscriber.stats().redelivered).toBeGreaterThan(0);
    // Parts rejected twice (before and after the crash) were counted once by the PLC.
    const counted = plc.rejects().filter((r) => fails.includes(r.eventId) && !r.duplicate);
    expect(counted).toHaveLength(50);
    expect(new Set(counted.map((r) => r.eventId)).size).toBe(50);
  }, 120_000);

  it('a broker restart mid-stream loses no frame the broker accepted', async () => {
    const worker = workers[0] ?? (await startWorker());
    const frames: string[] = [];
    for (let i = 0; i < 20; i++) frames.push((await publishFrame(S1, { spot: i % 4 === 0 })).frameId);
    await broker.restart();
    for (let i = 0; i < 20; i++) frames.push((await publishFrame(S1, { spot: i % 4 === 0 })).frameId);
    const rows = await allStored(frames, 60_000);
    expect(rows).toHaveLength(40);
    const fails = rows.filter((r) => r.result === 'fail').map((r) => r.event_id);
    expect(await outboxFor(fails)).toHaveLength(fails.length);
    // Every frame acknowledged once its result is stored (the PUBACK follows the commit by a moment).
    await eventually(
      'no frame left unacknowledged',
      () => worker.subscriber.stats(),
      (sub) => sub.inFlight === 0,
    );
  }, 120_000);

  it('one-off images over HTTP: the image or the frame JSON in, the stored result out, through the same pipeline', async () => {
    const worker = await startWorker();
    const url = (station: typeof S1, query = '') =>
      `${worker.http.url}/v1/stations/${station.site}/${station.line}/${station.station}/frames${query}`;
    const fields = (frameId: string) =>
      new URLSearchParams({
        frameId,
        partId: `HP-${frameId}`,
        lotId: `LOT-${run}`,
        workOrder: '1000100',
        sku,
      }).toString();
    // One-off requests to the edge; the answers are checked as they come, errors included.
    const postImage = async (to: string, image: Buffer) =>
      fetch(to, { method: 'POST', headers: { 'content-type': 'image/png', ...(await asAdmin()) }, body: image });
    const postFrameJson = async (to: string, frame: unknown) =>
      fetch(to, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(await asAdmin()) },
        body: JSON.stringify(frame),
      });

    // The image itself, its frame fields in the query, diversion asked for: a fail at a production station, its
    // reject written.
    const failId = `http-${run}-1`;
    const failed = await postImage(url(S1, `?${fields(failId)}&divert=true`), await spotFrame(true));
    expect(failed.status).toBe(200);
    const answer = (await failed.json()) as Record<string, unknown>;
    expect(answer).toMatchObject({
      eventId: inspectionEventId(S1, failId),
      ingest: 'accepted',
      result: 'fail',
      modelVersion: `${SPOT_MODEL.name}@${SPOT_MODEL.version}`,
      recipeVersion: `spot-${run}`,
      rejectSignal: 'written',
      defects: [expect.objectContaining({ class: 'spot' })],
    });
    // Answered after the commit: the row and the outbox row are there already.
    const [row] = await inspections([failId]);
    expect(row).toMatchObject({
      result: 'fail',
      event_id: answer.eventId,
      frame_sha256: (answer.frame as { sha256: string }).sha256,
    });
    expect(await outboxFor([row!.event_id])).toHaveLength(1);
    expect(plc.rejects().filter((r) => r.eventId === row!.event_id)).toHaveLength(1);

    // The same frame again: a duplicate; the first result stands and nothing new is started.
    const again = await postImage(url(S1, `?${fields(failId)}`), await spotFrame(true));
    expect(await again.json()).toMatchObject({ eventId: answer.eventId, ingest: 'duplicate' });
    expect(await outboxFor([row!.event_id])).toHaveLength(1);

    // The MQTT payload as JSON, at the shadow station: a pass, nothing to reject.
    const passId = `http-${run}-2`;
    const json = {
      frameId: passId,
      partId: 'HP-2',
      lotId: `LOT-${run}`,
      workOrder: '1000100',
      sku,
      capturedAt: '2026-12-06T08:00:00.000Z',
      image: { encoding: 'png', data: (await spotFrame(false)).toString('base64') },
    };
    const passed = await postFrameJson(url(S2), json);
    expect(passed.status).toBe(200);
    expect(await passed.json()).toMatchObject({
      eventId: inspectionEventId(S2, passId),
      result: 'pass',
      rejectSignal: 'none',
      inspectedAt: json.capturedAt,
    });

    // Raw pixels, as a GigE Vision camera delivers them: the same verdict as the PNG of those pixels.
    const pixels = await sharp(await spotFrame(true))
      .removeAlpha()
      .raw()
      .toBuffer({ resolveWithObject: true });
    const rawId = `http-${run}-raw`;
    const raw = await postFrameJson(url(S1), {
      ...json,
      frameId: rawId,
      image: {
        encoding: 'raw',
        pixelFormat: 'RGB8',
        width: pixels.info.width,
        height: pixels.info.height,
        data: pixels.data.toString('base64'),
      },
    });
    expect(raw.status).toBe(200);
    const rawAnswer = (await raw.json()) as { result: string; defects: { class: string; bbox: unknown }[] };
    // Not asked to divert: the fail is stored (and its workflow started), but nothing is written to the PLC.
    expect(rawAnswer).toMatchObject({ result: 'fail', rejectSignal: 'not-requested' });
    expect(rawAnswer.defects).toEqual((answer as { defects: unknown }).defects);
    expect(plc.rejects().some((r) => r.eventId === inspectionEventId(S1, rawId))).toBe(false);
    expect(await outboxFor([inspectionEventId(S1, rawId)])).toHaveLength(1);

    // Bad input: a problem naming each field; refused frames are recorded and counted as from MQTT.
    const problem = async (res: Response) => {
      expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      return (await res.json()) as { status: number; detail?: string; errors?: { field: string; message: string }[] };
    };
    const { lotId: _lot, ...noLot } = json;
    const missing = await postFrameJson(url(S1), { ...noLot, frameId: `http-${run}-3`, capturedAt: 'noon' });
    expect(missing.status).toBe(400);
    expect((await problem(missing)).errors).toEqual([
      { field: 'lotId', message: 'required' },
      { field: 'capturedAt', message: expect.stringMatching(/ISO 8601/) },
    ]);
    const noQuery = await postImage(url(S1, `?frameId=http-${run}-4`), await spotFrame(true));
    expect(noQuery.status).toBe(400);
    expect((await problem(noQuery)).errors?.map((e) => e.field)).toEqual(
      expect.arrayContaining(['querystring.partId', 'querystring.lotId', 'querystring.workOrder', 'querystring.sku']),
    );
    const truncated = await postImage(url(S1, `?${fields(`http-${run}-5`)}`), (await spotFrame(true)).subarray(0, 120));
    expect(truncated.status).toBe(400);
    expect((await problem(truncated)).errors).toEqual([
      { field: 'image', message: expect.stringMatching(/undecodable image/) },
    ]);
    const jsonWithQuery = await postFrameJson(url(S1, '?partId=x'), json);
    expect(jsonWithQuery.status).toBe(400);
    expect((await problem(jsonWithQuery)).errors?.[0]?.field).toBe('querystring.partId');

    const unknown = await postImage(
      url({ site: 'PLANT1', line: 'L9', station: 'S1' }, `?${fields(`http-${run}-6`)}`),
      await spotFrame(true),
    );
    expect(unknown.status).toBe(404);
    const noRecipe = await postFrameJson(url(S1), { ...json, frameId: `http-${run}-7`, sku: `NOPE-${run}` });
    expect(noRecipe.status).toBe(422);
    expect((await problem(noRecipe)).detail).toMatch(/no active recipe for SKU NOPE-/);
    const { image: _image, ...withoutImage } = json;
    const byRef = await postFrameJson(url(S1), {
      ...withoutImage,
      frameId: `http-${run}-8`,
      imageRef: 'http://127.0.0.1:9/frames/x.png',
    });
    expect(byRef.status).toBe(400);
    expect((await problem(byRef)).errors).toEqual([
      { field: 'imageRef', message: expect.stringMatching(/need vision.imageSources/) },
    ]);
    const badDivert = await postFrameJson(url(S1, '?divert=yes'), json);
    expect(badDivert.status).toBe(400);
    expect((await problem(badDivert)).errors).toEqual([{ field: 'querystring.divert', message: 'true or false' }]);
    const gif = await fetch(url(S1), {
      method: 'POST',
      headers: { 'content-type': 'image/gif', ...(await asAdmin()) },
      body: 'GIF89a',
    });
    expect(gif.status).toBe(415);

    expect(worker.pipeline.stats().rejectedFrames).toMatchObject({ 'bad-payload': 1, 'bad-image': 2, 'no-recipe': 1 });
    const refused = await pool.query<{ frame_id: string | null; reason: string }>(
      `SELECT frame_id, reason FROM holdfast.frame_rejection WHERE frame_id = ANY($1::text[]) ORDER BY frame_id`,
      [[`http-${run}-5`, `http-${run}-7`]],
    );
    expect(refused.rows.map((r) => r.reason)).toEqual([
      expect.stringMatching(/^bad-image: undecodable image/),
      expect.stringMatching(/^no-recipe: /),
    ]);
    // Nothing was stored for any refused request.
    expect(await inspections([3, 4, 5, 6, 7].map((i) => `http-${run}-${i}`))).toEqual([]);
    await stopWorker(worker);
  });

  it('frames by image reference: read from a configured source; while it is down the frame is kept, the stream goes on', async () => {
    const images = new Map<string, Buffer>();
    let available = false;
    const server = createServer((req, res) => {
      const image = images.get(req.url ?? '');
      if (!available) res.writeHead(503).end();
      else if (image) res.writeHead(200, { 'content-type': 'image/png' }).end(image);
      else res.writeHead(404).end();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    // Earlier tests' workers share this broker session (one clientId): only this worker may take the frames.
    for (const earlier of [...workers]) await stopWorker(earlier);
    const worker = await startWorker({
      ...config,
      vision: { ...config.vision, imageSources: [`${base}/frames/`], imageRetryInterval: '200ms' },
    });
    try {
      const byRef = async (frameId: string, path: string) => {
        await publisher.publishAsync(
          frameTopic(prefix, S1.site, S1.line, S1.station),
          JSON.stringify({
            frameId,
            partId: `RP-${frameId}`,
            lotId: `LOT-${run}`,
            workOrder: '1000100',
            sku,
            capturedAt: new Date().toISOString(),
            imageRef: `${base}${path}`,
          }),
          { qos: 1 },
        );
      };
      const failId = `ref-${run}-1`;
      images.set(`/frames/${failId}.png`, await spotFrame(true));
      await byRef(failId, `/frames/${failId}.png`);
      // The source is down: the frame is kept (and acknowledged), not refused, and tried again.
      const deferredRow = () =>
        pool
          .query<{ attempts: number; last_error: string }>(
            `SELECT attempts, last_error FROM holdfast.frame_deferred WHERE event_id = $1`,
            [inspectionEventId(S1, failId)],
          )
          .then((r) => r.rows[0]);
      const kept = await eventually('the frame kept for later, tried again', async () => {
        const r = await deferredRow();
        return r && r.attempts >= 2 ? r : undefined;
      });
      expect(kept.last_error).toMatch(/answered 503/);
      expect(worker.pipeline.stats().deferredFrames).toBe(1);
      // An operator sees it on the worker's HTTP edge, with its attempts and why.
      const listed = (await (
        await fetch(`${worker.http.url}/v1/deferred-frames`, { headers: await asAdmin() })
      ).json()) as {
        frames: { eventId: string; attempts: number; lastError: string }[];
      };
      expect(listed.frames.find((f) => f.eventId === inspectionEventId(S1, failId))).toMatchObject({
        attempts: expect.any(Number),
        lastError: expect.stringMatching(/answered 503/),
      });
      // The stream goes on meanwhile: an inline frame behind it is inspected, and nothing waits for a PUBACK.
      const inline = await publishFrame(S1, { spot: false });
      await allStored([inline.frameId]);
      await eventually(
        'no frame left unacknowledged',
        () => worker.subscriber.stats(),
        (sub) => sub.inFlight === 0,
      );
      expect(await inspections([failId])).toEqual([]);

      available = true;
      const [row] = await allStored([failId]);
      expect(row).toMatchObject({
        result: 'fail',
        frame_sha256: createHash('sha256')
          .update(images.get(`/frames/${failId}.png`)!)
          .digest('hex'),
      });
      // Inspected late, the part is past the reject gate: no reject written; the part still goes to its lot case.
      expect(plc.rejects().filter((r) => r.eventId === row!.event_id)).toEqual([]);
      expect(await outboxFor([row!.event_id])).toHaveLength(1);
      await eventually('the kept frame removed', deferredRow, (row) => row === undefined);

      // A reference that cannot work is refused and recorded: missing image, and one outside the source.
      await byRef(`ref-${run}-2`, `/frames/missing.png`);
      await byRef(`ref-${run}-3`, `/private/${failId}.png`);
      const reasons = await eventually(
        'two refused references',
        async () => {
          const res = await pool.query<{ frame_id: string; reason: string }>(
            `SELECT frame_id, reason FROM holdfast.frame_rejection WHERE frame_id = ANY($1::text[]) ORDER BY frame_id`,
            [[`ref-${run}-2`, `ref-${run}-3`]],
          );
          return res.rows;
        },
        (rows) => rows.length === 2,
      );
      expect(reasons.map((r) => r.reason)).toEqual([
        expect.stringMatching(/^bad-image: image reference .* 404/),
        expect.stringMatching(/^bad-image: image reference .* not under a configured image source/),
      ]);
      await eventually(
        'no frame left unacknowledged',
        () => worker.subscriber.stats(),
        (sub) => sub.inFlight === 0,
      );
    } finally {
      await stopWorker(worker);
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });

  it('swaps models with a manifest and a recipe, no code: a new recipe version moves the station to another model', async () => {
    const worker = await startWorker();
    const before = await publishFrame(S1, { spot: true });
    const [first] = await allStored([before.frameId]);
    expect(first).toMatchObject({ model_version: 'bright-spot@1' });
    expect(first!.defects[0]!.class).toBe('spot');

    await saveRecipe(
      pool,
      { ...S1, sku, version: `blob-${run}`, model: BLOB_MODEL, thresholds: {}, minDefectAreaPx: 100 },
      'test',
    );
    const after = await eventually('a result from the second model', async () => {
      const f = await publishFrame(S1, { spot: true });
      const [row] = await allStored([f.frameId]);
      return row!.model_version === 'blob-finder@2.0' ? row : undefined;
    });
    expect(after).toMatchObject({ result: 'fail', recipe_version: `blob-${run}` });
    expect(after.defects[0]!.class).toBe('blob');
    expect(worker.models.list().map((m) => m.key)).toEqual(['blob-finder@2.0', 'bright-spot@1']);
    await stopWorker(worker);
  });
});

describe('inference worker connectors', () => {
  it("reports each connector's health: the broker's two clients and the reject station's session", async () => {
    const worker = await startWorker();
    try {
      expect(await worker.connectors.health()).toEqual({
        'line-mqtt': { ok: true, detail: expect.stringContaining('frame subscriber and result publisher connected') },
        'line-plc': { ok: true, detail: 'ok' },
      });
    } finally {
      await stopWorker(worker);
    }
  });

  it('a reject station or broker that is not there stops start-up, naming the connector and the cause', async () => {
    const plcName = config.vision.rejectStation!;
    const noPlc = structuredClone(config);
    noPlc.connectors[plcName] = {
      ...noPlc.connectors[plcName]!,
      endpointUrl: `opc.tcp://127.0.0.1:${await freePort()}`,
      connectTimeoutMs: 1_500,
    };
    const noBroker = `mqtt://127.0.0.1:${await freePort()}`;
    const signingKey = await testSigningKey();
    const start = (workerConfig: HoldfastConfig, mqttUrl: string) =>
      startInferenceWorker({
        signingKey,
        config: workerConfig,
        pool,
        mqttUrl,
        dataDir: workDir,
        modelsDir: join(workDir, 'models'),
        clientId: `inference-${run}-down`,
        seedRecipes: false,
        log: quietLog(),
      });

    await expect(start(noPlc, broker.url)).rejects.toThrow(
      /^connector line-plc \(opcua-reject-station\) could not be opened: reject station opc\.tcp:\/\/127\.0\.0\.1:\d+: no session within 1500 ms/,
    );
    await expect(start(config, noBroker)).rejects.toThrow(
      /^connector line-mqtt \(mqtt\) is not healthy: MQTT broker mqtt:\/\/127\.0\.0\.1:\d+: no MQTT connection within 5000 ms \(broker refused the connection/,
    );
  }, 60_000);
});
