/**
 * The reject station's address scheme: the contract between Holdfast's OPC UA client and a line PLC (the simulator in
 * infra/simulators/line-plc implements it). Per station, under Objects/<site>/<line>/<station>/RejectStation:
 *
 *   ns=<index of REJECT_STATION_NAMESPACE_URI>;s=<site>.<line>.<station>.RejectStation.<variable>
 *
 * The namespace index is whatever the server's NamespaceArray assigns (node-opcua gives a registered namespace 2 after
 * its own namespace 1); clients resolve it from the URI once per session, never hard-code it (OPC 10000-3 §8.2.2).
 */
export const REJECT_STATION_NAMESPACE_URI = 'urn:holdfast:line-plc';

export const REJECT_STATION_VARIABLES = {
  /** String, read/write: the part to reject. */
  PartId: 'String',
  /** String, read/write: the inspection event the reject belongs to; the PLC dedupes on it. */
  EventId: 'String',
  /** UInt32, read/write: writing a value different from the current one is one reject command. */
  Command: 'UInt32',
  /** UInt32, read-only: rejects the PLC has accepted (a re-sent EventId is not counted). */
  RejectCount: 'UInt32',
  /** DateTime, read-only: PLC time of the last accepted reject. */
  LastRejectAt: 'DateTime',
} as const;

export type RejectStationVariable = keyof typeof REJECT_STATION_VARIABLES;

export interface StationAddress {
  site: string;
  line: string;
  station: string;
}

/** `<site>.<line>.<station>.RejectStation`: the folder's string identifier, also the prefix of its variables. */
export function rejectStationPath(address: StationAddress): string {
  return `${address.site}.${address.line}.${address.station}.RejectStation`;
}

/** The string identifier (the `s=` part) of one variable. */
export function rejectStationIdentifier(address: StationAddress, variable: RejectStationVariable): string {
  return `${rejectStationPath(address)}.${variable}`;
}

/** The full NodeId string, e.g. `ns=2;s=PLANT1.L1.S1.RejectStation.PartId`. */
export function rejectStationNodeId(
  namespaceIndex: number,
  address: StationAddress,
  variable: RejectStationVariable,
): string {
  return `ns=${namespaceIndex};s=${rejectStationIdentifier(address, variable)}`;
}
