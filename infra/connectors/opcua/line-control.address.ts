/**
 * The release interlock's address scheme on a line PLC: the contract between Holdfast's OPC UA client and the PLC (the
 * simulator in infra/simulators/line-plc implements it), in the same namespace as the reject stations. Per line,
 * under Objects/<site>/<line>/LineControl:
 *
 *   ns=<index of LINE_CONTROL_NAMESPACE_URI>;s=<site>.<line>.LineControl.<member>
 *
 * Released and ReleasedWorkOrder are read-only; they change through the SetRelease method, so both change together in
 * one PLC scan (two separate writes could leave the line released under the previous order's number).
 */
import { REJECT_STATION_NAMESPACE_URI } from './reject-station.address';

export const LINE_CONTROL_NAMESPACE_URI = REJECT_STATION_NAMESPACE_URI;

export const LINE_CONTROL_MEMBERS = {
  /** Boolean, read-only: true lets the line run product. False (the power-on value) keeps it interlocked. */
  Released: 'Boolean',
  /** String, read-only: the work order the line was last released or interlocked for. */
  ReleasedWorkOrder: 'String',
  /** DateTime, read-only: PLC time of the last change of Released or ReleasedWorkOrder. */
  ChangedAt: 'DateTime',
  /** Method (Released Boolean, WorkOrder String) → (Error Int32): 0 OK; < 0 refused by the PLC program. */
  SetRelease: 'Method',
} as const;

export type LineControlMember = keyof typeof LINE_CONTROL_MEMBERS;

export interface LineAddress {
  site: string;
  line: string;
}

/** `<site>.<line>.LineControl`: the object's string identifier, also the prefix of its members. */
export function lineControlPath(address: LineAddress): string {
  return `${address.site}.${address.line}.LineControl`;
}

/** The string identifier (the `s=` part) of one member. */
export function lineControlIdentifier(address: LineAddress, member: LineControlMember): string {
  return `${lineControlPath(address)}.${member}`;
}

/** The SetRelease method's `Error` when the work order is empty. */
export const LINE_CONTROL_ERROR = { ok: 0, emptyWorkOrder: -1 } as const;
