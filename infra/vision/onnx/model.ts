/**
 * Loads one ONNX model by its manifest and runs it: the only module that creates an onnxruntime session.
 *
 * Everything model-specific comes from the manifest (input tensor, layout, size, output decoder, classes), so another
 * model is a new manifest and .onnx file, not new code. Loading refuses anything that would otherwise fail later and
 * less clearly: an invalid manifest (every problem listed), a file whose sha256 differs from the manifest's, and a
 * graph whose input or outputs are not the ones the manifest and its decoder name.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { dirname, resolve } from 'node:path';
import * as ort from 'onnxruntime-node';
import type { ZodError } from 'zod';
import { ModelManifest, type DefectCandidate, type PixelBox } from '../contracts';
import {
  clipRoiToFrame,
  createDecoder,
  letterboxFor,
  MIN_CANDIDATE_SCORE,
  regionOf,
  type FrameGeometry,
} from '../decoders';
import type { Letterbox, OutputDecoder } from '../decoders';

export class ModelLoadError extends Error {
  override readonly name = 'ModelLoadError';
}

export interface LoadModelOptions {
  /** Threads inside one operator (convolutions, matmuls). Default: the cores this process may use. */
  intraOpNumThreads?: number;
  /** Threads across independent graph branches; unused by sequential execution, so 1 by default. */
  interOpNumThreads?: number;
  /** Decoders drop candidates scoring below this; default MIN_CANDIDATE_SCORE. Set it at or below any recipe threshold. */
  minCandidateScore?: number;
}

/** One preprocessed frame: the input tensor without the batch dimension, and where it came from in the frame. */
export interface InferenceItem {
  /** Laid out as the manifest's input (CHW for NCHW, HWC for NHWC), already normalised. */
  tensor: Float32Array;
  geometry: {
    sourceWidth: number;
    sourceHeight: number;
    roi?: PixelBox;
    /** Where the preprocessing placed a letterboxed crop; computed as sharp's `contain` does when absent. */
    letterbox?: Letterbox;
  };
}

export interface VisionModel {
  readonly manifest: ModelManifest;
  /** name@version: the identity results are stamped with and the catalog caches by. */
  readonly key: string;
  readonly inputSize: { width: number; height: number };
  /** The graph's batch dimension: a fixed size (items are run that many at a time), or dynamic (one run per call). */
  readonly batch: number | 'dynamic';
  /**
   * Candidates per item, in item order, with boxes in frame pixels. onnxruntime-node runs the graph synchronously on
   * the JS thread (its run() only defers the start with setImmediate), so the event loop is blocked for the whole run:
   * batch sizes bound how long other I/O (reject writes, MQTT acks) waits behind inference.
   */
  infer(items: readonly InferenceItem[]): Promise<DefectCandidate[][]>;
  close(): Promise<void>;
}

export function modelKey(name: string, version: string): string {
  return `${name}@${version}`;
}

/** Reads and validates a manifest; every schema problem is listed, with its path, in one error. */
export async function readManifest(manifestPath: string): Promise<ModelManifest> {
  let text: string;
  try {
    text = await readFile(manifestPath, 'utf8');
  } catch (err) {
    throw new ModelLoadError(`model manifest ${manifestPath} cannot be read: ${(err as Error).message}`, {
      cause: err,
    });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new ModelLoadError(`model manifest ${manifestPath} is not JSON: ${(err as Error).message}`, { cause: err });
  }
  const parsed = ModelManifest.safeParse(json);
  if (!parsed.success) {
    throw new ModelLoadError(`model manifest ${manifestPath} is invalid:\n${describeIssues(parsed.error)}`);
  }
  return parsed.data;
}

function describeIssues(error: ZodError): string {
  return error.issues.map((i) => `  - ${i.path.join('.') || '(root)'}: ${i.message}`).join('\n');
}

export async function loadModel(manifestPath: string, opts: LoadModelOptions = {}): Promise<VisionModel> {
  const manifest = await readManifest(manifestPath);
  const key = modelKey(manifest.name, manifest.version);
  const fail = (problems: string[]): never => {
    throw new ModelLoadError(
      `model ${key} (${manifestPath}) cannot be served:\n${problems.map((p) => `  - ${p}`).join('\n')}`,
    );
  };

  const manifestProblems = checkManifest(manifest);
  if (manifestProblems.length) fail(manifestProblems);

  const modelPath = resolve(dirname(manifestPath), manifest.file);
  let bytes: Buffer;
  try {
    bytes = await readFile(modelPath);
  } catch (err) {
    throw new ModelLoadError(`model ${key}: ${modelPath} cannot be read: ${(err as Error).message}`, { cause: err });
  }
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  if (sha256 !== manifest.sha256) {
    throw new ModelLoadError(
      `model ${key}: ${modelPath} has sha256 ${sha256} but the manifest expects ${manifest.sha256}; ` +
        'the file is not the one the manifest describes (re-export it or update the manifest)',
    );
  }

  let decoder: OutputDecoder;
  try {
    decoder = createDecoder(manifest.decoder, {
      classes: manifest.classes,
      minScore: opts.minCandidateScore ?? MIN_CANDIDATE_SCORE,
    });
  } catch (err) {
    return fail([(err as Error).message]);
  }

  // Inference is the worker's main CPU load, and these graphs are small CNNs: a chain of operators with no independent
  // branches. So the parallelism that pays is inside each operator (intra-op threads, one per core available), while a
  // parallel executor would only add an inter-op pool competing for the same cores. 'all' optimisations fuse
  // conv/bn/activation once at load. The worker awaits one run at a time per model, so threads = cores, not more.
  const sessionOptions: ort.InferenceSession.SessionOptions = {
    graphOptimizationLevel: 'all',
    executionMode: 'sequential',
    intraOpNumThreads: opts.intraOpNumThreads ?? availableParallelism(),
    interOpNumThreads: opts.interOpNumThreads ?? 1,
  };
  let session: ort.InferenceSession;
  try {
    session = await ort.InferenceSession.create(bytes, sessionOptions);
  } catch (err) {
    throw new ModelLoadError(`model ${key}: onnxruntime cannot load ${modelPath}: ${(err as Error).message}`, {
      cause: err,
    });
  }

  const graph = checkGraph(manifest, decoder, session);
  if (graph.problems.length) {
    await session.release();
    fail(graph.problems);
  }
  return createVisionModel(manifest, key, decoder, session, graph.batch);
}

/** Consistency the schema alone cannot express. */
function checkManifest(m: ModelManifest): string[] {
  const problems: string[] = [];
  for (const cls of Object.keys(m.thresholds)) {
    if (!m.classes.includes(cls)) problems.push(`thresholds.${cls}: not one of the classes [${m.classes.join(', ')}]`);
  }
  if (m.decoder.kind === 'anomaly-map' && !m.classes.includes(m.decoder.defectClass)) {
    problems.push(`decoder.defectClass "${m.decoder.defectClass}" is not one of the classes [${m.classes.join(', ')}]`);
  }
  const channels = m.input.layout === 'NCHW' ? m.input.shape[1] : m.input.shape[3];
  const expected = m.input.colorSpace === 'gray' ? 1 : 3;
  if (channels !== expected) {
    problems.push(`input.shape has ${channels} channels; colorSpace ${m.input.colorSpace} needs ${expected}`);
  }
  return problems;
}

/** The graph against the manifest: input name and shape, the decoder's outputs and their shapes, the batch size. */
function checkGraph(
  manifest: ModelManifest,
  decoder: OutputDecoder,
  session: ort.InferenceSession,
): { problems: string[]; batch: number | 'dynamic' } {
  const problems: string[] = [];
  const { input } = manifest;
  const inputMeta = session.inputMetadata.find((m) => m.name === input.name);
  if (!inputMeta) {
    problems.push(`input "${input.name}" is not in the graph, whose inputs are [${session.inputNames.join(', ')}]`);
  } else if (session.inputNames.length > 1) {
    problems.push(`the graph has ${session.inputNames.length} inputs [${session.inputNames.join(', ')}]; one is fed`);
  }
  const missing = decoder.outputNames.filter((n) => !session.outputNames.includes(n));
  if (missing.length) {
    problems.push(
      `output${missing.length > 1 ? 's' : ''} ${missing.map((n) => `"${n}"`).join(', ')} named by the ` +
        `${manifest.decoder.kind} decoder ${missing.length > 1 ? 'are' : 'is'} not in the graph, whose outputs are ` +
        `[${session.outputNames.join(', ')}]`,
    );
  }

  const graphShape = inputMeta?.isTensor ? inputMeta.shape : [];
  if (inputMeta?.isTensor && inputMeta.type !== 'float32') {
    problems.push(`input "${input.name}" is ${inputMeta.type}; the worker feeds float32`);
  }
  if (graphShape.length && graphShape.length !== 4) {
    problems.push(`input "${input.name}" has rank ${graphShape.length} in the graph; the manifest declares 4`);
  }
  graphShape.slice(1).forEach((dim, i) => {
    const declared = input.shape[i + 1];
    if (typeof dim === 'number' && dim > 0 && dim !== declared) {
      problems.push(`input "${input.name}" dimension ${i + 1} is ${dim} in the graph but ${declared} in the manifest`);
    }
  });

  // A symbolic or -1 batch in both the graph and the manifest lets a whole call run as one batch; a fixed size on
  // either side wins, and two different fixed sizes are an error.
  const graphBatch = graphShape[0];
  const declaredBatch = input.shape[0];
  let batch: number | 'dynamic' = 'dynamic';
  if (typeof graphBatch === 'number' && graphBatch > 0) {
    batch = graphBatch;
    if (declaredBatch > 0 && declaredBatch !== graphBatch) {
      problems.push(`input "${input.name}" batch is ${graphBatch} in the graph but ${declaredBatch} in the manifest`);
    }
  } else if (declaredBatch > 0) {
    batch = declaredBatch;
  }

  const shapes: Record<string, readonly (number | string)[]> = {};
  for (const meta of session.outputMetadata) if (meta.isTensor && meta.shape.length) shapes[meta.name] = meta.shape;
  problems.push(...decoder.checkShapes(shapes));
  return { problems, batch };
}

function createVisionModel(
  manifest: ModelManifest,
  key: string,
  decoder: OutputDecoder,
  session: ort.InferenceSession,
  batch: number | 'dynamic',
): VisionModel {
  const { input } = manifest;
  const itemDims = input.shape.slice(1);
  const itemSize = itemDims.reduce((a, b) => a * b, 1);
  const inputSize =
    input.layout === 'NCHW'
      ? { width: input.shape[3], height: input.shape[2] }
      : { width: input.shape[2], height: input.shape[1] };
  const fetches = [...decoder.outputNames];
  let closed = false;

  function geometryOf(item: InferenceItem): FrameGeometry {
    const g: FrameGeometry = {
      sourceWidth: item.geometry.sourceWidth,
      sourceHeight: item.geometry.sourceHeight,
      inputWidth: inputSize.width,
      inputHeight: inputSize.height,
    };
    if (item.geometry.roi) {
      // A recipe's roi may reach past the frame (a camera replaced by one with a smaller sensor); the model saw the
      // clipped crop, so boxes are mapped back through that, not through the roi as written.
      const { roi } = item.geometry;
      const crop = clipRoiToFrame(roi, g.sourceWidth, g.sourceHeight);
      if (!crop) {
        throw new Error(
          `model ${key}: roi ${roi.width}x${roi.height} at (${roi.x}, ${roi.y}) lies outside the ` +
            `${g.sourceWidth}x${g.sourceHeight} frame`,
        );
      }
      g.roi = crop;
    }
    if (input.resize === 'letterbox') {
      const region = regionOf(g);
      g.letterbox =
        item.geometry.letterbox ?? letterboxFor(region.width, region.height, inputSize.width, inputSize.height);
    }
    return g;
  }

  /** One session run over `items`, padded with zero images up to `size` for a fixed-batch graph. */
  async function run(
    items: readonly InferenceItem[],
    geometries: readonly FrameGeometry[],
    size: number,
  ): Promise<DefectCandidate[][]> {
    let data: Float32Array;
    if (items.length === 1 && size === 1) {
      data = items[0]!.tensor;
    } else {
      data = new Float32Array(size * itemSize);
      items.forEach((item, i) => data.set(item.tensor, i * itemSize));
    }
    const feeds = { [input.name]: new ort.Tensor('float32', data, [size, ...itemDims]) };
    const outputs = await session.run(feeds, fetches);
    return geometries.map((geometry, i) => decoder.decode(outputs, i, geometry));
  }

  return {
    manifest,
    key,
    inputSize,
    batch,

    async infer(items) {
      if (closed) throw new Error(`model ${key} is closed`);
      items.forEach((item, i) => {
        if (item.tensor.length !== itemSize) {
          throw new Error(
            `model ${key}: item ${i} has ${item.tensor.length} values; input "${input.name}" ` +
              `[${itemDims.join(', ')}] (${input.layout} without the batch) needs ${itemSize}`,
          );
        }
      });
      if (items.length === 0) return [];
      // Geometry first: a bad roi refuses the call before any inference time is spent on it.
      const geometries = items.map(geometryOf);
      if (batch === 'dynamic') return run(items, geometries, items.length);
      const results: DefectCandidate[][] = [];
      for (let start = 0; start < items.length; start += batch) {
        results.push(...(await run(items.slice(start, start + batch), geometries.slice(start, start + batch), batch)));
      }
      return results;
    },

    async close() {
      if (closed) return;
      closed = true;
      await session.release();
    },
  };
}
