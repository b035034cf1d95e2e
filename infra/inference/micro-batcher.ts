/**
 * Collects single items into batches: a batch runs when it is full or `maxWaitMs` after its first item, whichever
 * comes first. At most `maxConcurrent` batches run at once; items arriving meanwhile wait and form the next batch,
 * so batches grow with load instead of piling up (what makes batched inference and batched inserts pay).
 */
export interface MicroBatcher<I, O> {
  submit(item: I): Promise<O>;
  /** Runs what is queued and waits for every running batch. */
  drain(): Promise<void>;
}

export interface MicroBatcherOptions<I, O> {
  maxSize: number;
  maxWaitMs: number;
  maxConcurrent?: number;
  /** Must return one output per input, in order; a throw fails every item of the batch. */
  run(items: I[]): Promise<O[]>;
}

interface Pending<I, O> {
  item: I;
  resolve(out: O): void;
  reject(err: unknown): void;
}

export function createMicroBatcher<I, O>(opts: MicroBatcherOptions<I, O>): MicroBatcher<I, O> {
  const maxConcurrent = opts.maxConcurrent ?? 1;
  let queue: Pending<I, O>[] = [];
  let timer: NodeJS.Timeout | undefined;
  let running = 0;
  const inFlight = new Set<Promise<void>>();

  const launch = () => {
    if (timer) {
      clearTimeout(timer);
      timer = undefined;
    }
    while (queue.length > 0 && running < maxConcurrent) {
      const batch = queue.slice(0, opts.maxSize);
      queue = queue.slice(batch.length);
      running += 1;
      const done = runBatch(batch).finally(() => {
        running -= 1;
        inFlight.delete(done);
        // Whatever queued up while this batch ran goes at once: it has already waited.
        if (queue.length > 0) launch();
      });
      inFlight.add(done);
    }
  };

  const runBatch = async (batch: Pending<I, O>[]) => {
    try {
      const out = await opts.run(batch.map((p) => p.item));
      if (out.length !== batch.length) throw new Error(`batch of ${batch.length} returned ${out.length} results`);
      batch.forEach((p, i) => p.resolve(out[i] as O));
    } catch (err) {
      for (const p of batch) p.reject(err);
    }
  };

  return {
    submit(item) {
      return new Promise<O>((resolve, reject) => {
        queue.push({ item, resolve, reject });
        if (queue.length >= opts.maxSize) launch();
        else if (!timer && running < maxConcurrent) timer = setTimeout(launch, opts.maxWaitMs);
      });
    },
    async drain() {
      launch();
      while (inFlight.size > 0 || queue.length > 0) {
        await Promise.all([...inFlight]);
        if (queue.length > 0) launch();
      }
    },
  };
}
