import { mkdtempSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadNodeOpcua, type NodeOpcua } from '../../infra/connectors/opcua/node-opcua.driver';
import { rejectStationNodeId, type StationAddress } from '../../infra/connectors/opcua/reject-station.address';
import {
  openOpcUaRejectStation,
  RejectStationError,
  type RejectStationPort,
} from '../../infra/connectors/opcua/reject-station';
import { openOpcUaRejectStationInThread } from '../../infra/connectors/opcua/threaded-reject-station';
import { findFreePort } from '../../infra/local/managed-process';
import { type LinePlcSimulator, startLinePlcSimulator } from '../../infra/simulators/line-plc/line-plc.simulator';
import { eventually } from '../support/eventually';
import { captureLog } from '../support/quiet-log';

// Real node-opcua on both sides: the simulated line PLC is an OPCUAServer on a free loopback port.

const S1: StationAddress = { site: 'PLANT1', line: 'L1', station: 'S1' };
const S2: StationAddress = { site: 'PLANT1', line: 'L1', station: 'S2' };
const S3: StationAddress = { site: 'PLANT1', line: 'L2', station: 'S1' };

/** A second, independent OPC UA session: reads the PLC's variables the way an HMI would. */
interface PlcMonitor {
  read(nodeId: string): Promise<NodeOpcua.DataValue>;
  write(nodeId: string, dataType: NodeOpcua.DataType, value: unknown): Promise<NodeOpcua.StatusCode>;
  close(): Promise<void>;
}

async function openMonitor(endpointUrl: string, pkiDir: string): Promise<PlcMonitor> {
  const opcua = loadNodeOpcua();
  const certificateManager = new opcua.OPCUACertificateManager({
    rootFolder: pkiDir,
    automaticallyAcceptUnknownCertificate: true,
    disableFileWatchers: true,
  });
  const client = opcua.OPCUAClient.create({
    clientCertificateManager: certificateManager,
    securityMode: opcua.MessageSecurityMode.SignAndEncrypt,
    securityPolicy: opcua.SecurityPolicy.Basic256Sha256,
    endpointMustExist: false,
    connectionStrategy: { maxRetry: 0 },
  });
  await client.connect(endpointUrl);
  const session = await client.createSession();
  return {
    read: (nodeId) => session.read({ nodeId, attributeId: opcua.AttributeIds.Value }),
    write: (nodeId, dataType, value) =>
      session.write({ nodeId, attributeId: opcua.AttributeIds.Value, value: { value: { dataType, value } } }),
    close: async () => {
      await session.close();
      await client.disconnect();
      await certificateManager.dispose();
    },
  };
}

let dataDir: string;

/** The client PKI folders the simulated PLC trusts (as npm start does with the reject station's); not the strict one. */
const trusted = () =>
  ['client-pki', 'client-pki-2', 'client-pki-secure', 'monitor-pki', 'client-pki-thread', 'client-pki-thread-2'].map(
    (dir) => join(dataDir, dir),
  );

beforeAll(() => {
  dataDir = mkdtempSync(join(tmpdir(), 'holdfast-opcua-'));
});

afterAll(() => {
  rmSync(dataDir, { recursive: true, force: true });
});

describe('reject station against the simulated line PLC', () => {
  let sim: LinePlcSimulator | undefined;
  let station: RejectStationPort | undefined;
  let monitor: PlcMonitor | undefined;
  const log = captureLog();

  beforeAll(async () => {
    const port = await findFreePort();
    sim = await startLinePlcSimulator({
      port,
      stations: [S1, S2, S3],
      dataDir: join(dataDir, 'plc'),
      trustedClientPkiDirs: trusted(),
    });
    station = await openOpcUaRejectStation({ endpointUrl: sim.endpointUrl, pkiDir: join(dataDir, 'client-pki') }, log);
    monitor = await openMonitor(sim.endpointUrl, join(dataDir, 'monitor-pki'));
  }, 120_000);

  afterAll(async () => {
    await monitor?.close();
    await station?.close();
    await sim?.stop();
  });

  const nodeId = (address: StationAddress, variable: Parameters<typeof rejectStationNodeId>[2]) =>
    rejectStationNodeId(sim!.namespaceIndex, address, variable);

  test('a reject reaches the PLC with its part and event, and RejectCount increments', async () => {
    const countBefore = (await monitor!.read(nodeId(S1, 'RejectCount'))).value.value as number;
    const rejectsBefore = sim!.rejects().length;

    const ack = await station!.signalReject({ ...S1, partId: 'P-100', eventId: 'EV-100' });

    expect(ack.writtenAt).toBeInstanceOf(Date);
    expect(ack.latencyMs).toBeGreaterThan(0);
    const received = sim!.rejects().slice(rejectsBefore);
    expect(received).toHaveLength(1);
    expect(received[0]).toMatchObject({ ...S1, partId: 'P-100', eventId: 'EV-100', duplicate: false });
    expect((await monitor!.read(nodeId(S1, 'RejectCount'))).value.value).toBe(countBefore + 1);
    expect((await monitor!.read(nodeId(S1, 'PartId'))).value.value).toBe('P-100');
    expect((await monitor!.read(nodeId(S1, 'EventId'))).value.value).toBe('EV-100');
    const lastRejectAt = (await monitor!.read(nodeId(S1, 'LastRejectAt'))).value.value as Date;
    expect(lastRejectAt.getTime()).toBe(received[0]!.receivedAt.getTime());
    // The other station is untouched.
    expect(sim!.rejectCount(S2)).toBe(0);
  });

  test('a re-sent eventId reaches the PLC again but counts once', async () => {
    const countBefore = sim!.rejectCount(S1);
    const rejectsBefore = sim!.rejects().length;

    await station!.signalReject({ ...S1, partId: 'P-200', eventId: 'EV-200' });
    await station!.signalReject({ ...S1, partId: 'P-200', eventId: 'EV-200' });

    expect(
      sim!
        .rejects()
        .slice(rejectsBefore)
        .map((r) => [r.eventId, r.duplicate]),
    ).toEqual([
      ['EV-200', false],
      ['EV-200', true],
    ]);
    expect(sim!.rejectCount(S1)).toBe(countBefore + 1);
    expect((await monitor!.read(nodeId(S1, 'RejectCount'))).value.value).toBe(countBefore + 1);
  });

  test('rejects sent at once to one station each arrive with their own part and event', async () => {
    const rejectsBefore = sim!.rejects().length;
    const signals = Array.from({ length: 20 }, (_, i) => ({ ...S2, partId: `P-3${i}`, eventId: `EV-3${i}` }));

    await Promise.all(signals.map((s) => station!.signalReject(s)));

    const received = sim!.rejects().slice(rejectsBefore);
    expect(received.map((r) => [r.partId, r.eventId, r.duplicate])).toEqual(
      signals.map((s) => [s.partId, s.eventId, false]),
    );
    expect(sim!.rejectCount(S2)).toBe(20);
  });

  test('rejects for several stations decided together go out together, and a bad one fails alone', async () => {
    const rejectsBefore = sim!.rejects().length;
    const counts = [S1, S3].map((st) => sim!.rejectCount(st));
    const unknown = { site: 'PLANT1', line: 'L9', station: 'S1' };
    // As a model batch's verdicts arrive: in one turn, several stations, a second part for one of them, one bad station.
    const outcomes = await Promise.allSettled([
      station!.signalReject({ ...S1, partId: 'P-500', eventId: 'EV-500' }),
      station!.signalReject({ ...S3, partId: 'P-501', eventId: 'EV-501' }),
      station!.signalReject({ ...unknown, partId: 'P-502', eventId: 'EV-502' }),
      station!.signalReject({ ...S1, partId: 'P-503', eventId: 'EV-503' }),
    ]);

    expect(outcomes.map((o) => o.status)).toEqual(['fulfilled', 'fulfilled', 'rejected', 'fulfilled']);
    const failure = (outcomes[2] as PromiseRejectedResult).reason as RejectStationError;
    expect(failure).toMatchObject({ kind: 'not-found', reason: 'bad-status' });
    expect(failure.message).toContain(`${nodeId(unknown, 'PartId')} for part P-502 returned BadNodeIdUnknown`);
    const received = sim!.rejects().slice(rejectsBefore);
    expect(received.map((r) => [r.line, r.station, r.partId, r.eventId]).sort()).toEqual([
      ['L1', 'S1', 'P-500', 'EV-500'],
      ['L1', 'S1', 'P-503', 'EV-503'],
      ['L2', 'S1', 'P-501', 'EV-501'],
    ]);
    // One station's rejects keep their order.
    expect(received.filter((r) => r.line === 'L1').map((r) => r.partId)).toEqual(['P-500', 'P-503']);
    expect([S1, S3].map((st) => sim!.rejectCount(st))).toEqual([counts[0]! + 2, counts[1]! + 1]);
  });

  test('an unknown station fails with the node and the status, and nothing is recorded', async () => {
    const rejectsBefore = sim!.rejects().length;
    const unknown = { site: 'PLANT1', line: 'L9', station: 'S1' };

    const err = await station!.signalReject({ ...unknown, partId: 'P-400', eventId: 'EV-400' }).then(
      () => undefined,
      (e: unknown) => e,
    );

    expect(err).toBeInstanceOf(RejectStationError);
    expect(err).toMatchObject({ kind: 'not-found', reason: 'bad-status' });
    expect((err as Error).message).toContain(`${nodeId(unknown, 'PartId')} for part P-400 returned BadNodeIdUnknown`);
    expect(sim!.rejects()).toHaveLength(rejectsBefore);
  });

  test('the PLC side: RejectCount is read-only and rewriting the current Command is no command', async () => {
    const status = await monitor!.write(nodeId(S1, 'RejectCount'), loadNodeOpcua().DataType.UInt32, 999);
    expect(status.name).toMatch(/^Bad(NotWritable|UserAccessDenied)$/);

    const rejectsBefore = sim!.rejects().length;
    const command = (await monitor!.read(nodeId(S1, 'Command'))).value.value as number;
    const same = await monitor!.write(nodeId(S1, 'Command'), loadNodeOpcua().DataType.UInt32, command);
    expect(same.name).toBe('Good');
    expect(sim!.rejects()).toHaveLength(rejectsBefore);
  });

  test('close() ends the session: no socket or timer left, and later rejects fail', async () => {
    // Loading node-opcua and the shared sessions above are the baseline; only what this port opens must go away.
    const resources = () => {
      const info = process.getActiveResourcesInfo();
      return {
        sockets: info.filter((r) => r === 'TCPSocketWrap').length,
        timers: info.filter((r) => r === 'Timeout').length,
      };
    };
    const before = resources();
    const own = await openOpcUaRejectStation(
      { endpointUrl: sim!.endpointUrl, pkiDir: join(dataDir, 'client-pki-2') },
      captureLog(),
    );
    await own.signalReject({ ...S1, partId: 'P-500', eventId: 'EV-500' });
    expect(resources().sockets).toBeGreaterThan(before.sockets);

    await own.close();
    await own.close(); // idempotent

    // node-opcua answers its own CloseSecureChannel after a 100 ms timer (the server never replies to CLO), and the
    // in-process simulator closes its side of a SignAndEncrypt channel on its own schedule, so the count may lag; the
    // counts are process-wide, so one of the baseline's own timers may also have fired meanwhile (fewer is fine).
    // Anything above the baseline after 10 s is a leak.
    await eventually(
      'sockets and timers back to the baseline',
      resources,
      (now) => now.sockets <= before.sockets && now.timers <= before.timers,
      { timeoutMs: 10_000 },
    );
    await expect(own.signalReject({ ...S1, partId: 'P-501', eventId: 'EV-501' })).rejects.toThrow(
      /session down .*closed/,
    );
  });

  test('by default the session is signed and encrypted (Basic256Sha256), as the PLC sees it, with no warning', () => {
    expect(sim!.channelSecurity()).toContainEqual({ securityMode: 'SignAndEncrypt', securityPolicy: 'Basic256Sha256' });
    expect(sim!.channelSecurity().map((c) => c.securityMode)).not.toContain('None');
    expect(log.lines.filter((l) => /securityMode None|any server certificate/.test(l.msg))).toEqual([]);
  });

  test('the simulated PLC refuses securityMode None unless it is configured to offer it', async () => {
    await expect(
      openOpcUaRejectStation(
        {
          endpointUrl: sim!.endpointUrl,
          securityMode: 'None',
          pkiDir: join(dataDir, 'client-pki'),
          connectTimeoutMs: 3_000,
        },
        captureLog(),
      ),
    ).rejects.toMatchObject({ reason: 'connect' });
  });

  test('SignAndEncrypt with Basic256Sha256 works against the same PLC', async () => {
    const rejectsBefore = sim!.rejects().length;
    const secure = await openOpcUaRejectStation(
      {
        endpointUrl: sim!.endpointUrl,
        securityMode: 'SignAndEncrypt',
        securityPolicy: 'Basic256Sha256',
        pkiDir: join(dataDir, 'client-pki-secure'),
        acceptUnknownServerCertificate: true,
      },
      captureLog(),
    );
    try {
      await secure.signalReject({ ...S2, partId: 'P-600', eventId: 'EV-600' });
      await secure.healthCheck();
    } finally {
      await secure.close();
    }
    expect(sim!.rejects().slice(rejectsBefore)).toMatchObject([{ ...S2, partId: 'P-600', eventId: 'EV-600' }]);
  });
  test('the default (SignAndEncrypt) refuses an untrusted PLC, naming the folders, until it is moved from rejected/ to trusted/certs', async () => {
    const pkiDir = join(dataDir, 'client-pki-strict');
    const config = { endpointUrl: sim!.endpointUrl, pkiDir, connectTimeoutMs: 20_000 };

    await expect(openOpcUaRejectStation(config, captureLog())).rejects.toMatchObject({
      reason: 'connect',
      message: expect.stringMatching(
        new RegExp(`BadCertificateUntrusted.*move its certificate from ${pkiDir}/rejected to ${pkiDir}/trusted/certs`),
      ),
    });
    const rejected = readdirSync(join(pkiDir, 'rejected')).filter((f) => f.endsWith('.pem'));
    expect(rejected).toHaveLength(1);
    renameSync(join(pkiDir, 'rejected', rejected[0]!), join(pkiDir, 'trusted', 'certs', rejected[0]!));
    // And on the PLC's side, the client's certificate (a plant PLC: its engineering tool or web page).
    await sim!.trustClient(readFileSync(join(pkiDir, 'own', 'certs', 'client_certificate.pem')));

    const trusting = await openOpcUaRejectStation(config, captureLog());
    try {
      await trusting.signalReject({ ...S1, partId: 'P-650', eventId: 'EV-650' });
    } finally {
      await trusting.close();
    }
    expect(sim!.rejects().at(-1)).toMatchObject({ partId: 'P-650', eventId: 'EV-650' });
  });
});

describe('securityMode None, only where both sides are configured for it', () => {
  test('the PLC offers it and the client uses it, each logging a warning at start', async () => {
    const plcLog = captureLog();
    const clientLog = captureLog();
    const sim = await startLinePlcSimulator({
      port: await findFreePort(),
      stations: [S1],
      dataDir: join(dataDir, 'plc-none'),
      allowSecurityNone: true,
      log: plcLog,
    });
    try {
      const station = await openOpcUaRejectStation(
        { endpointUrl: sim.endpointUrl, securityMode: 'None', pkiDir: join(dataDir, 'client-pki-none') },
        clientLog,
      );
      try {
        await station.signalReject({ ...S1, partId: 'P-700', eventId: 'EV-700' });
        expect(sim.channelSecurity()).toEqual([{ securityMode: 'None', securityPolicy: 'None' }]);
      } finally {
        await station.close();
      }
    } finally {
      await sim.stop();
    }
    expect(plcLog.lines).toContainEqual(
      expect.objectContaining({ level: 'warn', msg: expect.stringContaining('securityMode None is offered') }),
    );
    expect(clientLog.lines).toContainEqual(
      expect.objectContaining({ level: 'warn', msg: expect.stringContaining('securityMode None') }),
    );
  });
});

describe('reject station when the PLC goes away', () => {
  let sim: LinePlcSimulator | undefined;
  let station: RejectStationPort | undefined;
  const log = captureLog();

  afterAll(async () => {
    await station?.close();
    await sim?.stop();
  });

  test('opening fails with a clear error when no PLC listens', async () => {
    const port = await findFreePort();
    await expect(
      openOpcUaRejectStation(
        { endpointUrl: `opc.tcp://127.0.0.1:${port}`, pkiDir: join(dataDir, 'client-pki'), connectTimeoutMs: 1_500 },
        captureLog(),
      ),
    ).rejects.toMatchObject({
      reason: 'connect',
      message: expect.stringContaining(`reject station opc.tcp://127.0.0.1:${port}: no session within 1500 ms`),
    });
  });

  test('server stops: rejects fail fast; server restarts on the same port: the client reconnects by itself', async () => {
    const port = await findFreePort();
    const plcDir = join(dataDir, 'plc-outage');
    sim = await startLinePlcSimulator({ port, stations: [S1], dataDir: plcDir, trustedClientPkiDirs: trusted() });
    station = await openOpcUaRejectStation(
      {
        endpointUrl: sim.endpointUrl,
        pkiDir: join(dataDir, 'client-pki'),
        reconnect: { initialDelayMs: 100, maxDelayMs: 500 },
      },
      log,
    );
    await station.signalReject({ ...S1, partId: 'P-700', eventId: 'EV-700' });

    await sim.stop();
    sim = undefined;

    // Fail fast: an error within 2 s, not a reject parked until the PLC returns.
    for (const partId of ['P-701', 'P-702']) {
      const started = Date.now();
      const outcome = await station.signalReject({ ...S1, partId, eventId: `EV-${partId}` }).then(
        () => 'written',
        (e: unknown) => e,
      );
      expect(Date.now() - started).toBeLessThan(2_000);
      expect(outcome).toBeInstanceOf(RejectStationError);
      expect(outcome).toMatchObject({
        kind: 'transient',
        reason: expect.stringMatching(/^(unavailable|write-failed)$/),
      });
    }
    await expect(station.healthCheck()).rejects.toThrow(/session down/);
    expect(log.lines.some((l) => l.msg === 'reject station connection lost')).toBe(true);

    sim = await startLinePlcSimulator({ port, stations: [S1], dataDir: plcDir, trustedClientPkiDirs: trusted() });
    await eventually('reconnection to the restarted PLC', () => station!.healthCheck().then(() => true), {
      timeoutMs: 30_000,
    });

    await station.signalReject({ ...S1, partId: 'P-703', eventId: 'EV-703' });
    // The restarted PLC saw only the reject sent after reconnection: none of the failed ones was replayed.
    expect(sim.rejects().map((r) => r.partId)).toEqual(['P-703']);
    expect(log.lines.some((l) => l.msg === 'reject station reconnected')).toBe(true);
  }, 90_000);
});

describe('reject station on a thread of its own (as the inference worker runs it)', () => {
  let sim: LinePlcSimulator | undefined;
  let station: RejectStationPort | undefined;
  const log = captureLog();

  beforeAll(async () => {
    sim = await startLinePlcSimulator({
      port: await findFreePort(),
      stations: [S1, S2],
      dataDir: join(dataDir, 'plc-t'),
      trustedClientPkiDirs: trusted(),
    });
    station = await openOpcUaRejectStationInThread(
      { endpointUrl: sim.endpointUrl, pkiDir: join(dataDir, 'client-pki-thread') },
      log,
    );
  }, 120_000);

  afterAll(async () => {
    await station?.close();
    await sim?.stop();
  });

  test("a reject reaches the PLC; its latency runs from the caller's verdict; the thread's log lines reach the log", async () => {
    const rejectsBefore = sim!.rejects().length;
    const decidedAt = process.hrtime.bigint() - 50_000_000n; // the verdict, 50 ms ago
    const ack = await station!.signalReject({ ...S1, partId: 'P-T1', eventId: 'EV-T1' }, { decidedAt });
    expect(ack.writtenAt).toBeInstanceOf(Date);
    expect(ack.latencyMs).toBeGreaterThanOrEqual(50);
    expect(ack.latencyMs).toBeLessThan(50 + 5_000);
    expect(sim!.rejects().slice(rejectsBefore)).toMatchObject([{ ...S1, partId: 'P-T1', eventId: 'EV-T1' }]);
    expect(log.lines.some((l) => l.level === 'info' && l.meta?.endpointUrl === sim!.endpointUrl)).toBe(true);
    await station!.healthCheck();
  });

  test('a failure crosses the thread as the same RejectStationError, reason and kind; the others are written', async () => {
    const unknown = { site: 'PLANT1', line: 'L9', station: 'S1' };
    const outcomes = await Promise.allSettled([
      station!.signalReject({ ...S1, partId: 'P-T2', eventId: 'EV-T2' }),
      station!.signalReject({ ...unknown, partId: 'P-T3', eventId: 'EV-T3' }),
      station!.signalReject({ ...S2, partId: 'P-T4', eventId: 'EV-T4' }),
    ]);
    expect(outcomes.map((o) => o.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    const failure = (outcomes[1] as PromiseRejectedResult).reason as RejectStationError;
    expect(failure).toBeInstanceOf(RejectStationError);
    expect(failure).toMatchObject({ kind: 'not-found', reason: 'bad-status', system: 'opcua-reject-station' });
    expect(failure.message).toContain('for part P-T3 returned BadNodeIdUnknown');
  });

  test('close() ends the thread; later rejects fail as unavailable', async () => {
    const own = await openOpcUaRejectStationInThread(
      { endpointUrl: sim!.endpointUrl, pkiDir: join(dataDir, 'client-pki-thread-2') },
      captureLog(),
    );
    await own.signalReject({ ...S2, partId: 'P-T5', eventId: 'EV-T5' });
    await own.close();
    await own.close(); // idempotent
    await expect(own.signalReject({ ...S2, partId: 'P-T6', eventId: 'EV-T6' })).rejects.toMatchObject({
      reason: 'unavailable',
    });
    expect(sim!.rejects().some((r) => r.partId === 'P-T6')).toBe(false);
  });

  test('opening fails with the same clear error when no PLC listens', async () => {
    const port = await findFreePort();
    await expect(
      openOpcUaRejectStationInThread(
        {
          endpointUrl: `opc.tcp://127.0.0.1:${port}`,
          pkiDir: join(dataDir, 'client-pki-thread'),
          connectTimeoutMs: 1_500,
        },
        captureLog(),
      ),
    ).rejects.toMatchObject({ reason: 'connect', message: expect.stringContaining('no session within 1500 ms') });
  });
});

test('a reject thread that dies is started again; rejects fail fast as unavailable meanwhile', async () => {
  const log = captureLog();
  const station = await openOpcUaRejectStationInThread(
    { endpointUrl: 'opc.tcp://127.0.0.1:4840', pkiDir: join(dataDir, 'crashing-thread') },
    log,
    { threadEntry: join(__dirname, '../support/crashing-reject-thread.ts'), restartDelayMs: 100 },
  );
  try {
    const signal = { ...S1, partId: 'P-C1', eventId: 'EV-C1' };
    await expect(station.signalReject(signal)).rejects.toMatchObject({
      reason: 'unavailable',
      message: expect.stringContaining('reject thread stopped'),
    });
    // Every refusal while the thread restarts must be `unavailable`: kept and checked below, because eventually()
    // would take a failed expectation inside the read for "not yet".
    const refusals: unknown[] = [];
    const ack = await eventually(
      'a reject written by the restarted thread',
      () =>
        station.signalReject(signal).catch((err: unknown) => {
          refusals.push(err);
          return undefined;
        }),
      { timeoutMs: 10_000, intervalMs: 50 },
    );
    for (const refusal of refusals) expect(refusal).toMatchObject({ reason: 'unavailable' });
    expect(ack?.writtenAt).toBeInstanceOf(Date);
    expect(log.lines.map((l) => [l.level, l.msg])).toEqual(
      expect.arrayContaining([
        ['error', 'reject thread stopped; starting it again'],
        ['info', 'reject thread restarted'],
      ]),
    );
  } finally {
    await station.close();
  }
  await expect(station.signalReject({ ...S1, partId: 'P-C2', eventId: 'EV-C2' })).rejects.toMatchObject({
    reason: 'unavailable',
  });
}, 60_000);
