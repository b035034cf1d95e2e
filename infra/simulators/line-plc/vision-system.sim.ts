/**
 * Simulated external vision systems: the subset of OPC UA for Machine Vision (OPC 40100-1) a changeover needs
 * (README.md, "Vision systems"), added to the line PLC simulator's address space. Names and shapes follow the
 * address scheme in infra/connectors/opcua/machine-vision.address.ts, shared with the client.
 */
import type { ConnectorLogger } from '../../connectors/define';
import type { NodeOpcua, NodeOpcuaModule } from '../../connectors/opcua/node-opcua.driver';
import {
  MV,
  PREPARED_RECIPE,
  SIMULATION,
  VISION_ERROR,
  VISION_SYSTEMS_FOLDER,
  type AutomaticModeState,
  type VisionState,
} from '../../connectors/opcua/machine-vision.address';

/** A recipe the vision system knows: the environment's id and the system's own. */
export interface VisionRecipe {
  externalId: string;
  /** Default `<externalId>#1` (the first version the system holds). */
  internalId?: string;
}

export interface VisionSystemOptions {
  /** The vision system's browse name under Objects/VisionSystems (Station.vision.system in temporal.yaml). */
  system: string;
  site: string;
  line: string;
  station: string;
  /** Recipes it knows; an external id as a string is a recipe with the default internal id. */
  recipes: (VisionRecipe | string)[];
  /** Faults from the start (main.ts reads LINE_PLC_VISION_FAULTS). */
  faults?: VisionFaults;
}

/** Fault injection, per vision system. Each is off when absent. */
export interface VisionFaults {
  /** PrepareRecipe answers at once with IsCompleted false; the system reaches Ready this many ms later. */
  prepareDelayMs?: number;
  /** PrepareRecipe refuses with this `error` (a vendor code, below 0), nothing prepared. */
  refuseWithError?: number;
  /** PrepareRecipe prepares what was asked and says so, but the read-back (PreparedRecipe, IsPrepared) shows another
   *  recipe: `true` for the first other recipe it knows, or that recipe's external id. */
  reportWrongRecipe?: boolean | string;
}

export interface RecipeIds {
  externalId: string;
  internalId: string;
}

/** One call of a RecipeManagement or Simulation method, in arrival order. */
export interface VisionCallRecord {
  system: string;
  method: 'PrepareRecipe' | 'UnprepareRecipe' | 'GetRecipeListFiltered' | 'SetFaults';
  externalId: string;
  /** The `error` output (0 OK); a state refusal is `BadInvalidState` in `status` and `error` undefined. */
  error?: number;
  status: string;
  at: Date;
}

/** What a vision system is doing, as the simulator knows it (the truth the read-back may misreport). */
export interface VisionSystemSnapshot {
  system: string;
  site: string;
  line: string;
  station: string;
  state: VisionState;
  substate: AutomaticModeState | undefined;
  /** What PrepareRecipe was last asked for and completed. */
  prepared: RecipeIds | null;
  /** What the read-back shows (differs from `prepared` under the reportWrongRecipe fault). */
  reported: RecipeIds | null;
  /** A slow prepare still under way. */
  preparing: RecipeIds | null;
  faults: VisionFaults;
}

export interface VisionSystems {
  snapshot(system: string): VisionSystemSnapshot;
  calls(): VisionCallRecord[];
  setFaults(system: string, faults: VisionFaults): void;
  /** Puts the state machine in a state, as an operator or an internal error would (e.g. Halted, Error). */
  setState(system: string, state: VisionState, substate?: AutomaticModeState): void;
  /** Cancels pending slow prepares (their timers would outlive the server). */
  dispose(): void;
}

interface SystemState {
  options: VisionSystemOptions;
  recipes: RecipeIds[];
  state: VisionState;
  substate: AutomaticModeState | undefined;
  prepared: RecipeIds | null;
  reported: RecipeIds | null;
  preparing: RecipeIds | null;
  prepareTimer: NodeJS.Timeout | undefined;
  faults: VisionFaults;
  currentState: NodeOpcua.UAVariable;
  autoCurrentState: NodeOpcua.UAVariable;
  externalRecipeId: NodeOpcua.UAVariable;
  internalRecipeId: NodeOpcua.UAVariable;
  isPrepared: Map<string, NodeOpcua.UAVariable>;
}

export interface VisionSystemsContext {
  opcua: NodeOpcuaModule;
  addressSpace: NodeOpcua.AddressSpace;
  /** The simulator's own namespace (folders, the vision systems' browse names, PreparedRecipe, Simulation). */
  namespace: NodeOpcua.Namespace;
  /** Index of MACHINE_VISION_NAMESPACE_URI (registered by the caller). */
  machineVisionIndex: number;
  log?: ConnectorLogger | undefined;
  /** Called for every method call, after it was handled (main.ts counts them for Prometheus). */
  onCall?: ((record: VisionCallRecord) => void) | undefined;
  /**
   * The standard's id structures (RecipeIdExternalDataType, RecipeIdInternalDataType), when the MachineVision NodeSet is
   * loaded: the methods' id arguments are then those structures instead of Strings.
   */
  recipeIdTypes?: { external: NodeOpcua.NodeId; internal: NodeOpcua.NodeId } | undefined;
}

const recipeIds = (recipe: VisionRecipe | string): RecipeIds =>
  typeof recipe === 'string'
    ? { externalId: recipe, internalId: `${recipe}#1` }
    : { externalId: recipe.externalId, internalId: recipe.internalId ?? `${recipe.externalId}#1` };

/** Adds Objects/VisionSystems/<system> for each system and returns the handle tests and main.ts use. */
export function addVisionSystems(ctx: VisionSystemsContext, systems: VisionSystemOptions[]): VisionSystems {
  const { opcua, addressSpace, namespace, machineVisionIndex: mv, log } = ctx;
  const { DataType, StatusCodes, Variant, VariantArrayType } = opcua;
  const states = new Map<string, SystemState>();
  const callLog: VisionCallRecord[] = [];
  if (systems.length === 0) return handle();

  const folder = namespace.addFolder(addressSpace.rootFolder.objects, {
    nodeId: `s=${VISION_SYSTEMS_FOLDER}`,
    browseName: VISION_SYSTEMS_FOLDER,
  });
  const mvName = (name: string) => ({ name, namespaceIndex: mv });
  const text = (value: string) => ({ dataType: DataType.LocalizedText, value: { text: value } });
  const str = (value: string) => ({ dataType: DataType.String, value });
  const types = ctx.recipeIdTypes;
  const out = {
    error: (value: number) => new Variant({ dataType: DataType.Int32, value }),
    boolean: (value: boolean) => new Variant({ dataType: DataType.Boolean, value }),
    /** An internal id, as a String or as the standard's structure (its `Id` field). */
    internalId: (id: string) =>
      types
        ? new Variant({
            dataType: DataType.ExtensionObject,
            value: addressSpace.constructExtensionObject(types.internal, { id }),
          })
        : new Variant({ dataType: DataType.String, value: id }),
  };
  /** The `Id` of an id argument, whichever form it came in. */
  const idOf = (arg: NodeOpcua.Variant | undefined): string => {
    const value: unknown = arg?.value;
    if (value && typeof value === 'object' && 'id' in value) {
      const id = value.id;
      return typeof id === 'string' ? id : '';
    }
    return typeof value === 'string' ? value : '';
  };

  for (const options of systems) {
    const { system } = options;
    if (states.has(system)) throw new Error(`line-plc: vision system "${system}" is declared twice`);
    const id = (suffix: string) => `s=${VISION_SYSTEMS_FOLDER}.${system}.${suffix}`;
    const root = namespace.addObject({ organizedBy: folder, nodeId: id('VisionSystem'), browseName: system });
    const variable = (
      parent: NodeOpcua.UAObject,
      nodeId: string,
      browseName: NodeOpcua.QualifiedNameLike,
      value: { dataType: NodeOpcua.DataType; value: unknown },
    ): NodeOpcua.UAVariable =>
      namespace.addVariable({
        componentOf: parent,
        nodeId,
        browseName,
        dataType: value.dataType,
        accessLevel: 'CurrentRead',
        userAccessLevel: 'CurrentRead',
        value,
      });

    // RecipeManagement with its Recipes folder: one object per recipe (a subset of OPC 40100's RecipeType).
    const recipeManagement = namespace.addObject({
      componentOf: root,
      nodeId: id('RecipeManagement'),
      browseName: mvName(MV.RecipeManagement),
    });
    // A component of RecipeManagement typed as a folder (OPC 40100's RecipeFolderType is a FolderType subtype).
    const recipesFolder = namespace.addObject({
      componentOf: recipeManagement,
      typeDefinition: 'FolderType',
      nodeId: id('RecipeManagement.Recipes'),
      browseName: mvName(MV.Recipes),
    });
    const recipes = options.recipes.map(recipeIds);
    const isPrepared = new Map<string, NodeOpcua.UAVariable>();
    for (const recipe of recipes) {
      const recipeNode = namespace.addObject({
        organizedBy: recipesFolder,
        nodeId: id(`Recipes.${recipe.internalId}`),
        browseName: recipe.externalId,
      });
      variable(
        recipeNode,
        id(`Recipes.${recipe.internalId}.ExternalId`),
        mvName(MV.ExternalId),
        str(recipe.externalId),
      );
      variable(
        recipeNode,
        id(`Recipes.${recipe.internalId}.InternalId`),
        mvName(MV.InternalId),
        str(recipe.internalId),
      );
      isPrepared.set(
        recipe.internalId,
        variable(recipeNode, id(`Recipes.${recipe.internalId}.IsPrepared`), mvName(MV.IsPrepared), {
          dataType: DataType.Boolean,
          value: false,
        }),
      );
    }

    // VisionStateMachine: CurrentState (base namespace, as FiniteStateMachineType names it) and the automatic mode's.
    const stateMachine = namespace.addObject({
      componentOf: root,
      nodeId: id('VisionStateMachine'),
      browseName: mvName(MV.VisionStateMachine),
    });
    const automaticMode = namespace.addObject({
      componentOf: stateMachine,
      nodeId: id('VisionStateMachine.AutomaticModeStateMachine'),
      browseName: mvName(MV.AutomaticModeStateMachine),
    });
    const prepared = namespace.addObject({
      componentOf: root,
      nodeId: id(PREPARED_RECIPE.object),
      browseName: PREPARED_RECIPE.object,
    });

    const state: SystemState = {
      options,
      recipes,
      state: 'Operational',
      substate: 'Initialized',
      prepared: null,
      reported: null,
      preparing: null,
      prepareTimer: undefined,
      faults: { ...options.faults },
      currentState: variable(
        stateMachine,
        id('VisionStateMachine.CurrentState'),
        { name: 'CurrentState', namespaceIndex: 0 },
        text('Operational'),
      ),
      autoCurrentState: variable(
        automaticMode,
        id('VisionStateMachine.AutomaticModeStateMachine.CurrentState'),
        { name: 'CurrentState', namespaceIndex: 0 },
        text('Initialized'),
      ),
      externalRecipeId: variable(
        prepared,
        id(`${PREPARED_RECIPE.object}.${PREPARED_RECIPE.externalRecipeId}`),
        PREPARED_RECIPE.externalRecipeId,
        str(''),
      ),
      internalRecipeId: variable(
        prepared,
        id(`${PREPARED_RECIPE.object}.${PREPARED_RECIPE.internalRecipeId}`),
        PREPARED_RECIPE.internalRecipeId,
        str(''),
      ),
      isPrepared,
    };
    states.set(system, state);

    // Method arguments as OPC 40100-1 §7.5.2 names them. The ids are the String `Id` of RecipeIdExternalDataType /
    // RecipeIdInternalDataType (the structures' Version and Hash are not modelled; README).
    const idArg = (name: string, kind: 'external' | 'internal' = name === 'ExternalId' ? 'external' : 'internal') => ({
      name,
      dataType: types ? types[kind] : DataType.String,
      valueRank: -1,
    });
    const errorArg = { name: 'Error', dataType: DataType.Int32, valueRank: -1 };
    const method = (
      parent: NodeOpcua.UAObject,
      nodeId: string,
      browseName: NodeOpcua.QualifiedNameLike,
      inputArguments: NodeOpcua.ArgumentOptions[],
      outputArguments: NodeOpcua.ArgumentOptions[],
      body: (args: NodeOpcua.Variant[]) => NodeOpcua.CallMethodResultOptions,
    ) => {
      const m = namespace.addMethod(parent, {
        nodeId,
        browseName,
        inputArguments,
        outputArguments,
        executable: true,
        userExecutable: true,
      });
      // Two parameters: node-opcua tells an async method from a callback one by its arity.
      m.bindMethod(async (args: NodeOpcua.Variant[], _context: NodeOpcua.ISessionContext) => body(args));
    };

    method(
      recipeManagement,
      id('RecipeManagement.PrepareRecipe'),
      mvName(MV.PrepareRecipe),
      [idArg('ExternalId'), idArg('InternalIdIn')],
      [idArg('InternalIdOut'), { name: 'IsCompleted', dataType: DataType.Boolean, valueRank: -1 }, errorArg],
      (args) => prepareRecipe(state, idOf(args[0]), idOf(args[1])),
    );
    method(
      recipeManagement,
      id('RecipeManagement.UnprepareRecipe'),
      mvName(MV.UnprepareRecipe),
      [idArg('ExternalId'), idArg('InternalIdIn')],
      [idArg('InternalIdOut'), errorArg],
      (args) => unprepareRecipe(state, idOf(args[0]), idOf(args[1])),
    );
    method(
      recipeManagement,
      id('RecipeManagement.GetRecipeListFiltered'),
      mvName(MV.GetRecipeListFiltered),
      [
        idArg('ExternalId'),
        { name: 'ProductId', dataType: DataType.String, valueRank: -1 },
        // TriStateBooleanDataType: 0 FALSE, 1 TRUE, 2 DONTCARE.
        { name: 'IsPrepared', dataType: DataType.Int32, valueRank: -1 },
        { name: 'MaxResults', dataType: DataType.UInt32, valueRank: -1 },
        { name: 'StartIndex', dataType: DataType.UInt32, valueRank: -1 },
        { name: 'Timeout', dataType: DataType.Int32, valueRank: -1 },
      ],
      [
        { name: 'IsComplete', dataType: DataType.Boolean, valueRank: -1 },
        { name: 'ResultCount', dataType: DataType.UInt32, valueRank: -1 },
        { name: 'RecipeHandle', dataType: DataType.UInt32, valueRank: -1 },
        { name: 'RecipeList', dataType: types ? types.internal : DataType.String, valueRank: 1 },
        errorArg,
      ],
      (args) =>
        getRecipeListFiltered(
          state,
          idOf(args[0]),
          Number(args[2]?.value ?? 2),
          Number(args[3]?.value ?? 0),
          Number(args[4]?.value ?? 0),
        ),
    );

    const simulation = namespace.addObject({
      componentOf: root,
      nodeId: id(SIMULATION.object),
      browseName: SIMULATION.object,
    });
    method(
      simulation,
      id(`${SIMULATION.object}.${SIMULATION.setFaults}`),
      SIMULATION.setFaults,
      [
        { name: 'PrepareDelayMs', dataType: DataType.UInt32, valueRank: -1 },
        { name: 'RefuseWithError', dataType: DataType.Int32, valueRank: -1 },
        { name: 'ReportWrongRecipe', dataType: DataType.Boolean, valueRank: -1 },
      ],
      [errorArg],
      (args) => {
        const delay = Number(args[0]?.value ?? 0);
        const refuse = Number(args[1]?.value ?? 0);
        const wrong = Boolean(args[2]?.value);
        setFaults(state, {
          ...(delay > 0 ? { prepareDelayMs: delay } : {}),
          ...(refuse !== 0 ? { refuseWithError: refuse } : {}),
          ...(wrong ? { reportWrongRecipe: true } : {}),
        });
        record(state, 'SetFaults', '', 'Good', VISION_ERROR.ok);
        return { statusCode: StatusCodes.Good, outputArguments: [out.error(VISION_ERROR.ok)] };
      },
    );
  }

  function record(
    s: SystemState,
    methodName: VisionCallRecord['method'],
    externalId: string,
    status: string,
    error?: number,
  ): void {
    const entry: VisionCallRecord = {
      system: s.options.system,
      method: methodName,
      externalId,
      status,
      ...(error !== undefined ? { error } : {}),
      at: new Date(),
    };
    callLog.push(entry);
    ctx.onCall?.(entry);
  }

  function publish(s: SystemState): void {
    s.currentState.setValueFromSource(text(s.state));
    s.autoCurrentState.setValueFromSource(text(s.state === 'Operational' ? (s.substate ?? '') : ''));
    s.externalRecipeId.setValueFromSource(str(s.reported?.externalId ?? ''));
    s.internalRecipeId.setValueFromSource(str(s.reported?.internalId ?? ''));
    for (const [internalId, node] of s.isPrepared) {
      node.setValueFromSource({ dataType: DataType.Boolean, value: s.reported?.internalId === internalId });
    }
  }

  /** What the read-back shows for a prepared recipe: the recipe itself, or another under reportWrongRecipe. */
  function reportedFor(s: SystemState, recipe: RecipeIds): RecipeIds {
    const wrong = s.faults.reportWrongRecipe;
    if (!wrong) return recipe;
    const other =
      typeof wrong === 'string'
        ? s.recipes.find((r) => r.externalId === wrong)
        : s.recipes.find((r) => r.internalId !== recipe.internalId);
    // A system that knows one recipe can only misreport by inventing an id.
    return other ?? { externalId: `${recipe.externalId}-OTHER`, internalId: `${recipe.internalId}-OTHER` };
  }

  function invalidState(s: SystemState, methodName: VisionCallRecord['method'], externalId: string) {
    record(s, methodName, externalId, 'BadInvalidState');
    log?.warn('line-plc vision: method refused in this state', {
      system: s.options.system,
      method: methodName,
      state: s.state,
      substate: s.substate,
    });
    return { statusCode: StatusCodes.BadInvalidState };
  }

  // OPC 40100-1 §8.3: PrepareRecipe is allowed in Initialized and Ready (another recipe replaces the prepared one) and
  // leads to Ready once preparation completes.
  function prepareRecipe(s: SystemState, externalId: string, internalIdIn: string): NodeOpcua.CallMethodResultOptions {
    const answer = (internalIdOut: string, isCompleted: boolean, error: number) => {
      record(s, 'PrepareRecipe', externalId, 'Good', error);
      return {
        statusCode: StatusCodes.Good,
        outputArguments: [out.internalId(internalIdOut), out.boolean(isCompleted), out.error(error)],
      };
    };
    if (s.state !== 'Operational' || (s.substate !== 'Initialized' && s.substate !== 'Ready')) {
      return invalidState(s, 'PrepareRecipe', externalId);
    }
    if (s.faults.refuseWithError !== undefined) return answer('', false, s.faults.refuseWithError);
    const recipe = s.recipes.find(
      (r) => r.externalId === externalId && (internalIdIn === '' || r.internalId === internalIdIn),
    );
    if (!recipe) return answer('', false, VISION_ERROR.unknownRecipe);

    clearTimeout(s.prepareTimer);
    s.prepareTimer = undefined;
    const complete = () => {
      s.preparing = null;
      s.prepareTimer = undefined;
      s.prepared = recipe;
      s.reported = reportedFor(s, recipe);
      s.substate = 'Ready';
      publish(s);
      log?.debug?.('line-plc vision: recipe prepared', { system: s.options.system, ...recipe });
    };
    const delay = s.faults.prepareDelayMs ?? 0;
    if (delay <= 0) {
      complete();
      return answer(recipe.internalId, true, VISION_ERROR.ok);
    }
    // Asynchronous preparation (§7.5.2.2: IsCompleted false): the client watches the state machine for Ready. The
    // recipe prepared before is given up now, so Ready always means the new one is in place.
    s.preparing = recipe;
    s.prepared = null;
    s.reported = null;
    s.substate = 'Initialized';
    publish(s);
    s.prepareTimer = setTimeout(complete, delay);
    return answer(recipe.internalId, false, VISION_ERROR.ok);
  }

  // UnprepareRecipe reverts PrepareRecipe: Ready → Initialized (§8.3.5.3).
  function unprepareRecipe(s: SystemState, externalId: string, internalIdIn: string) {
    const answer = (internalIdOut: string, error: number) => {
      record(s, 'UnprepareRecipe', externalId, 'Good', error);
      return { statusCode: StatusCodes.Good, outputArguments: [out.internalId(internalIdOut), out.error(error)] };
    };
    if (s.state !== 'Operational' || (s.substate !== 'Ready' && s.substate !== 'Initialized')) {
      return invalidState(s, 'UnprepareRecipe', externalId);
    }
    const current = s.prepared;
    const matches =
      current !== null &&
      (externalId === '' || current.externalId === externalId) &&
      (internalIdIn === '' || current.internalId === internalIdIn);
    if (!matches || (externalId === '' && internalIdIn === '')) return answer('', VISION_ERROR.notPrepared);
    s.prepared = null;
    s.reported = null;
    s.substate = 'Initialized';
    publish(s);
    return answer(current.internalId, VISION_ERROR.ok);
  }

  function getRecipeListFiltered(
    s: SystemState,
    externalId: string,
    isPrepared: number,
    maxResults: number,
    startIndex: number,
  ) {
    const all = s.recipes.filter(
      (r) =>
        (externalId === '' || r.externalId === externalId) &&
        (isPrepared === 2 || (s.reported?.internalId === r.internalId) === (isPrepared === 1)),
    );
    const page = all.slice(startIndex, maxResults > 0 ? startIndex + maxResults : undefined);
    record(s, 'GetRecipeListFiltered', externalId, 'Good', VISION_ERROR.ok);
    return {
      statusCode: StatusCodes.Good,
      outputArguments: [
        out.boolean(startIndex + page.length >= all.length),
        new Variant({ dataType: DataType.UInt32, value: all.length }),
        // No handle: the list is returned whole or paged by StartIndex, nothing is held for the client.
        new Variant({ dataType: DataType.UInt32, value: 0 }),
        types
          ? new Variant({
              dataType: DataType.ExtensionObject,
              arrayType: VariantArrayType.Array,
              value: page.map((r) => addressSpace.constructExtensionObject(types.internal, { id: r.internalId })),
            })
          : new Variant({
              dataType: DataType.String,
              arrayType: VariantArrayType.Array,
              value: page.map((r) => r.internalId),
            }),
        out.error(VISION_ERROR.ok),
      ],
    };
  }

  function setFaults(s: SystemState, faults: VisionFaults): void {
    s.faults = { ...faults };
    log?.info('line-plc vision: faults set', { system: s.options.system, ...faults });
  }

  function stateOf(system: string): SystemState {
    const s = states.get(system);
    if (!s) throw new Error(`line-plc: no vision system "${system}"`);
    return s;
  }

  function handle(): VisionSystems {
    return {
      snapshot(system) {
        const s = stateOf(system);
        const { site, line, station } = s.options;
        return {
          system,
          site,
          line,
          station,
          state: s.state,
          substate: s.state === 'Operational' ? s.substate : undefined,
          prepared: s.prepared,
          reported: s.reported,
          preparing: s.preparing,
          faults: { ...s.faults },
        };
      },
      calls: () => callLog.slice(),
      setFaults: (system, faults) => setFaults(stateOf(system), faults),
      setState(system, next, substate) {
        const s = stateOf(system);
        s.state = next;
        s.substate = next === 'Operational' ? (substate ?? s.substate ?? 'Initialized') : s.substate;
        publish(s);
      },
      dispose() {
        for (const s of states.values()) clearTimeout(s.prepareTimer);
      },
    };
  }

  return handle();
}
