/**
 * Helpers shared by the connector contracts.
 *
 * What a connector leaves behind after close(). Node's own pools and ours unref idle keep-alive sockets, so neither
 * process._getActiveHandles() nor process.getActiveResourcesInfo() lists them; every client socket is announced on the
 * `net.client.socket` diagnostics channel when it is created, TLS included, so the contract watches that instead and
 * asks each socket the connector opened whether it is still open.
 */
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import type { ClientRequest } from 'node:http';
import type { Socket } from 'node:net';
import { ExternalSystemError } from '../../activities/errors';
import type { ConnectorInstance } from '../../infra/connectors/define';
import { eventually } from '../support/eventually';

const CHANNEL = 'net.client.socket';

export interface SocketWatch {
  /** Sockets created since the watch began that are still open to `port` (or still connecting). */
  openTo(port: number): number;
  stop(): void;
}

/** Watches every client socket this process creates from now on. Create it before opening the connector. */
export function watchClientSockets(): SocketWatch {
  const sockets: Socket[] = [];
  const onSocket = (message: unknown) => sockets.push((message as { socket: Socket }).socket);
  subscribe(CHANNEL, onSocket);
  return {
    openTo: (port) => sockets.filter((s) => !s.destroyed && (s.connecting || s.remotePort === port)).length,
    stop: () => unsubscribe(CHANNEL, onSocket),
  };
}

export interface RequestWatch {
  /** The requests sent to the port since the watch began or since the last take(), as `METHOD /path`; clears them. */
  take(): string[];
  stop(): void;
}

/**
 * Watches the HTTP requests this process sends to `port` from now on. Node announces every request made with
 * node:http or node:https on the `http.client.request.start` diagnostics channel, whatever client is built on them.
 */
export function watchHttpRequests(port: number): RequestWatch {
  let seen: string[] = [];
  const onRequest = (message: unknown) => {
    const request = (message as { request: ClientRequest }).request;
    const url = new URL(request.path, `${request.protocol}//${String(request.getHeader('host'))}`);
    if (Number(url.port) === port) seen.push(`${request.method} ${url.pathname}`);
  };
  subscribe('http.client.request.start', onRequest);
  return {
    take: () => {
      const taken = seen;
      seen = [];
      return taken;
    },
    stop: () => unsubscribe('http.client.request.start', onRequest),
  };
}

/**
 * The HTTP requests to `port` of a fresh create made with `lookupFirst: true` (its look-up, then the create), then of
 * another fresh create made with `lookupFirst: false`. `create` makes a create with a key of its own each time.
 */
export async function requestsOfCreates(
  port: number,
  create: (lookupFirst: boolean) => Promise<unknown>,
): Promise<{ lookedUp: string[]; direct: string[] }> {
  const watch = watchHttpRequests(port);
  try {
    await create(true);
    const lookedUp = watch.take();
    await create(false);
    return { lookedUp, direct: watch.take() };
  } finally {
    watch.stop();
  }
}

/** Timers that keep the process alive (unref'd ones do not, and are not counted). */
export function refTimers(): number {
  return process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
}

/** What `attempt` threw; fails the test unless it is an ExternalSystemError (the one error connectors throw). */
export async function externalError(attempt: Promise<unknown>): Promise<ExternalSystemError> {
  const outcome = await attempt.then(
    (value: unknown) => ({ value }),
    (err: unknown) => ({ err }),
  );
  if (!('err' in outcome)) throw new Error(`expected an ExternalSystemError, got ${JSON.stringify(outcome.value)}`);
  expect(outcome.err).toBeInstanceOf(ExternalSystemError);
  return outcome.err as ExternalSystemError;
}

/** What every sandbox offers the contract, whatever the connector's role. */
export interface ContractSandbox {
  /** The port the system listens on: the connector's sockets to it must be gone after close(). */
  port: number;
  /** The system answers every call as unavailable (HTTP 503, or the vendor's equivalent) until clearFaults(). */
  outage(): Promise<void>;
  /** Ends every fault armed by this sandbox. Run after each test. */
  clearFaults(): Promise<void>;
}

export interface ContractSetup<Sandbox extends ContractSandbox, Port> {
  /** Starts the sandbox (or reaches it) before the suite. */
  start(): Promise<Sandbox>;
  /** Opens a new instance of the connector under test against the sandbox. The contract closes it. */
  connect(sandbox: Sandbox): Promise<ConnectorInstance<Port>>;
  /** After the suite, once every instance is closed. */
  stop(): Promise<void>;
}

export interface ConnectorUnderContract<Sandbox, Port> {
  readonly sandbox: Sandbox;
  /** The instance the suite shares. */
  readonly connector: ConnectorInstance<Port>;
  /** A new instance, closed with the others after the suite. */
  connect(): Promise<ConnectorInstance<Port>>;
}

/**
 * What every role's contract does alike, registered in the calling describe(): the sandbox and the shared instance
 * around the suite (faults cleared after each test, every instance closed at the end), the health check, and the
 * close check. `calls` makes one read and one create on an instance, the same each time it is called (the close check
 * runs it on the shared instance first, so whatever the sandbox and the process pool is warm and only the new
 * instance's sockets and timers are measured, then on a new instance, then once more after close()).
 */
export function connectorUnderContract<Sandbox extends ContractSandbox, Port>(
  system: string,
  setup: ContractSetup<Sandbox, Port>,
  calls: (instance: ConnectorInstance<Port>, under: ConnectorUnderContract<Sandbox, Port>) => Promise<unknown>,
): ConnectorUnderContract<Sandbox, Port> {
  let sandbox: Sandbox | undefined;
  let shared: ConnectorInstance<Port> | undefined;
  const opened: ConnectorInstance<Port>[] = [];
  const under: ConnectorUnderContract<Sandbox, Port> = {
    get sandbox() {
      if (!sandbox) throw new Error("the contract's sandbox is not started");
      return sandbox;
    },
    get connector() {
      if (!shared) throw new Error("the contract's connector is not open");
      return shared;
    },
    async connect() {
      const instance = await setup.connect(under.sandbox);
      opened.push(instance);
      return instance;
    },
  };

  beforeAll(async () => {
    sandbox = await setup.start();
    shared = await under.connect();
  });
  afterEach(async () => {
    await sandbox?.clearFaults();
  });
  afterAll(async () => {
    await Promise.allSettled(opened.map((c) => c.close()));
    await setup.stop();
  });

  describe('health', () => {
    it(`passes its health check, and fails it as transient while the ${system} is unavailable`, async () => {
      await expect(under.connector.healthCheck()).resolves.not.toThrow();
      await under.sandbox.outage();

      const err = await externalError(under.connector.healthCheck());

      expect(err.kind).toBe('transient');
    });
  });

  describe('close', () => {
    it('releases every socket and timer, and later calls fail as transient', async () => {
      const port = under.sandbox.port;
      await calls(under.connector, under);
      const timersBefore = refTimers();
      const sockets = watchClientSockets();
      try {
        const own = await under.connect();
        await own.healthCheck();
        await calls(own, under);
        expect(sockets.openTo(port)).toBeGreaterThan(0);

        await own.close();
        await own.close();

        await eventually(
          'every socket and timer released after close()',
          () => ({ open: sockets.openTo(port), timers: refTimers(), timersBefore }),
          (state) => state.open === 0 && state.timers <= timersBefore,
          { timeoutMs: 3_000 },
        );
        const after = await externalError(calls(own, under));
        expect(after.kind).toBe('transient');
      } finally {
        sockets.stop();
      }
    });
  });

  return under;
}
