/**
 * A model served from its own worker thread. onnxruntime-node runs a session on the calling thread and holds it for
 * the whole run (a batch takes tens of ms), so on the main thread every reject write, MQTT acknowledgement and
 * database reply would wait behind it. In a thread, the main event loop stays free for I/O while the model computes.
 */
import { resolve } from 'node:path';
import { Worker } from 'node:worker_threads';
import { ModelLoadError, type InferenceItem, type LoadModelOptions, type VisionModel } from './model';
import type { ModelThreadReply, ModelThreadRequest } from './model.thread';

const THREAD_ENTRY = resolve(__dirname, 'model.thread.ts');
/**
 * The thread runs TypeScript like the rest of Holdfast: a CommonJS bootstrap registers tsx's require hook, then loads
 * the entry. (A .ts entry passed to Worker directly is loaded by Node before any --import hook applies to it.)
 */
const BOOTSTRAP = `require(${JSON.stringify(require.resolve('tsx/cjs'))}); require(${JSON.stringify(THREAD_ENTRY)});`;

export async function loadModelInThread(manifestPath: string, opts: LoadModelOptions = {}): Promise<VisionModel> {
  // execArgv: [] — an inherited `--import tsx` in an eval'd thread hangs it; the bootstrap registers tsx itself.
  const worker = new Worker(BOOTSTRAP, { eval: true, execArgv: [], workerData: { manifestPath, opts } });
  const pending = new Map<
    number,
    { resolve: (c: ReplyOf<'result'>['candidates']) => void; reject: (e: Error) => void }
  >();
  let nextId = 1;
  let failure: Error | undefined;
  const failAll = (err: Error) => {
    failure ??= err;
    for (const p of pending.values()) p.reject(err);
    pending.clear();
  };

  // One listener for the thread's whole life (swapping listeners on a worker's port can drop its messages).
  let onReady: ((msg: ReplyOf<'ready'>) => void) | undefined;
  let onStartFailure: ((err: Error) => void) | undefined;
  worker.on('message', (msg: ModelThreadReply) => {
    if (msg.type === 'ready') onReady?.(msg);
    else if (msg.type === 'result') {
      pending.get(msg.id)?.resolve(msg.candidates);
      pending.delete(msg.id);
    } else if (msg.id !== undefined) {
      pending.get(msg.id)?.reject(new Error(`model thread: ${msg.message}`));
      pending.delete(msg.id);
    } else {
      onStartFailure?.(new ModelLoadError(msg.message));
    }
  });
  worker.on('error', (err: Error) => {
    onStartFailure?.(err);
    failAll(err);
  });
  worker.on('exit', (code) => {
    const err = new Error(`model thread for ${manifestPath} exited (${code})`);
    onStartFailure?.(err);
    failAll(err);
  });

  const ready = await new Promise<ReplyOf<'ready'>>((resolveReady, rejectReady) => {
    onReady = resolveReady;
    onStartFailure = rejectReady;
  }).catch(async (err: unknown) => {
    await worker.terminate();
    throw err;
  });
  onStartFailure = undefined;

  return {
    manifest: ready.manifest,
    key: ready.key,
    inputSize: ready.inputSize,
    batch: ready.batch,
    infer(items: readonly InferenceItem[]) {
      if (failure) return Promise.reject(failure);
      const id = nextId++;
      return new Promise((resolveInfer, rejectInfer) => {
        pending.set(id, { resolve: resolveInfer, reject: rejectInfer });
        // Tensors are copied (structured clone), not transferred: preprocessing may hand out views of pooled memory.
        worker.postMessage({ type: 'infer', id, items: [...items] } satisfies ModelThreadRequest);
      });
    },
    async close() {
      if (failure) return;
      const exited = new Promise<void>((r) => worker.once('exit', () => r()));
      worker.postMessage({ type: 'close' } satisfies ModelThreadRequest);
      await Promise.race([exited, new Promise((r) => setTimeout(r, 5_000).unref())]);
      failure ??= new Error(`model ${ready.key} is closed`);
      await worker.terminate();
    },
  };
}

type ReplyOf<T extends ModelThreadReply['type']> = Extract<ModelThreadReply, { type: T }>;
