/**
 * OPC UA Call and Read over a session (session.ts), with their failures classified for Temporal's retry decision.
 * Shared by the connectors that drive a device through methods (the vision systems, the line's interlock); each builds
 * its own error through `fail`.
 */
import type { ExternalErrorKind } from '../../../activities/errors';
import type { NodeOpcua } from './node-opcua.driver';
import { TimeoutError, withTimeout, type OpcUaSession } from './session';

/** Why a device call failed: session down, no answer in time, transport, a Bad status, the device's own error. */
export type DeviceCallFailure = 'unavailable' | 'timeout' | 'call-failed' | 'bad-status' | 'device-error';

export type DeviceFail = (
  reason: DeviceCallFailure,
  kind: ExternalErrorKind,
  message: string,
  cause?: unknown,
) => Error;

/** Status codes a later attempt may clear (OPC 10000-4 §7.38); the others mean the request itself is refused. */
const TRANSIENT_STATUS = new Set([
  'BadTimeout',
  'BadTooManyOperations',
  'BadServerHalted',
  'BadCommunicationError',
  'BadConnectionClosed',
  'BadSecureChannelClosed',
  'BadSessionClosed',
  'BadSessionIdInvalid',
  'BadResourceUnavailable',
  'BadOutOfService',
  'BadNoCommunication',
]);

/** Status codes that name a node the server does not have (a wrong address, an unknown system or line). */
const NOT_FOUND_STATUS = new Set(['BadNodeIdUnknown', 'BadMethodInvalid', 'BadNoMatch', 'BadBrowseNameInvalid']);

/** Status codes that say the arguments do not fit the method (a client and device that disagree on the interface). */
const VALIDATION_STATUS = new Set([
  'BadArgumentsMissing',
  'BadTooManyArguments',
  'BadTypeMismatch',
  'BadInvalidArgument',
  'BadOutOfRange',
]);

export function kindOfStatus(status: NodeOpcua.StatusCode): ExternalErrorKind {
  if (TRANSIENT_STATUS.has(status.name)) return 'transient';
  if (NOT_FOUND_STATUS.has(status.name)) return 'not-found';
  if (VALIDATION_STATUS.has(status.name)) return 'validation';
  return 'rejected';
}

/** The session if a request may go out now; else the `unavailable` failure (transient). */
export function usableSession(session: OpcUaSession, fail: DeviceFail, what: string): NodeOpcua.ClientSession {
  const s = session.usable();
  if (s) return s;
  const down = session.down() ?? { forMs: 0, reason: 'reconnecting' };
  throw fail('unavailable', 'transient', `session down for ${down.forMs} ms (${down.reason}); ${what} not sent`);
}

/** Runs one request with a deadline; a timeout or transport failure becomes a transient failure naming `what`. */
export async function request<T>(promise: Promise<T>, timeoutMs: number, fail: DeviceFail, what: string): Promise<T> {
  try {
    return await withTimeout(promise, timeoutMs);
  } catch (err) {
    if (err instanceof TimeoutError) {
      throw fail('timeout', 'transient', `no answer to ${what} within ${timeoutMs} ms (it may still take effect)`);
    }
    throw fail('call-failed', 'transient', `${what} failed: ${(err as Error).message}`, err);
  }
}

/**
 * Calls a method and returns its output arguments' values; a Bad status (of the call or of an input argument) is
 * thrown, classified, naming `what`.
 */
export async function callMethod(
  session: OpcUaSession,
  call: { objectId: NodeOpcua.NodeId; methodId: NodeOpcua.NodeId; inputArguments: NodeOpcua.VariantOptions[] },
  timeoutMs: number,
  fail: DeviceFail,
  what: string,
): Promise<unknown[]> {
  const s = usableSession(session, fail, what);
  const result = await request(s.call(call), timeoutMs, fail, what);
  if (!result.statusCode.isGood()) {
    const bad = result.inputArgumentResults?.findIndex((r) => !r.isGood()) ?? -1;
    const detail = bad >= 0 ? ` (input argument ${bad + 1}: ${result.inputArgumentResults![bad]!.name})` : '';
    throw fail('bad-status', kindOfStatus(result.statusCode), `${what} returned ${result.statusCode.name}${detail}`);
  }
  return (result.outputArguments ?? []).map((v) => v.value as unknown);
}

/** Reads the values of `nodes`; any Bad status is thrown, classified, naming the node. */
export async function readValues(
  session: OpcUaSession,
  nodes: NodeOpcua.NodeId[],
  timeoutMs: number,
  fail: DeviceFail,
  what: string,
): Promise<unknown[]> {
  const s = usableSession(session, fail, what);
  const { AttributeIds } = session.opcua;
  const values = await request(
    s.read(nodes.map((nodeId) => ({ nodeId, attributeId: AttributeIds.Value }))),
    timeoutMs,
    fail,
    what,
  );
  return values.map((value, i) => {
    if (!value.statusCode.isGood()) {
      throw fail(
        'bad-status',
        kindOfStatus(value.statusCode),
        `${what}: read of ${nodes[i]!.toString()} returned ${value.statusCode.name}`,
      );
    }
    return value.value.value as unknown;
  });
}
