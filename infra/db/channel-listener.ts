/**
 * A dedicated PostgreSQL connection LISTENing on one channel, reconnecting on its own (backoff 250 ms doubling to
 * `maxBackoffMs`) when the connection drops or cannot be opened. NOTIFY is not queued for absent listeners: whatever
 * was notified while no connection listened is lost, so `onListening` runs after every connect, the first included,
 * for the owner to catch up (a poll, a reload).
 */
import pg from 'pg';

export interface ChannelListenerOptions {
  /** Where to connect: usually the pool's own options (`pool.options`). */
  connection: pg.ClientConfig;
  channel: string;
  onNotification: (msg: pg.Notification) => void;
  onListening: () => void | Promise<void>;
  /** A lost connection, a failed connect or a failed catch-up; the listener goes on reconnecting after each. */
  onProblem: (
    problem: 'connection lost' | 'connect failed' | 'catch-up failed',
    error: string,
    retryInMs?: number,
  ) => void;
  maxBackoffMs?: number;
}

export interface ChannelListener {
  /**
   * Connects, LISTENs and runs the first catch-up; rejects when any of them fails (it keeps reconnecting meanwhile,
   * unless closed).
   */
  start(): Promise<void>;
  close(): Promise<void>;
}

export function createChannelListener(opts: ChannelListenerOptions): ChannelListener {
  const maxBackoffMs = opts.maxBackoffMs ?? 10_000;
  let client: pg.Client | undefined;
  let failures = 0;
  let timer: NodeJS.Timeout | undefined;
  let closed = false;

  async function connect(): Promise<void> {
    const c = new pg.Client(opts.connection);
    c.on('notification', opts.onNotification);
    const onLost = (err?: Error) => {
      if (client !== c) return;
      client = undefined;
      c.removeAllListeners('notification');
      void c.end().catch(() => undefined);
      if (closed) return;
      opts.onProblem('connection lost', err?.message ?? 'connection ended');
      reconnectLater();
    };
    c.on('error', onLost);
    c.on('end', () => onLost());
    try {
      await c.connect();
      await c.query(`LISTEN ${opts.channel}`);
    } catch (err) {
      c.removeAllListeners();
      c.on('error', () => undefined);
      await c.end().catch(() => undefined);
      throw err;
    }
    if (closed) {
      await c.end().catch(() => undefined);
      return;
    }
    client = c;
    failures = 0;
  }

  function reconnectLater(): void {
    const delay = Math.min(maxBackoffMs, 250 * 2 ** failures);
    timer = setTimeout(() => {
      connect().then(
        () =>
          Promise.resolve(opts.onListening()).catch((err: unknown) => opts.onProblem('catch-up failed', String(err))),
        (err: unknown) => {
          failures += 1;
          opts.onProblem('connect failed', String(err), delay);
          if (!closed && !client) reconnectLater();
        },
      );
    }, delay);
    timer.unref();
  }

  return {
    async start() {
      try {
        await connect();
      } catch (err) {
        failures += 1;
        if (!closed) reconnectLater();
        throw err;
      }
      await opts.onListening();
    },
    async close() {
      closed = true;
      clearTimeout(timer);
      const current = client;
      client = undefined;
      if (current) {
        current.removeAllListeners('notification');
        await current.end().catch(() => undefined);
      }
    },
  };
}
