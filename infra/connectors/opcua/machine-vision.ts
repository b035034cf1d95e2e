/**
 * External vision systems over OPC UA for Machine Vision (OPC 40100-1): the recipe switch of a changeover. One session
 * (session.ts) per server; each vision system on it is found by browse path, its RecipeManagement methods called and
 * its VisionStateMachine read. Not a hot path: a changeover calls it a few times per station, from an activity that
 * Temporal retries, so each call is one attempt and its failure is classified (README.md, "Vision systems").
 */
import { z } from 'zod';
import type { ConnectorLogger } from '../define';
import { ExternalSystemError, type ExternalErrorKind } from '../../../activities/errors';
import type { VisionSystemPort, VisionSystemState } from '../../../activities/ports';
import type { NodeOpcua } from './node-opcua.driver';
import { MACHINE_VISION_NAMESPACE_URI, MV, PREPARED_RECIPE, VISION_SYSTEMS_FOLDER } from './machine-vision.address';
import { callMethod, kindOfStatus, readValues, request, usableSession, type DeviceCallFailure } from './method-call';
import { REJECT_STATION_NAMESPACE_URI } from './reject-station.address';
import { opcUaSessionSettings, openOpcUaSession, refineOpcUaSecurity } from './session';

const SYSTEM = 'opcua-machine-vision';

/** Why a vision-system call failed, beside the session's own reasons (`config`, `connect`, `health`). */
export type VisionFailureReason = DeviceCallFailure | 'not-ready' | 'config' | 'connect' | 'health';

/** An ExternalSystemError with a reason; `error` is the vision system's own code when it answered one. */
export class VisionSystemError extends ExternalSystemError {
  constructor(
    readonly reason: VisionFailureReason,
    kind: ExternalErrorKind,
    message: string,
    options?: { cause?: unknown; error?: number },
  ) {
    super(SYSTEM, kind, message, undefined, options?.cause ? { cause: options.cause } : undefined);
    if (options?.error !== undefined) this.error = options.error;
  }
  readonly error?: number;
}

export const machineVisionSettings = {
  /** Accepted so the block under `connectors:` in temporal.yaml can be passed as is. */
  kind: z.literal('opcua-machine-vision').optional(),
  ...opcUaSessionSettings,
  /** The vendor's namespace: the folders on the way to the vision systems and the systems' own browse names. */
  namespaceUri: z.string().min(1).default(REJECT_STATION_NAMESPACE_URI),
  /** OPC 40100's namespace, where RecipeManagement, PrepareRecipe, VisionStateMachine… are named. */
  machineVisionNamespaceUri: z.string().min(1).default(MACHINE_VISION_NAMESPACE_URI),
  /** Browse names (vendor namespace) from the Objects folder to the folder holding the vision systems. */
  visionSystemsPath: z.array(z.string().min(1)).default([VISION_SYSTEMS_FOLDER]),
  /** Longest a RecipeManagement method call waits for its answer (a system may prepare before answering). */
  methodTimeoutMs: z.number().int().positive().max(300_000).default(10_000),
  /** Longest prepareRecipe waits for the state machine to reach Ready after an accepted PrepareRecipe. */
  prepareTimeoutMs: z.number().int().positive().max(600_000).default(30_000),
  /** How often the state is read while waiting for Ready. */
  statePollMs: z.number().int().positive().max(10_000).default(100),
};

export const OpcUaMachineVisionConfig = z.strictObject(machineVisionSettings).superRefine(refineOpcUaSecurity);
export type OpcUaMachineVisionConfig = z.infer<typeof OpcUaMachineVisionConfig>;

/** The port plus what its owner needs. */
export interface MachineVisionClient extends VisionSystemPort {
  healthCheck(): Promise<void>;
  close(): Promise<void>;
}

interface SystemNodes {
  recipeManagement: NodeOpcua.NodeId;
  prepareRecipe: NodeOpcua.NodeId;
  unprepareRecipe: NodeOpcua.NodeId;
  currentState: NodeOpcua.NodeId;
  automaticModeState: NodeOpcua.NodeId;
  externalRecipeId: NodeOpcua.NodeId;
  internalRecipeId: NodeOpcua.NodeId;
  /** PrepareRecipe's InputArguments property: says whether the ids are Strings or the standard's structures. */
  prepareInputArguments: NodeOpcua.NodeId;
}

type Relative = { name: string; ns: 'vendor' | 'mv' | 'base' }[];

/** Each node the connector uses, as a browse path below the vision system. */
const PATHS: Record<keyof SystemNodes, Relative> = {
  recipeManagement: [{ name: MV.RecipeManagement, ns: 'mv' }],
  prepareRecipe: [
    { name: MV.RecipeManagement, ns: 'mv' },
    { name: MV.PrepareRecipe, ns: 'mv' },
  ],
  unprepareRecipe: [
    { name: MV.RecipeManagement, ns: 'mv' },
    { name: MV.UnprepareRecipe, ns: 'mv' },
  ],
  currentState: [
    { name: MV.VisionStateMachine, ns: 'mv' },
    { name: 'CurrentState', ns: 'base' },
  ],
  automaticModeState: [
    { name: MV.VisionStateMachine, ns: 'mv' },
    { name: MV.AutomaticModeStateMachine, ns: 'mv' },
    { name: 'CurrentState', ns: 'base' },
  ],
  externalRecipeId: [
    { name: PREPARED_RECIPE.object, ns: 'vendor' },
    { name: PREPARED_RECIPE.externalRecipeId, ns: 'vendor' },
  ],
  internalRecipeId: [
    { name: PREPARED_RECIPE.object, ns: 'vendor' },
    { name: PREPARED_RECIPE.internalRecipeId, ns: 'vendor' },
  ],
  prepareInputArguments: [
    { name: MV.RecipeManagement, ns: 'mv' },
    { name: MV.PrepareRecipe, ns: 'mv' },
    { name: 'InputArguments', ns: 'base' },
  ],
};

/** A LocalizedText's text (CurrentState's DataType), or a plain string from a server that answers one. */
const text = (value: unknown): string => {
  if (value && typeof value === 'object' && 'text' in value) {
    const t = value.text;
    return typeof t === 'string' ? t : '';
  }
  return typeof value === 'string' ? value : '';
};
/** An id output: a String, or the standard's id structure (its `Id` field). */
const asString = (value: unknown): string => {
  if (value && typeof value === 'object' && 'id' in value) {
    const id = value.id;
    return typeof id === 'string' ? id : '';
  }
  return typeof value === 'string' ? value : '';
};

/**
 * Opens one session to the OPC 40100 server. Resolves once the session is active and the vendor namespace is known;
 * vision systems are looked up at their first call (and again after a reconnection).
 */
export async function openOpcUaMachineVision(
  rawConfig: z.input<typeof OpcUaMachineVisionConfig>,
  log: ConnectorLogger,
): Promise<MachineVisionClient> {
  const parsed = OpcUaMachineVisionConfig.safeParse(rawConfig);
  if (!parsed.success) {
    const why = parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');
    throw new VisionSystemError('config', 'validation', `machine vision config is invalid: ${why}`);
  }
  const config = parsed.data;
  const label = `vision server ${config.endpointUrl}`;
  const fail = (
    reason: VisionFailureReason,
    kind: ExternalErrorKind,
    message: string,
    cause?: unknown,
    error?: number,
  ) =>
    new VisionSystemError(reason, kind, `${label}: ${message}`, {
      ...(cause !== undefined ? { cause } : {}),
      ...(error !== undefined ? { error } : {}),
    });

  const session = await openOpcUaSession({
    config,
    log,
    label: 'vision server',
    // One application name for the changeover's OPC UA clients: they share a pkiDir, whose certificate names it.
    applicationName: 'HoldfastChangeover',
    clientName: 'holdfast-machine-vision',
    certificateManagerName: 'machine-vision-client',
    error: (reason, kind, message, cause) =>
      new VisionSystemError(reason, kind, message, cause !== undefined ? { cause } : undefined),
  });
  const opcua = session.opcua;

  /** Resolved nodes per system, valid for the namespace index they were resolved under (a restarted server renumbers). */
  const cache = new Map<string, Resolved>();
  interface Resolved extends SystemNodes {
    /** The DataTypes of PrepareRecipe's ExternalId and InternalIdIn: String (i=12) or the standard's structures. */
    externalIdType: NodeOpcua.NodeId;
    internalIdType: NodeOpcua.NodeId;
  }
  let cachedFor = -1;

  const nodesOf = async (system: string): Promise<Resolved> => {
    if (session.namespaceIndex() !== cachedFor) {
      cache.clear();
      cachedFor = session.namespaceIndex();
    }
    const hit = cache.get(system);
    if (hit) return hit;
    const what = `the lookup of vision system "${system}"`;
    const s = usableSession(session, fail, what);
    const namespaces = await request(s.readNamespaceArray(), config.requestTimeoutMs, fail, what);
    const mv = namespaces.indexOf(config.machineVisionNamespaceUri);
    if (mv < 0) {
      throw fail('bad-status', 'not-found', `namespace ${config.machineVisionNamespaceUri} is not on the server`);
    }
    const index = { vendor: session.namespaceIndex(), mv, base: 0 };
    const toSystem = [...config.visionSystemsPath, system].map((name) => ({ name, ns: 'vendor' as const }));
    const keys = Object.keys(PATHS) as (keyof SystemNodes)[];
    const browsePaths = keys.map(
      (key) =>
        new opcua.BrowsePath({
          startingNode: opcua.resolveNodeId('ObjectsFolder'),
          relativePath: {
            elements: [...toSystem, ...PATHS[key]].map((step) => ({
              referenceTypeId: opcua.resolveNodeId('HierarchicalReferences'),
              isInverse: false,
              includeSubtypes: true,
              targetName: new opcua.QualifiedName({ name: step.name, namespaceIndex: index[step.ns] }),
            })),
          },
        }),
    );
    const results = await request(s.translateBrowsePath(browsePaths), config.requestTimeoutMs, fail, what);
    const nodes = {} as SystemNodes;
    for (const [i, key] of keys.entries()) {
      const result = results[i]!;
      const target = result.targets?.[0]?.targetId;
      if (!result.statusCode.isGood() || !target) {
        const path = ['Objects', ...config.visionSystemsPath, system, ...PATHS[key].map((p) => p.name)].join('/');
        throw fail(
          'bad-status',
          result.statusCode.name === 'BadNoMatch' ? 'not-found' : kindOfStatus(result.statusCode),
          `vision system "${system}": ${path} not found (${result.statusCode.name})`,
        );
      }
      nodes[key] = opcua.resolveNodeId(target.toString());
    }
    // OPC 40100 declares the ids as structures (RecipeIdExternalDataType, …); a server may declare Strings instead (the
    // simulator without the NodeSet). The method's own argument list says which to send.
    const [declared] = await readValues(session, [nodes.prepareInputArguments], config.requestTimeoutMs, fail, what);
    const args = Array.isArray(declared) ? (declared as { dataType?: NodeOpcua.NodeId }[]) : [];
    const externalIdType = args[0]?.dataType;
    const internalIdType = args[1]?.dataType;
    if (!externalIdType || !internalIdType) {
      throw fail(
        'bad-status',
        'validation',
        `vision system "${system}": PrepareRecipe declares no ExternalId/InternalIdIn`,
      );
    }
    const resolved = { ...nodes, externalIdType, internalIdType };
    cache.set(system, resolved);
    return resolved;
  };

  /** A call whose node vanished (BadNodeIdUnknown) drops the cache, so the next attempt looks the system up again. */
  const withNodes = async <T>(system: string, use: (nodes: Resolved) => Promise<T>): Promise<T> => {
    const cached = cache.has(system);
    const nodes = await nodesOf(system);
    try {
      return await use(nodes);
    } catch (err) {
      if (!(err instanceof VisionSystemError) || err.kind !== 'not-found') throw err;
      cache.delete(system);
      // Nodes from an earlier lookup may be gone (a restarted server numbering them anew under the same namespace
      // index): look the system up again once, so only a node that is really missing fails, as not-found.
      if (!cached) throw err;
      return use(await nodesOf(system));
    }
  };

  const readState = (system: string): Promise<VisionSystemState> =>
    withNodes(system, async (nodes) => {
      const [state, substate, externalId, internalId] = await readValues(
        session,
        [nodes.currentState, nodes.automaticModeState, nodes.externalRecipeId, nodes.internalRecipeId],
        config.requestTimeoutMs,
        fail,
        `the state read of vision system "${system}"`,
      );
      const stateName = text(state);
      const sub = text(substate);
      return {
        state: stateName,
        ...(stateName === 'Operational' && sub !== '' ? { substate: sub } : {}),
        externalRecipeId: typeof externalId === 'string' && externalId !== '' ? externalId : null,
        internalRecipeId: typeof internalId === 'string' && internalId !== '' ? internalId : null,
      };
    });

  const STRING = opcua.resolveNodeId('String');
  /** An id argument in the form the method declares: a String, or the structure built from the server's definition. */
  const idArgument = async (
    dataType: NodeOpcua.NodeId,
    id: string,
    what: string,
  ): Promise<NodeOpcua.VariantOptions> => {
    if (dataType.toString() === STRING.toString()) return { dataType: opcua.DataType.String, value: id };
    const s = usableSession(session, fail, what);
    // The first structure makes node-opcua read the server's type definitions (a second or more); cached after that.
    const value = await request(s.constructExtensionObject(dataType, { id }), config.methodTimeoutMs, fail, what);
    return { dataType: opcua.DataType.ExtensionObject, value };
  };

  /** Reads the state until Ready; Error or Halted fail at once (nothing will bring it to Ready by itself). */
  const awaitReady = async (system: string, externalId: string): Promise<void> => {
    const deadline = Date.now() + config.prepareTimeoutMs;
    for (;;) {
      const current = await readState(system);
      if (current.state === 'Operational' && current.substate === 'Ready') return;
      if (current.state === 'Error' || current.state === 'Halted') {
        throw fail(
          'not-ready',
          'rejected',
          `vision system "${system}" went to ${current.state} while preparing recipe "${externalId}"`,
        );
      }
      if (Date.now() >= deadline) {
        throw fail(
          'not-ready',
          'transient',
          `vision system "${system}" not Ready within ${config.prepareTimeoutMs} ms of PrepareRecipe "${externalId}" ` +
            `(state ${current.state}${current.substate ? `/${current.substate}` : ''})`,
        );
      }
      await new Promise((r) => setTimeout(r, config.statePollMs));
    }
  };

  return {
    endpoint: config.endpointUrl,

    async prepareRecipe(system, externalRecipeId) {
      return withNodes(system, async (nodes) => {
        const what = `PrepareRecipe "${externalRecipeId}" on vision system "${system}"`;
        const [internalIdOut, isCompleted, error] = await callMethod(
          session,
          {
            objectId: nodes.recipeManagement,
            methodId: nodes.prepareRecipe,
            // InternalIdIn empty: the external id alone selects the recipe (OPC 40100-1 §7.5.2.2).
            inputArguments: [
              await idArgument(nodes.externalIdType, externalRecipeId, what),
              await idArgument(nodes.internalIdType, '', what),
            ],
          },
          config.methodTimeoutMs,
          fail,
          what,
        );
        const code = Number(error);
        if (code !== 0) {
          // The system's own refusal: asking again gets the same answer, so Temporal must not retry it.
          throw fail('device-error', 'rejected', `${what} refused with error ${code}`, undefined, code);
        }
        await awaitReady(system, externalRecipeId);
        log.info('vision system recipe prepared', {
          endpointUrl: config.endpointUrl,
          system,
          externalRecipeId,
          internalRecipeId: asString(internalIdOut),
          completedInCall: isCompleted === true,
        });
        return { internalRecipeId: asString(internalIdOut) };
      });
    },

    async unprepareRecipe(system, internalRecipeId) {
      return withNodes(system, async (nodes) => {
        const what = `UnprepareRecipe "${internalRecipeId}" on vision system "${system}"`;
        const [, error] = await callMethod(
          session,
          {
            objectId: nodes.recipeManagement,
            methodId: nodes.unprepareRecipe,
            inputArguments: [
              await idArgument(nodes.externalIdType, '', what),
              await idArgument(nodes.internalIdType, internalRecipeId, what),
            ],
          },
          config.methodTimeoutMs,
          fail,
          what,
        );
        const code = Number(error);
        if (code === 0) return;
        // A retried unprepare whose first attempt landed finds nothing prepared: Initialized is what was asked for.
        const now = await readState(system);
        if (now.state === 'Operational' && now.substate === 'Initialized') return;
        throw fail('device-error', 'rejected', `${what} refused with error ${code}`, undefined, code);
      });
    },

    readState,
    healthCheck: () => session.healthCheck(),
    close: () => session.close(),
  };
}
