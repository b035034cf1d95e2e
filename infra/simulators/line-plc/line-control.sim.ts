/**
 * The line's release interlock on the simulated PLC (README.md, "Release interlock"): per line, Released and
 * ReleasedWorkOrder, changed together by the SetRelease method; every call is recorded with its time. Address scheme
 * in infra/connectors/opcua/line-control.address.ts, shared with the client.
 */
import type { ConnectorLogger } from '../../connectors/define';
import type { NodeOpcua, NodeOpcuaModule } from '../../connectors/opcua/node-opcua.driver';
import {
  LINE_CONTROL_ERROR,
  lineControlIdentifier,
  lineControlPath,
  type LineAddress,
} from '../../connectors/opcua/line-control.address';

/** One SetRelease call the PLC accepted, in arrival order. */
export interface ReleaseRecord extends LineAddress {
  released: boolean;
  workOrder: string;
  /** False when the call set what the line already had (recorded all the same: the caller asked). */
  changed: boolean;
  at: Date;
}

export interface LineControls {
  /** The line's interlock as a client reads it; undefined for a line without one. */
  release(line: LineAddress): { released: boolean; workOrder: string } | undefined;
  /** Every accepted SetRelease call so far. A copy. */
  releases(): ReleaseRecord[];
}

interface LineState {
  address: LineAddress;
  released: boolean;
  workOrder: string;
  releasedNode: NodeOpcua.UAVariable;
  workOrderNode: NodeOpcua.UAVariable;
  changedAtNode: NodeOpcua.UAVariable;
}

export interface LineControlsContext {
  opcua: NodeOpcuaModule;
  namespace: NodeOpcua.Namespace;
  /** The line's folder, Objects/<site>/<line> (created once, shared with the reject stations). */
  lineFolder(address: LineAddress): NodeOpcua.UAObject;
  log?: ConnectorLogger | undefined;
  /** Called for every accepted SetRelease (main.ts counts them for Prometheus). */
  onRelease?: ((record: ReleaseRecord) => void) | undefined;
}

/** OPC UA's DateTime minimum: ChangedAt before the first change. */
const OPCUA_MIN_DATE = new Date(Date.UTC(1601, 0, 1));

/** Adds Objects/<site>/<line>/LineControl per line: interlocked (Released false) at power-on. */
export function addLineControls(ctx: LineControlsContext, lines: LineAddress[]): LineControls {
  const { opcua, namespace, log } = ctx;
  const { DataType, StatusCodes, Variant } = opcua;
  const states = new Map<string, LineState>();
  const history: ReleaseRecord[] = [];

  for (const address of lines) {
    const path = lineControlPath(address);
    if (states.has(path)) continue;
    const object = namespace.addObject({
      organizedBy: ctx.lineFolder(address),
      nodeId: `s=${path}`,
      browseName: 'LineControl',
    });
    const variable = (
      member: 'Released' | 'ReleasedWorkOrder' | 'ChangedAt',
      dataType: NodeOpcua.DataType,
      value: unknown,
    ) =>
      namespace.addVariable({
        componentOf: object,
        nodeId: `s=${lineControlIdentifier(address, member)}`,
        browseName: member,
        dataType,
        // Read-only: the PLC program changes both together through SetRelease.
        accessLevel: 'CurrentRead',
        userAccessLevel: 'CurrentRead',
        value: { dataType, value },
      });
    const state: LineState = {
      address: { site: address.site, line: address.line },
      released: false,
      workOrder: '',
      releasedNode: variable('Released', DataType.Boolean, false),
      workOrderNode: variable('ReleasedWorkOrder', DataType.String, ''),
      changedAtNode: variable('ChangedAt', DataType.DateTime, OPCUA_MIN_DATE),
    };
    states.set(path, state);

    const method = namespace.addMethod(object, {
      nodeId: `s=${lineControlIdentifier(address, 'SetRelease')}`,
      browseName: 'SetRelease',
      inputArguments: [
        { name: 'Released', dataType: DataType.Boolean, valueRank: -1 },
        { name: 'WorkOrder', dataType: DataType.String, valueRank: -1 },
      ],
      outputArguments: [{ name: 'Error', dataType: DataType.Int32, valueRank: -1 }],
      executable: true,
      userExecutable: true,
    });
    // Two parameters: node-opcua tells an async method from a callback one by its arity.
    method.bindMethod(async (args: NodeOpcua.Variant[], _context: NodeOpcua.ISessionContext) => {
      const released = Boolean(args[0]?.value);
      const workOrder = String(args[1]?.value ?? '');
      const error = (value: number) => ({
        statusCode: StatusCodes.Good,
        outputArguments: [new Variant({ dataType: DataType.Int32, value })],
      });
      if (workOrder === '') return error(LINE_CONTROL_ERROR.emptyWorkOrder);
      const changed = released !== state.released || workOrder !== state.workOrder;
      const at = new Date();
      state.released = released;
      state.workOrder = workOrder;
      if (changed) {
        state.releasedNode.setValueFromSource({ dataType: DataType.Boolean, value: released });
        state.workOrderNode.setValueFromSource({ dataType: DataType.String, value: workOrder });
        state.changedAtNode.setValueFromSource({ dataType: DataType.DateTime, value: at });
      }
      const record: ReleaseRecord = { ...state.address, released, workOrder, changed, at };
      history.push(record);
      ctx.onRelease?.(record);
      log?.info(released ? 'line-plc: line released' : 'line-plc: line interlocked', {
        line: path,
        workOrder,
        changed,
      });
      return error(LINE_CONTROL_ERROR.ok);
    });
  }

  return {
    release(line) {
      const s = states.get(lineControlPath(line));
      return s ? { released: s.released, workOrder: s.workOrder } : undefined;
    },
    releases: () => history.slice(),
  };
}
