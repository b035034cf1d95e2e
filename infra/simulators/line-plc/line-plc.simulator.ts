import { X509Certificate } from 'node:crypto';
import { copyFileSync, mkdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { ConnectorLogger } from '../../connectors/define';
import { loadNodeOpcua, type NodeOpcua } from '../../connectors/opcua/node-opcua.driver';
import {
  REJECT_STATION_NAMESPACE_URI,
  rejectStationIdentifier,
  rejectStationPath,
  type StationAddress,
} from '../../connectors/opcua/reject-station.address';
import {
  MACHINE_VISION_NAMESPACE_URI,
  type AutomaticModeState,
  type VisionState,
} from '../../connectors/opcua/machine-vision.address';
import type { LineAddress } from '../../connectors/opcua/line-control.address';
import { addLineControls, type LineControls, type ReleaseRecord } from './line-control.sim';
import {
  addVisionSystems,
  type VisionCallRecord,
  type VisionFaults,
  type VisionSystemOptions,
  type VisionSystemSnapshot,
} from './vision-system.sim';

export type { ReleaseRecord, VisionCallRecord, VisionFaults, VisionSystemOptions, VisionSystemSnapshot };

export interface LinePlcSimulatorOptions {
  /** TCP port; bound on 127.0.0.1 only (a local simulator, never a plant network). */
  port: number;
  stations: StationAddress[];
  /** External vision systems (OPC 40100 subset) under Objects/VisionSystems/<system>; none by default. */
  visionSystems?: VisionSystemOptions[];
  /**
   * Load the MachineVision NodeSet (about a second more at start): the vision systems' id arguments are then the
   * standard's structures (RecipeIdExternalDataType, RecipeIdInternalDataType) instead of Strings. Default false.
   */
  machineVisionNodeSet?: boolean;
  /** Lines with a release interlock under Objects/<site>/<line>/LineControl; none by default. */
  lineControls?: LineAddress[];
  /** Everything node-opcua writes (PKI: own certificate and key, trusted/rejected client certificates) goes here. */
  dataDir: string;
  log?: ConnectorLogger;
  /** Event ids the PLC remembers per station for dedupe; the oldest is forgotten first. Default 10,000. */
  dedupeWindow?: number;
  /**
   * Client PKI folders on this machine (a connector's `pkiDir`) to exchange certificates with, the embedded default's
   * way of establishing trust: at start the simulator puts its certificate in each `<dir>/trusted/certs`, and trusts a
   * client whose certificate is the one in `<dir>/own/certs`. Any other client certificate is refused (into
   * `<dataDir>/pki/server/rejected`).
   */
  trustedClientPkiDirs?: string[];
  /** Also offer securityMode None (nothing signed or encrypted); logged as a warning at every start. Default false. */
  allowSecurityNone?: boolean;
  /** Called for every Command write, after the PLC handled it (main.ts counts them for Prometheus). */
  onReject?: (record: RejectRecord) => void;
  /** Called for every vision-system method call, after it was handled. */
  onVisionCall?: (record: VisionCallRecord) => void;
  /** Called for every accepted SetRelease of a line's interlock. */
  onRelease?: (record: ReleaseRecord) => void;
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
  /** The simulator's certificate (PEM): what an administrator adds to a client's `trusted/certs`. */
  certificateFile: string;
  port: number;
  namespaceUri: string;
  /** Index of `namespaceUri` in this server's NamespaceArray. */
  namespaceIndex: number;
  /** Every Command write received so far (duplicates included, flagged). A copy. */
  rejects(): RejectRecord[];
  /** The open secure channels' security, as the server negotiated it: `{ securityMode: 'SignAndEncrypt', … }`. */
  channelSecurity(): { securityMode: string; securityPolicy: string }[];
  /** Trusts a client certificate (PEM or DER), as an administrator does on a PLC. */
  trustClient(certificate: Buffer): Promise<void>;
  /** The station's RejectCount as a client would read it. */
  rejectCount(station: StationAddress): number;
  /** A vision system's state as the simulator knows it (the truth a faulty read-back may misreport). */
  visionSystem(system: string): VisionSystemSnapshot;
  /** Every RecipeManagement / Simulation method call so far, in arrival order. A copy. */
  visionCalls(): VisionCallRecord[];
  /** Replaces a vision system's faults (`{}` clears them); the same as calling its Simulation.SetFaults method. */
  setVisionFaults(system: string, faults: VisionFaults): void;
  /** Puts a vision system's state machine in a state (an operator's Halt, an internal Error). */
  setVisionState(system: string, state: VisionState, substate?: AutomaticModeState): void;
  /** The line's interlock as a client reads it; undefined for a line without one. */
  lineRelease(line: LineAddress): { released: boolean; workOrder: string } | undefined;
  /** Every SetRelease call the PLC accepted, with its time. A copy. */
  releases(): ReleaseRecord[];
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
    // Only the clients named by trustedClientPkiDirs (see trustKnownClients) or moved into server/trusted/certs.
    automaticallyAcceptUnknownCertificate: false,
    disableFileWatchers: true,
  });
  trustKnownClients(serverCertificateManager, options.trustedClientPkiDirs ?? [], log);
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
    // None only when asked for (allowSecurityNone). Basic128Rsa15 is left out (deprecated, and its RSA PKCS#1 v1.5
    // decryption is what Node 20's CVE-2023-46809 fix disables).
    securityModes: [
      ...(options.allowSecurityNone ? [MessageSecurityMode.None] : []),
      MessageSecurityMode.Sign,
      MessageSecurityMode.SignAndEncrypt,
    ],
    securityPolicies: [
      ...(options.allowSecurityNone ? [SecurityPolicy.None] : []),
      SecurityPolicy.Basic256Sha256,
      SecurityPolicy.Aes128_Sha256_RsaOaep,
      SecurityPolicy.Aes256_Sha256_RsaPss,
    ],
    allowAnonymous: true,
    isAuditing: false,
    ...(options.machineVisionNodeSet
      ? { nodeset_filename: [opcua.nodesets.standard, opcua.nodesets.machineVision] }
      : {}),
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

  const lineControls: LineControls = addLineControls(
    {
      opcua,
      namespace,
      lineFolder: (line) => folder(folder(objectsFolder, line.site, line.site), `${line.site}.${line.line}`, line.line),
      log,
      onRelease: options.onRelease,
    },
    (options.lineControls ?? []).map((line) => {
      for (const segment of [line.site, line.line]) {
        if (segment.length === 0 || segment.includes('.')) {
          throw new Error(`line-plc: line id segment "${segment}" must be non-empty and contain no "."`);
        }
      }
      return line;
    }),
  );
  // OPC 40100's browse names live in its namespace: the NodeSet's when loaded, else registered here so clients find it
  // in the NamespaceArray.
  const loadedMv = addressSpace.getNamespaceIndex(MACHINE_VISION_NAMESPACE_URI);
  const machineVisionIndex =
    loadedMv >= 0 ? loadedMv : addressSpace.registerNamespace(MACHINE_VISION_NAMESPACE_URI).index;
  const idType = (name: string) => {
    const type = addressSpace.findDataType(name, machineVisionIndex);
    if (!type) throw new Error(`line-plc: the MachineVision NodeSet has no data type ${name}`);
    return type.nodeId;
  };
  const visionSystems = addVisionSystems(
    {
      opcua,
      addressSpace,
      namespace,
      machineVisionIndex,
      recipeIdTypes:
        loadedMv >= 0
          ? { external: idType('RecipeIdExternalDataType'), internal: idType('RecipeIdInternalDataType') }
          : undefined,
      log,
      onCall: options.onVisionCall,
    },
    options.visionSystems ?? [],
  );

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
    visionSystems.dispose();
    await server.shutdown(0).catch(() => undefined);
    throw new Error(`line-plc: cannot listen on 127.0.0.1:${options.port}: ${(err as Error).message}`, { cause: err });
  }

  const certificateFile = join(serverCertificateManager.rootDir, 'own', 'certs', 'certificate.pem');
  for (const dir of options.trustedClientPkiDirs ?? []) {
    const trusted = join(resolve(dir), 'trusted', 'certs');
    mkdirSync(trusted, { recursive: true });
    copyFileSync(certificateFile, join(trusted, 'holdfast-line-plc-simulator.pem'));
  }
  if (options.allowSecurityNone) {
    log?.warn('line-plc: securityMode None is offered: clients may connect with nothing signed or encrypted', {
      port: options.port,
    });
  }

  const endpointUrl = `opc.tcp://127.0.0.1:${options.port}`;
  let stopped: Promise<void> | undefined;

  return {
    endpointUrl,
    certificateFile,
    port: options.port,
    namespaceUri: REJECT_STATION_NAMESPACE_URI,
    namespaceIndex: namespace.index,
    rejects: () => log_.slice(),
    channelSecurity: () =>
      server.endpoints
        .flatMap((endpoint) => endpoint.getChannels())
        .map((channel) => ({
          securityMode: MessageSecurityMode[channel.securityMode] ?? String(channel.securityMode),
          securityPolicy: String(channel.securityPolicy).split('#')[1] ?? String(channel.securityPolicy),
        })),
    trustClient: (certificate) => serverCertificateManager.trustCertificate(new X509Certificate(certificate).raw),
    rejectCount: (address) => stations.get(rejectStationPath(address))?.count ?? 0,
    visionSystem: (system) => visionSystems.snapshot(system),
    visionCalls: () => visionSystems.calls(),
    setVisionFaults: (system, faults) => visionSystems.setFaults(system, faults),
    setVisionState: (system, state, substate) => visionSystems.setState(system, state, substate),
    lineRelease: (line) => lineControls.release(line),
    releases: () => lineControls.releases(),
    stop: () => {
      visionSystems.dispose();
      // shutdown(0): no grace period announced to clients; they see the socket close and start reconnecting.
      stopped ??= server.shutdown(0);
      return stopped;
    },
  };
}

/**
 * Trusts, on its first connection, a client whose certificate is the own certificate of one of `clientPkiDirs`:
 * the client may create that certificate after the simulator started, so the folders are read at each refusal.
 */
function trustKnownClients(
  manager: NodeOpcua.OPCUACertificateManager,
  clientPkiDirs: string[],
  log: ConnectorLogger | undefined,
): void {
  if (clientPkiDirs.length === 0) return;
  const opcua = loadNodeOpcua();
  const original = manager.checkCertificate.bind(manager);
  const check = (chain: Buffer | Buffer[]): Promise<NodeOpcua.StatusCode> => original(chain);
  const known = (leaf: Buffer): boolean =>
    clientPkiDirs.some((dir) => {
      try {
        const pem = readFileSync(join(resolve(dir), 'own', 'certs', 'client_certificate.pem'));
        return new X509Certificate(pem).raw.equals(leaf);
      } catch {
        return false;
      }
    });
  // checkCertificate is what the secure channel asks; only the promise form is used there.
  (manager as { checkCertificate: unknown }).checkCertificate = async (chain: Buffer | Buffer[]) => {
    const status = await check(chain);
    const leaf = Array.isArray(chain) ? chain[0] : chain;
    if (status !== opcua.StatusCodes.BadCertificateUntrusted || !leaf || !known(leaf)) return status;
    await manager.trustCertificate(leaf);
    log?.info('line-plc: trusted the certificate of a local client', { clientPkiDirs });
    return check(chain);
  };
}
