/**
 * The body of a model thread (see threaded-model.ts): loads one model and answers infer requests, one at a time.
 * onnxruntime-node's `run` occupies the thread it is called on for the whole run; here that thread is this one.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { loadModel, type InferenceItem, type LoadModelOptions, type VisionModel } from './model';

export type ModelThreadRequest = { type: 'infer'; id: number; items: InferenceItem[] } | { type: 'close' };

export type ModelThreadReply =
  | {
      type: 'ready';
      manifest: VisionModel['manifest'];
      key: string;
      inputSize: VisionModel['inputSize'];
      batch: VisionModel['batch'];
    }
  | { type: 'result'; id: number; candidates: Awaited<ReturnType<VisionModel['infer']>> }
  | { type: 'error'; id?: number; message: string };

const port = parentPort;
if (!port) throw new Error('model.thread.ts runs as a worker thread only');
const { manifestPath, opts } = workerData as { manifestPath: string; opts: LoadModelOptions };
const reply = (msg: ModelThreadReply) => port.postMessage(msg);

loadModel(manifestPath, opts).then(
  (model) => {
    reply({ type: 'ready', manifest: model.manifest, key: model.key, inputSize: model.inputSize, batch: model.batch });
    let queue = Promise.resolve();
    port.on('message', (msg: ModelThreadRequest) => {
      if (msg.type === 'close') {
        queue = queue.then(() => model.close()).finally(() => port.close());
        return;
      }
      queue = queue.then(async () => {
        try {
          reply({ type: 'result', id: msg.id, candidates: await model.infer(msg.items) });
        } catch (err) {
          reply({ type: 'error', id: msg.id, message: err instanceof Error ? err.message : String(err) });
        }
      });
    });
  },
  (err: unknown) => {
    reply({ type: 'error', message: err instanceof Error ? err.message : String(err) });
    port.close();
  },
);
