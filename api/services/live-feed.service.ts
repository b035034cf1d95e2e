/**
 * The page's live updates (GET /v1/live): one LISTEN on `holdfast_live` per API process, shared by every open stream.
 * PostgreSQL's triggers (infra/db/migrations/0024_live_events.sql) notify at commit: a statement's inspections per
 * site, and each lot case's new stage. The listener starts with the first subscriber and closes with the app.
 *
 * NOTIFY is not queued for absent listeners: when the listening connection drops, every open stream is ended, so the
 * pages reconnect and read the Now view again rather than miss what happened meanwhile.
 */
import type pg from 'pg';
import { z } from 'zod';
import { type ChannelListener, createChannelListener } from '../../infra/db/channel-listener';
import { type LiveEvent, LiveDefectSchema } from '../schemas/dashboard.schema';

export const LIVE_CHANNEL = 'holdfast_live';

const NotificationSchema = z.discriminatedUnion('type', [
  z.object({
    type: z.literal('inspections'),
    site: z.string(),
    lines: z.array(z.string()),
    inspections: z.number().int(),
    failed: z.number().int(),
    defects: z.array(LiveDefectSchema),
  }),
  z.object({ type: z.literal('lot-case'), site: z.string(), line: z.string(), lotId: z.string(), stage: z.string() }),
]);

export interface LiveSubscription {
  site: string;
  line?: string;
  /** Called for each event of the site (and line); must not throw. */
  send(event: LiveEvent): void;
  /** The feed can no longer promise every event (its connection dropped, the app closes): end the stream. */
  end(): void;
}

export interface LiveFeed {
  /** Resolves once the shared LISTEN is up (or retrying after a failed first connect); returns the unsubscribe. */
  subscribe(subscription: LiveSubscription): Promise<() => void>;
  /** Open subscriptions, for tests and metrics. */
  subscribers(): number;
  /** Ends every subscription (graceful shutdown: open streams must not hold the server open). */
  endAll(): void;
  close(): Promise<void>;
}

export interface LiveFeedLog {
  warn(obj: object, msg: string): void;
}

/** What one subscriber sees of an event: its site, and with a line only what was on that line. */
export function eventFor(event: LiveEvent, at: { site: string; line?: string }): LiveEvent | undefined {
  if (event.site !== at.site) return undefined;
  if (at.line === undefined) return event;
  if (event.type === 'lot-case') return event.line === at.line ? event : undefined;
  if (!event.lines.includes(at.line)) return undefined;
  return { ...event, defects: event.defects.filter((d) => d.line === at.line) };
}

export function createLiveFeed(opts: { connection: pg.ClientConfig; log: LiveFeedLog }): LiveFeed {
  const subscriptions = new Set<LiveSubscription>();
  let listener: ChannelListener | undefined;
  let started: Promise<void> | undefined;
  let closed = false;

  const endAll = () => {
    for (const s of [...subscriptions]) {
      subscriptions.delete(s);
      s.end();
    }
  };

  const deliver = (msg: pg.Notification) => {
    let parsed: LiveEvent;
    try {
      const result = NotificationSchema.safeParse(JSON.parse(msg.payload ?? ''));
      if (!result.success) throw new Error(result.error.message);
      parsed = result.data;
    } catch (err) {
      opts.log.warn({ err, channel: msg.channel }, 'live notification not understood; dropped');
      return;
    }
    for (const s of subscriptions) {
      const event = eventFor(parsed, s);
      if (event) s.send(event);
    }
  };

  function start(): Promise<void> {
    listener = createChannelListener({
      connection: opts.connection,
      channel: LIVE_CHANNEL,
      onNotification: deliver,
      onListening: () => undefined,
      onProblem: (problem, error, retryInMs) => {
        opts.log.warn({ problem, error, retryInMs }, 'live updates: LISTEN connection problem');
        if (problem === 'connection lost') endAll();
      },
    });
    return listener.start().catch((err: unknown) => {
      // The listener reconnects on its own; streams opened meanwhile get events once it is back.
      opts.log.warn({ err }, 'live updates: LISTEN not up yet; retrying');
    });
  }

  return {
    async subscribe(subscription) {
      if (closed) throw new Error('live feed closed');
      started ??= start();
      await started;
      if (closed) throw new Error('live feed closed');
      subscriptions.add(subscription);
      return () => {
        subscriptions.delete(subscription);
      };
    },
    subscribers: () => subscriptions.size,
    endAll,
    async close() {
      closed = true;
      endAll();
      await listener?.close();
    },
  };
}
