/**
 * A line's release interlock on its PLC over OPC UA: SetRelease (Released and the work order together) and a read of
 * both. One session (session.ts) per PLC; the address scheme is line-control.address.ts. Called from changeover
 * activities, so each call is one attempt and its failure is classified for Temporal's retry decision.
 */
import { z } from 'zod';
import type { ConnectorLogger } from '../define';
import { ExternalSystemError, type ExternalErrorKind } from '../../../activities/errors';
import type { LineInterlockPort } from '../../../activities/ports';
import {
  LINE_CONTROL_NAMESPACE_URI,
  lineControlIdentifier,
  lineControlPath,
  type LineAddress,
} from './line-control.address';
import { callMethod, readValues, type DeviceCallFailure } from './method-call';
import { opcUaSessionSettings, openOpcUaSession, refineOpcUaSecurity } from './session';

const SYSTEM = 'opcua-line-control';

export type LineControlFailureReason = DeviceCallFailure | 'invalid-line' | 'config' | 'connect' | 'health';

export class LineControlError extends ExternalSystemError {
  constructor(
    readonly reason: LineControlFailureReason,
    kind: ExternalErrorKind,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(SYSTEM, kind, message, undefined, options);
  }
}

export const lineControlSettings = {
  kind: z.literal('opcua-line-control').optional(),
  ...opcUaSessionSettings,
  /** Namespace of the LineControl nodes; its index is read from the PLC at each (re)connection. */
  namespaceUri: z.string().min(1).default(LINE_CONTROL_NAMESPACE_URI),
  /** Longest SetRelease waits for the PLC's answer. */
  methodTimeoutMs: z.number().int().positive().max(60_000).default(5_000),
};

export const OpcUaLineControlConfig = z.strictObject(lineControlSettings).superRefine(refineOpcUaSecurity);
export type OpcUaLineControlConfig = z.infer<typeof OpcUaLineControlConfig>;

export interface LineControlClient extends LineInterlockPort {
  healthCheck(): Promise<void>;
  close(): Promise<void>;
}

export async function openOpcUaLineControl(
  rawConfig: z.input<typeof OpcUaLineControlConfig>,
  log: ConnectorLogger,
): Promise<LineControlClient> {
  const parsed = OpcUaLineControlConfig.safeParse(rawConfig);
  if (!parsed.success) {
    const why = parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');
    throw new LineControlError('config', 'validation', `line control config is invalid: ${why}`);
  }
  const config = parsed.data;
  const label = `line control ${config.endpointUrl}`;
  const fail = (reason: LineControlFailureReason, kind: ExternalErrorKind, message: string, cause?: unknown) =>
    new LineControlError(reason, kind, `${label}: ${message}`, cause !== undefined ? { cause } : undefined);

  const session = await openOpcUaSession({
    config,
    log,
    label: 'line control',
    // One application name for the changeover's OPC UA clients: they share a pkiDir, whose certificate names it.
    applicationName: 'HoldfastChangeover',
    clientName: 'holdfast-line-control',
    certificateManagerName: 'line-control-client',
    error: (reason, kind, message, cause) =>
      new LineControlError(reason, kind, message, cause !== undefined ? { cause } : undefined),
  });
  const { resolveNodeId, DataType } = session.opcua;

  const nodeId = (line: LineAddress, member: 'SetRelease' | 'Released' | 'ReleasedWorkOrder' | null) =>
    resolveNodeId(
      `ns=${session.namespaceIndex()};s=${member ? lineControlIdentifier(line, member) : lineControlPath(line)}`,
    );
  const checkLine = (line: LineAddress) => {
    for (const segment of [line.site, line.line]) {
      if (typeof segment !== 'string' || segment.length === 0 || segment.includes('.')) {
        throw fail('invalid-line', 'validation', `line id segment "${String(segment)}" must be non-empty, without "."`);
      }
    }
  };

  return {
    async setRelease(line, state) {
      checkLine(line);
      const what = `SetRelease(${state.released}, "${state.workOrder}") on line ${line.site}/${line.line}`;
      const [error] = await callMethod(
        session,
        {
          objectId: nodeId(line, null),
          methodId: nodeId(line, 'SetRelease'),
          inputArguments: [
            { dataType: DataType.Boolean, value: state.released },
            { dataType: DataType.String, value: state.workOrder },
          ],
        },
        config.methodTimeoutMs,
        fail,
        what,
      );
      const code = Number(error);
      if (code !== 0) throw fail('device-error', 'rejected', `${what} refused by the PLC with error ${code}`);
      log.info(state.released ? 'line released' : 'line interlocked', {
        endpointUrl: config.endpointUrl,
        site: line.site,
        line: line.line,
        workOrder: state.workOrder,
      });
    },

    async readRelease(line) {
      checkLine(line);
      const [released, workOrder] = await readValues(
        session,
        [nodeId(line, 'Released'), nodeId(line, 'ReleasedWorkOrder')],
        config.requestTimeoutMs,
        fail,
        `the interlock read of line ${line.site}/${line.line}`,
      );
      return { released: released === true, workOrder: typeof workOrder === 'string' ? workOrder : '' };
    },

    healthCheck: () => session.healthCheck(),
    close: () => session.close(),
  };
}
