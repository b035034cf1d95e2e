import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { ConnectorLogger } from '../../connectors/define';
import { loadNodeOpcua, type NodeOpcua } from '../../connectors/opcua/node-opcua.driver';
import {
  REJECT_STATION_NAMESPACE_URI,
  rejectStationIdentifier,
  rejectStationPath,
  type StationAddress,
} from '../../connectors/opcua/reject-station.address';

export interface LinePlcSimulatorOptions {
  /** TCP port; bound on 127.0.0.1 only (a local simulator, never a plant network). */
  port: number;
  stations: StationAddress[];
  /** Everything node-opcua writes (PKI: own certificate and key, trusted/rejected client certificates) goes here. */
  dataDir: string;
  log?: ConnectorLogger;
  /** Event ids the PLC remembers per station for dedupe; the oldest is forgotten first. Default 10,000. */
  dedupeWindow?: number;
  /** Called for every Command write, after the PLC handled it (main.ts counts them for Prometheus). */
  onReject?: (record: RejectRecord) => void;
}

/** One Command write the PLC received, in arrival order. */
export interface RejectRecord extends StationAddress {
  partId: string;
  eventId: string;
  /** The Command value the client wrote (its sequence number). */
  command: number;
  /** `process.hrtime.bigint()` when the server handled the write: comparable with a client in the same process. */
  receivedAtHr: bigint;
  receivedAt: Date;
  /** The station's RejectCount after this write. */
  rejectCount: number;
  /** True when the EventId had already been accepted: the PLC ignored this command (a re-sent reject). */
  duplicate: boolean;
}

export interface LinePlcSimulator {
  /** `opc.tcp://127.0.0.1:<port>` */
  endpointUrl: string;
  port: number;
  namespaceUri: string;
  /** Index of `namespaceUri` in this server's NamespaceArray. */
  namespaceIndex: number;
  /** Every Command write received so far (duplicates included, flagged). A copy. */
  rejects(): RejectRecord[];
  /** The station's RejectCount as a client would read it. */
  rejectCount(station: StationAddress): number;
  stop(): Promise<void>;
}

interface StationState {
  address: StationAddress;
  partId: NodeOpcua.UAVariable;
  eventId: NodeOpcua.UAVariable;
  rejectCount: NodeOpcua.UAVariable;
  lastRejectAt: NodeOpcua.UAVariable;
  command: number;
  count: number;
  /** Accepted event ids, oldest first (Set keeps insertion order). */
  seenEventIds: Set<string>;
}

/** OPC UA's DateTime minimum (1601-01-01): what a PLC shows before its first reject. */
const OPCUA_MIN_DATE = new Date(Date.UTC(1601, 0, 1));

/**
 * A simulated line PLC: a real node-opcua server exposing one RejectStation per station (address scheme in
 * infra/connectors/opcua/reject-station.address.ts). The PLC program it imitates: on a Command change, latch PartId and
 * EventId, count the reject unless that EventId was already accepted (a re-sent reject), stamp LastRejectAt.
 */
export async function startLinePlcSimulator(options: LinePlcSimulatorOptions): Promise<LinePlcSimulator> {
  const opcua = loadNodeOpcua();
  const { DataType, StatusCodes, MessageSecurityMode, SecurityPolicy } = opcua;
  const dataDir = resolve(options.dataDir);
  const dedupeWindow = options.dedupeWindow ?? 10_000;
  const log = options.log;

  // node-opcua's default PKI is ~/.config/node-opcua-default (getDefaultCertificateManager); both managers are given
  // folders under dataDir so nothing lands in $HOME or the repository. File watchers off: nobody edits these folders
  // while the simulator runs, and chokidar handles would outlive a test.
  const pkiDir = join(dataDir, 'pki');
  mkdirSync(pkiDir, { recursive: true });
  const serverCertificateManager = new opcua.OPCUACertificateManager({
    name: 'line-plc',
    rootFolder: join(pkiDir, 'server'),
    // A local simulator trusts any client certificate so Sign/SignAndEncrypt work without provisioning.
    automaticallyAcceptUnknownCertificate: true,
    disableFileWatchers: true,
  });
  const userCertificateManager = new opcua.OPCUACertificateManager({
    name: 'line-plc-users',
    rootFolder: join(pkiDir, 'users'),
    automaticallyAcceptUnknownCertificate: false,
    disableFileWatchers: true,
  });

  const server = new opcua.OPCUAServer({
    port: options.port,
    host: '127.0.0.1',
    // The certificate and endpoints name 127.0.0.1, the address clients are given.
    alternateHostname: '127.0.0.1',
    serverCertificateManager,
    userCertificateManager,
    // None is for local development only (no certificate exchange, nothing signed). Sign and SignAndEncrypt stay
    // available with the current policies; Basic128Rsa15 is left out (deprecated, and its RSA PKCS#1 v1.5
    // decryption is what Node 20's CVE-2023-46809 fix disables).
    securityModes: [MessageSecurityMode.None, MessageSecurityMode.Sign, MessageSecurityMode.SignAndEncrypt],
    securityPolicies: [
      SecurityPolicy.None,
      SecurityPolicy.Basic256Sha256,
      SecurityPolicy.Aes128_Sha256_RsaOaep,
      SecurityPolicy.Aes256_Sha256_RsaPss,
    ],
    allowAnonymous: true,
    isAuditing: false,
    buildInfo: { productName: 'Holdfast line PLC simulator', manufacturerName: 'Holdfast' },
    serverInfo: {
      applicationName: { text: 'Holdfast line PLC simulator' },
      productUri: 'urn:holdfast:line-plc-simulator',
    },
  });

  const stations = new Map<string, StationState>();
  const log_: RejectRecord[] = [];

  await server.initialize();
  const addressSpace = server.engine.addressSpace;
  if (!addressSpace) throw new Error('line-plc: node-opcua server has no address space after initialize()');
  const namespace = addressSpace.registerNamespace(REJECT_STATION_NAMESPACE_URI);
  const objectsFolder = addressSpace.rootFolder.objects;
  const folders = new Map<string, NodeOpcua.UAObject>();

  const folder = (parent: NodeOpcua.UAObject, id: string, browseName: string): NodeOpcua.UAObject => {
    let node = folders.get(id);
    if (!node) {
      node = namespace.addFolder(parent, { nodeId: `s=${id}`, browseName });
      folders.set(id, node);
    }
    return node;
  };

  for (const address of options.stations) {
    for (const segment of [address.site, address.line, address.station]) {
      if (segment.length === 0 || segment.includes('.')) {
        throw new Error(`line-plc: station id segment "${segment}" must be non-empty and contain no "."`);
      }
    }
    const path = rejectStationPath(address);
    if (stations.has(path)) continue;
    const siteFolder = folder(objectsFolder, address.site, address.site);
    const lineFolder = folder(siteFolder, `${address.site}.${address.line}`, address.line);
    const stationFolder = folder(lineFolder, `${address.site}.${address.line}.${address.station}`, address.station);
    const rejectFolder = namespace.addObject({
      organizedBy: stationFolder,
      nodeId: `s=${path}`,
      browseName: 'RejectStation',
    });

    const variable = (
      name: 'PartId' | 'EventId' | 'RejectCount' | 'LastRejectAt',
      dataType: NodeOpcua.DataType,
      value: unknown,
      writable: boolean,
    ): NodeOpcua.UAVariable =>
      namespace.addVariable({
        componentOf: rejectFolder,
        nodeId: `s=${rejectStationIdentifier(address, name)}`,
        browseName: name,
        dataType,
        accessLevel: writable ? 'CurrentRead | CurrentWrite' : 'CurrentRead',
        userAccessLevel: writable ? 'CurrentRead | CurrentWrite' : 'CurrentRead',
        value: { dataType, value },
      });

    const state: StationState = {
      address: { site: address.site, line: address.line, station: address.station },
      partId: variable('PartId', DataType.String, '', true),
      eventId: variable('EventId', DataType.String, '', true),
      rejectCount: variable('RejectCount', DataType.UInt32, 0, false),
      lastRejectAt: variable('LastRejectAt', DataType.DateTime, OPCUA_MIN_DATE, false),
      command: 0,
      count: 0,
      seenEventIds: new Set(),
    };

    namespace.addVariable({
      componentOf: rejectFolder,
      nodeId: `s=${rejectStationIdentifier(address, 'Command')}`,
      browseName: 'Command',
      dataType: DataType.UInt32,
      // A getter-backed variable needs a non-zero sampling interval (node-opcua W30); 100 ms is ample for a monitor.
      minimumSamplingInterval: 100,
      accessLevel: 'CurrentRead | CurrentWrite',
      userAccessLevel: 'CurrentRead | CurrentWrite',
      value: {
        get: () => new opcua.Variant({ dataType: DataType.UInt32, value: state.command }),
        // The server applies a WriteRequest's values in order (PartId, EventId, then Command), so PartId and EventId
        // already hold this reject's values here. Synchronous on purpose: this is the latency being measured.
        set: (variant: NodeOpcua.Variant) => {
          const command = variant.value as number;
          if (command === state.command) return StatusCodes.Good; // no edge, no command (PLC semantics)
          state.command = command;
          onCommand(state, command);
          return StatusCodes.Good;
        },
      },
    });
    stations.set(path, state);
  }

  function onCommand(state: StationState, command: number): void {
    const receivedAtHr = process.hrtime.bigint();
    const receivedAt = new Date();
    const partId = String(state.partId.readValue().value.value ?? '');
    const eventId = String(state.eventId.readValue().value.value ?? '');
    const duplicate = state.seenEventIds.has(eventId);
    if (!duplicate) {
      state.seenEventIds.add(eventId);
      if (state.seenEventIds.size > dedupeWindow) {
        const oldest = state.seenEventIds.values().next().value;
        if (oldest !== undefined) state.seenEventIds.delete(oldest);
      }
      state.count += 1;
      state.rejectCount.setValueFromSource({ dataType: DataType.UInt32, value: state.count });
      state.lastRejectAt.setValueFromSource({ dataType: DataType.DateTime, value: receivedAt });
    }
    const record: RejectRecord = {
      ...state.address,
      partId,
      eventId,
      command,
      receivedAtHr,
      receivedAt,
      rejectCount: state.count,
      duplicate,
    };
    log_.push(record);
    options.onReject?.(record);
    // One per failed part: detail for LOG_LEVEL_LINE_PLC=debug.
    log?.debug?.(duplicate ? 'line-plc reject ignored (event already accepted)' : 'line-plc reject', {
      station: rejectStationPath(state.address),
      partId,
      eventId,
      command,
      rejectCount: state.count,
    });
  }

  try {
    await server.start();
  } catch (err) {
    await server.shutdown(0).catch(() => undefined);
    throw new Error(`line-plc: cannot listen on 127.0.0.1:${options.port}: ${(err as Error).message}`, { cause: err });
  }

  const endpointUrl = `opc.tcp://127.0.0.1:${options.port}`;
  let stopped: Promise<void> | undefined;

  return {
    endpointUrl,
    port: options.port,
    namespaceUri: REJECT_STATION_NAMESPACE_URI,
    namespaceIndex: namespace.index,
    rejects: () => log_.slice(),
    rejectCount: (address) => stations.get(rejectStationPath(address))?.count ?? 0,
    stop: () => {
      // shutdown(0): no grace period announced to clients; they see the socket close and start reconnecting.
      stopped ??= server.shutdown(0);
      return stopped;
    },
  };
}
