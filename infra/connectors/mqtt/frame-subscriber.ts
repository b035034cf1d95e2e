/**
 * Receives camera frames over MQTT with at-least-once delivery that survives a worker crash: a frame is
 * acknowledged to the broker (PUBACK) only after `onFrame` has resolved, i.e. after the worker stored its result.
 * A worker that dies earlier gets the frame again from the broker, which keeps it in the persistent session. Other
 * streams that need the same delivery subscribe through it with a topic `filter` (the MES's production events).
 *
 * Protocol references: MQTT 3.1.1 (OASIS, 2014) http://docs.oasis-open.org/mqtt/mqtt/v3.1.1/os/mqtt-v3.1.1-os.html
 * and MQTT 5.0 (OASIS, 2019) https://docs.oasis-open.org/mqtt/mqtt/v5.0/os/mqtt-v5.0-os.html; section numbers
 * below are 3.1.1's unless marked v5.
 *
 * How the ack is held with MQTT.js 5.16. MQTT.js processes incoming packets one at a time and sends a QoS 1
 * PUBACK from the callback of `client.handleMessage(packet, callback)` (its documented backpressure hook); passing
 * an error to that callback skips the PUBACK and lets the next packet through. This subscriber always does so, runs
 * `onFrame` concurrently (up to `maxInFlight`), and sends each PUBACK itself when the frame and every frame
 * received before it on the same connection are done. MQTT.js has no public "send PUBACK" call, so that one write
 * goes through the client's internal `_sendPacket`, as MQTT.js's own handlers do (`sendPuback` below).
 * `customHandleAcks` is no alternative: it exists for MQTT 5 only, and holding its callback stalls every later
 * packet (PINGRESP included) until the frame is done, one frame at a time.
 *
 * Backpressure (MQTT 3.1.1, the default): at most `maxInFlight` frames are started and not yet acknowledged. At
 * the limit the subscriber stops taking packets from MQTT.js; the socket is then not read, and TCP flow control
 * stops the broker. Mosquitto also limits unacknowledged QoS 1 messages per client with `max_inflight_messages`
 * (3.1.1 has no way for the client to say so); aedes has no such window and relies on TCP alone. With MQTT 5
 * (`protocolVersion: 5`) the CONNECT carries Receive Maximum = `maxInFlight` (v5 §3.1.2.11.3), so the broker itself
 * never sends more than that many unacknowledged frames.
 */
import type { IPublishPacket, MqttClient } from 'mqtt';
import { frameSubscription } from '../../vision/frame.schema';
import type { ConnectorLogger } from '../define';
import {
  createMqttClient,
  describeMqttError,
  endClient,
  firstConnect,
  type MqttAuth,
  type MqttProtocolVersion,
} from './mqtt.client';

export interface FrameMessage {
  topic: string;
  payload: Buffer;
  /** process.hrtime.bigint() when the frame was taken from the connection: the start of frame → result latency. */
  receivedAt: bigint;
  /** The broker set DUP: it sent this frame before without getting our PUBACK (§3.3.1.1). */
  redelivered: boolean;
}

/**
 * The subscription: every station's frames under a prefix, or any other topic filter whose messages need the same
 * delivery (the MES's production events, production-event-subscriber.ts).
 */
export type SubscriptionTopics =
  | {
      /** Topic prefix; the subscription is `<prefix>/+/+/+/frames`. */
      prefix: string;
      filter?: never;
    }
  | {
      /** An MQTT topic filter, subscribed as given. */
      filter: string;
      prefix?: never;
    };

export type FrameSubscriberOptions = SubscriptionTopics & {
  url: string;
  /** The broker login (and TLS material) to connect with. */
  auth?: MqttAuth;
  /** Fixed per worker: the broker keeps the session (subscription + unacknowledged frames) under this id. */
  clientId: string;
  /** Names the client in log lines. Default `frame subscriber`. */
  role?: string;
  /** Frames started and not yet acknowledged, at most. Default 64. */
  maxInFlight?: number;
  /**
   * Resolves once the frame's outcome is durable (result stored, or the frame recorded as rejected). Rejects only
   * for infrastructure failures (PostgreSQL down); the frame is then retried with capped backoff, its PUBACK held.
   * Bad frames must resolve, never reject. May run again for a frame it already handled (after a crash or
   * reconnect): it must be idempotent by the frame's id.
   */
  onFrame: (msg: FrameMessage) => Promise<void>;
  log: ConnectorLogger;
  /** Default 4 (MQTT 3.1.1), which both aedes and Mosquitto speak; 5 adds Receive Maximum and session expiry. */
  protocolVersion?: MqttProtocolVersion;
  /**
   * MQTT 5 only: how long the broker keeps the session after a disconnect (v5 §3.1.2.11.2). 3.1.1 sessions last
   * until the broker expires them (Mosquitto: `persistent_client_expiration`, default never). Default 7 days.
   */
  sessionExpirySeconds?: number;
  keepaliveSeconds?: number;
  reconnectPeriodMs?: number;
  /** Backoff between retries of a failing `onFrame`: doubles from `initialMs` up to `maxMs`. Default 200 ms … 10 s. */
  retry?: { initialMs?: number; maxMs?: number };
  /** How long `openFrameSubscriber` waits for the first connection and subscription. Default 30 s. */
  connectTimeoutMs?: number;
};

export interface FrameSubscriberStats {
  /** Frames handed to onFrame (a redelivered frame whose earlier attempt was still known is not counted again). */
  started: number;
  /** PUBACKs sent. */
  acknowledged: number;
  /** Frames the broker marked DUP (aedes 1.2 does not set DUP on redelivery; Mosquitto does). */
  redelivered: number;
  /** Redelivered frames matched to their attempt from the previous connection instead of running onFrame again. */
  rejoined: number;
  /** Failed onFrame attempts that were retried. */
  retries: number;
  /** Started and not yet acknowledged. */
  inFlight: number;
}

export interface FrameSubscriber {
  stats(): FrameSubscriberStats;
  /** Connected to the broker now (MQTT.js reconnects by itself; false while it does). */
  connected(): boolean;
  /**
   * Stops taking frames, waits up to `graceMs` (default 5 s) for running `onFrame` calls so finished frames are
   * acknowledged, then disconnects. Unfinished frames are never acknowledged: the broker redelivers them to the
   * next subscriber with this clientId. `force` skips the wait and drops the socket without DISCONNECT, as a crash
   * would.
   */
  close(opts?: { force?: boolean; graceMs?: number }): Promise<void>;
}

/** Persistent-session MQTT 5 default: a worker may be down over a weekend without the broker forgetting it. */
const DEFAULT_SESSION_EXPIRY_SECONDS = 7 * 24 * 3600;
/** A frame orphaned by a lost connection and finished meanwhile waits this long for its redelivery, then is forgotten. */
const ORPHAN_TTL_MS = 60_000;

/** Passed to MQTT.js's handleMessage callback: go on with the next packet, but send no PUBACK (see the top). */
const PUBACK_DEFERRED = new Error('PUBACK deferred until the frame is stored');

type FrameState = 'running' | 'done' | 'abandoned';

interface InFlightFrame {
  topic: string;
  payload: Buffer;
  receivedAt: bigint;
  redelivered: boolean;
  /** Packet identifier on the connection it arrived on; absent for QoS 0 (nothing to acknowledge). */
  messageId?: number;
  state: FrameState;
  /** When its connection closed before the PUBACK (then it waits for redelivery in `orphans`). */
  orphanedAt?: number;
}

/**
 * Connects with a persistent session (Clean Session = 0, §3.1.2.4) under a fixed clientId, subscribes at QoS 1 to
 * every station's frames and calls `onFrame` per frame. Resolves once connected and subscribed.
 */
export async function openFrameSubscriber(opts: FrameSubscriberOptions): Promise<FrameSubscriber> {
  const maxInFlight = opts.maxInFlight ?? 64;
  if (!Number.isInteger(maxInFlight) || maxInFlight < 1 || maxInFlight > 65_535) {
    throw new Error(
      `maxInFlight must be an integer from 1 to 65535 (MQTT's Receive Maximum range), got ${maxInFlight}`,
    );
  }
  const retryInitialMs = opts.retry?.initialMs ?? 200;
  const retryMaxMs = opts.retry?.maxMs ?? 10_000;
  const filter = opts.filter ?? frameSubscription(opts.prefix);
  const role = opts.role ?? 'frame subscriber';
  const log = opts.log;
  const meta = { clientId: opts.clientId, filter };

  const client = createMqttClient({
    url: opts.url,
    auth: opts.auth,
    clientId: opts.clientId,
    clean: false,
    protocolVersion: opts.protocolVersion,
    properties: {
      sessionExpiryInterval: opts.sessionExpirySeconds ?? DEFAULT_SESSION_EXPIRY_SECONDS,
      receiveMaximum: maxInFlight,
    },
    keepaliveSeconds: opts.keepaliveSeconds,
    reconnectPeriodMs: opts.reconnectPeriodMs,
    role,
    log,
  });

  /** Frames of the current connection in arrival order: PUBACKs go out in this order (§4.6, MQTT-4.6.0-2). */
  let ackQueue: InFlightFrame[] = [];
  /** Frames whose connection closed before their PUBACK; the broker resends them on the resumed session (§4.4). */
  let orphans: InFlightFrame[] = [];
  /** Frames still running whose session the broker has dropped: they only occupy a slot until they settle. */
  let detachedRunning = 0;
  /** QoS 0 frames (a publisher that sent QoS 0) running: nothing to acknowledge, but they occupy a slot. */
  let qos0Running = 0;
  /** A packet MQTT.js is waiting on while the window is full (MQTT.js hands over one packet at a time). */
  let stalled: { packet: IPublishPacket; receivedAt: bigint; release: (err?: Error) => void } | undefined;
  let closing = false;
  /** Between a CONNACK and the connection's 'close'. */
  let connectionOpen = false;
  const stats = { started: 0, acknowledged: 0, redelivered: 0, rejoined: 0, retries: 0 };
  const wakeRetries = new Set<() => void>();
  const settledWaiters = new Set<() => void>();

  const runningOrphans = () => orphans.filter((f) => f.state === 'running').length;
  const inFlight = () => ackQueue.length + runningOrphans() + detachedRunning + qos0Running;
  const running = () =>
    ackQueue.filter((f) => f.state === 'running').length + runningOrphans() + detachedRunning + qos0Running;

  // MQTT.js calls this for every PUBLISH after emitting 'message'; its callback sends the PUBACK (QoS 1) and lets
  // the next packet in. Assigning the method is MQTT.js's documented way to take over message handling.
  client.handleMessage = (packet, callback) => {
    const receivedAt = process.hrtime.bigint();
    if (packet.dup) stats.redelivered += 1;
    // Closing: not started, not acknowledged; the broker keeps it for the next subscriber with this clientId.
    // Connection gone: MQTT.js may still hand over packets it parsed from the dead socket; the broker resends
    // them on the next connection, where their packet identifiers are valid again.
    if (closing || !connectionOpen) {
      callback(PUBACK_DEFERRED);
      return;
    }
    if (adoptRedelivery(packet)) {
      callback(PUBACK_DEFERRED);
      return;
    }
    if (inFlight() >= maxInFlight) {
      stalled = { packet, receivedAt, release: callback };
      return;
    }
    start(packet, receivedAt);
    callback(packet.qos > 0 ? PUBACK_DEFERRED : undefined);
  };

  /**
   * A frame resent after a reconnect (DUP, same topic and payload) whose earlier attempt is still running or already
   * done joins the new connection's ack queue instead of running onFrame twice at the same time.
   */
  function adoptRedelivery(packet: IPublishPacket): boolean {
    if (packet.qos === 0 || orphans.length === 0) return false;
    const payload = toBuffer(packet.payload);
    const index = orphans.findIndex((f) => f.topic === packet.topic && f.payload.equals(payload));
    if (index < 0) return false;
    const [frame] = orphans.splice(index, 1) as [InFlightFrame];
    frame.messageId = packet.messageId;
    frame.orphanedAt = undefined;
    stats.rejoined += 1;
    ackQueue.push(frame);
    flushAcks();
    return true;
  }

  function start(packet: IPublishPacket, receivedAt: bigint): void {
    const frame: InFlightFrame = {
      topic: packet.topic,
      payload: toBuffer(packet.payload),
      receivedAt,
      redelivered: packet.dup,
      messageId: packet.qos > 0 ? packet.messageId : undefined,
      state: 'running',
    };
    stats.started += 1;
    if (frame.messageId !== undefined) ackQueue.push(frame);
    else qos0Running += 1;
    void run(frame);
  }

  async function run(frame: InFlightFrame): Promise<void> {
    const msg: FrameMessage = {
      topic: frame.topic,
      payload: frame.payload,
      receivedAt: frame.receivedAt,
      redelivered: frame.redelivered,
    };
    let delayMs = retryInitialMs;
    for (let attempt = 1; ; attempt += 1) {
      try {
        await Promise.resolve().then(() => opts.onFrame(msg));
        frame.state = 'done';
        break;
      } catch (err) {
        if (closing) {
          frame.state = 'abandoned';
          break;
        }
        stats.retries += 1;
        log.warn('frame handler failed; retrying with the PUBACK held', {
          ...meta,
          topic: frame.topic,
          attempt,
          retryInMs: delayMs,
          error: err instanceof Error ? err.message : String(err),
        });
        await sleepUnlessClosing(delayMs);
        delayMs = Math.min(delayMs * 2, retryMaxMs);
        if (closing) {
          frame.state = 'abandoned';
          break;
        }
      }
    }
    settle(frame);
  }

  function settle(frame: InFlightFrame): void {
    if (frame.messageId === undefined) {
      qos0Running -= 1;
    } else if (ackQueue.includes(frame)) {
      flushAcks();
    } else if (orphans.includes(frame)) {
      // Stays until its redelivery (then acknowledged at once) or ORPHAN_TTL_MS; an abandoned one just goes.
      if (frame.state === 'abandoned') orphans = orphans.filter((f) => f !== frame);
    } else {
      detachedRunning -= 1;
    }
    admitStalled();
    for (const wake of settledWaiters) wake();
  }

  /** Sends PUBACKs for the finished head of the queue, in arrival order; stops at the first unfinished frame. */
  function flushAcks(): void {
    while (ackQueue[0]?.state === 'done' && client.connected) {
      const frame = ackQueue.shift()!;
      sendPuback(client, frame.messageId!, opts.protocolVersion ?? 4);
      stats.acknowledged += 1;
    }
    admitStalled();
  }

  function admitStalled(): void {
    if (!stalled || closing || inFlight() >= maxInFlight) return;
    const { packet, receivedAt, release } = stalled;
    stalled = undefined;
    start(packet, receivedAt);
    release(packet.qos > 0 ? PUBACK_DEFERRED : undefined);
  }

  function sleepUnlessClosing(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        wakeRetries.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      wakeRetries.add(wake);
    });
  }

  // A PUBACK must go out on the connection its PUBLISH came in on: packet identifiers are per session and reused
  // once acknowledged (§2.3.1), so a late PUBACK on a new connection could acknowledge a different frame.
  client.on('close', () => {
    connectionOpen = false;
    const now = Date.now();
    for (const frame of ackQueue) frame.orphanedAt = now;
    orphans.push(...ackQueue);
    ackQueue = [];
    // The stalled packet was never started; MQTT.js drops the old connection's packet queue.
    stalled?.release(PUBACK_DEFERRED);
    stalled = undefined;
  });

  let subscribed = false;
  client.on('connect', (connack) => {
    connectionOpen = true;
    const now = Date.now();
    if (!connack.sessionPresent) {
      // A new session (first start, expired, or a broker that lost its state): nothing will be redelivered.
      if (orphans.length > 0) {
        log.warn('broker has no session for this client: unacknowledged frames will not be redelivered', {
          ...meta,
          frames: orphans.length,
        });
      }
      detachedRunning += runningOrphans();
      orphans = [];
    } else {
      orphans = orphans.filter((f) => f.state === 'running' || now - (f.orphanedAt ?? now) < ORPHAN_TTL_MS);
    }
    // Renewed on every CONNACK, from here only: a resumed session keeps it, a new one needs it (§3.8).
    client.subscribe(filter, { qos: 1 }, (err, granted) => {
      if (err) {
        log.error('frame subscription failed', { ...meta, error: describeMqttError(err) });
        return;
      }
      const qos = granted?.[0]?.qos;
      if (qos !== 1) {
        // 0x80 (128) is a refusal (§3.9.3); QoS 0 would mean no redelivery at all.
        log.error('broker did not grant the frame subscription at QoS 1', { ...meta, grantedQos: qos });
        return;
      }
      if (!subscribed) log.info(`${role} subscribed`, { ...meta, maxInFlight });
      subscribed = true;
      for (const wake of settledWaiters) wake();
    });
  });

  try {
    await firstConnect(client, opts.connectTimeoutMs ?? 30_000, `${role} ${opts.clientId}`);
    await waitUntil(() => subscribed, opts.connectTimeoutMs ?? 30_000, `subscription to ${filter} (SUBACK with QoS 1)`);
  } catch (err) {
    await endClient(client, { force: true });
    throw err;
  }

  function waitUntil(done: () => boolean, timeoutMs: number, what: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = () => {
        if (!done()) return;
        cleanup();
        resolve();
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`${what} not done within ${timeoutMs} ms`));
      }, timeoutMs);
      const cleanup = () => {
        clearTimeout(timer);
        settledWaiters.delete(check);
      };
      settledWaiters.add(check);
      check();
    });
  }

  let closed: Promise<void> | undefined;
  return {
    stats: () => ({ ...stats, inFlight: inFlight() }),
    connected: () => client.connected,
    close({ force = false, graceMs = 5_000 } = {}) {
      closed ??= (async () => {
        closing = true;
        stalled?.release(PUBACK_DEFERRED);
        stalled = undefined;
        if (!force) {
          // Failed frames stop retrying now; frames still in onFrame may finish and be acknowledged meanwhile.
          for (const wake of wakeRetries) wake();
          await waitUntil(() => running() === 0, graceMs, 'frame handlers').catch(() => {
            log.warn('frame handlers still running at close; their frames stay unacknowledged', {
              ...meta,
              running: running(),
            });
          });
        }
        await endClient(client, { force });
        for (const wake of wakeRetries) wake();
      })();
      return closed;
    },
  };
}

/** MQTT.js types the payload as Buffer | string; over TCP it is always a Buffer. */
function toBuffer(payload: Buffer | string): Buffer {
  return typeof payload === 'string' ? Buffer.from(payload, 'utf8') : payload;
}

/** The shape of MQTT.js's internal packet writer (lib/client.ts `_sendPacket`), used by its own handlers too. */
interface PacketWriter {
  _sendPacket(
    packet: { cmd: 'puback'; messageId: number; reasonCode?: number },
    cb?: (err?: Error) => void,
    cbStorePut?: () => void,
    noStore?: boolean,
  ): void;
}

/**
 * PUBACK for `messageId` on the current connection (§3.4). Called only while connected: MQTT.js would otherwise
 * queue it for the next connection, where the identifier may already name another frame. noStore: a PUBACK is
 * never resent (§4.4).
 */
function sendPuback(client: MqttClient, messageId: number, protocolVersion: MqttProtocolVersion): void {
  const writer = client as unknown as PacketWriter;
  // v5 §3.4.2.1: Reason Code 0x00 (Success) may be omitted; 3.1.1 has no reason code.
  writer._sendPacket(
    { cmd: 'puback', messageId, ...(protocolVersion === 5 ? { reasonCode: 0 } : {}) },
    undefined,
    undefined,
    true,
  );
}
