/**
 * The address scheme of an OPC UA for Machine Vision (OPC 40100-1) vision system as Holdfast's client reads it, and as
 * the line PLC simulator (infra/simulators/line-plc) serves it. The client never uses NodeIds from here: it resolves
 * every node by browse path from the Objects folder (TranslateBrowsePathsToNodeIds), so a real vision system whose
 * server numbers its nodes differently is addressed the same way.
 *
 *   Objects/<folder…>/<system>                       browse names in the vendor's namespace (`namespaceUri`)
 *     RecipeManagement                                OPC 40100 (MACHINE_VISION_NAMESPACE_URI)
 *       PrepareRecipe, UnprepareRecipe, GetRecipeListFiltered   methods; Recipes folder
 *     VisionStateMachine                              OPC 40100
 *       CurrentState                                  OPC UA base namespace (FiniteStateMachineType), LocalizedText
 *       AutomaticModeStateMachine/CurrentState        OPC 40100 / base namespace
 *     PreparedRecipe/ExternalRecipeId, InternalRecipeId   vendor namespace: the prepared recipe's ids (see README)
 */
export const MACHINE_VISION_NAMESPACE_URI = 'http://opcfoundation.org/UA/MachineVision';

/** Default folder path from Objects to the vision systems, browse names in the vendor's namespace. */
export const VISION_SYSTEMS_FOLDER = 'VisionSystems';

/** Browse names of OPC 40100's instance declarations used here (all in MACHINE_VISION_NAMESPACE_URI). */
export const MV = {
  RecipeManagement: 'RecipeManagement',
  PrepareRecipe: 'PrepareRecipe',
  UnprepareRecipe: 'UnprepareRecipe',
  GetRecipeListFiltered: 'GetRecipeListFiltered',
  Recipes: 'Recipes',
  ExternalId: 'ExternalId',
  InternalId: 'InternalId',
  IsPrepared: 'IsPrepared',
  VisionStateMachine: 'VisionStateMachine',
  AutomaticModeStateMachine: 'AutomaticModeStateMachine',
} as const;

/** The vendor-namespace object that states which recipe is prepared (OPC 40100 leaves this to the Recipes folder). */
export const PREPARED_RECIPE = {
  object: 'PreparedRecipe',
  externalRecipeId: 'ExternalRecipeId',
  internalRecipeId: 'InternalRecipeId',
} as const;

/** The VisionStateMachine's top-level states (OPC 40100-1 §8.2). */
export const VISION_STATES = ['Preoperational', 'Halted', 'Error', 'Operational'] as const;
export type VisionState = (typeof VISION_STATES)[number];

/** The automatic mode's states, inside Operational (OPC 40100-1 §8.3). */
export const AUTOMATIC_MODE_STATES = ['Initialized', 'Ready', 'SingleExecution', 'ContinuousExecution'] as const;
export type AutomaticModeState = (typeof AUTOMATIC_MODE_STATES)[number];

/**
 * The `error` output of the RecipeManagement methods (OPC 40100-1 §7.5.2): 0 is OK, values above 0 are reserved for
 * the standard, values below 0 are the vendor's. The simulator's own codes:
 */
export const VISION_ERROR = {
  ok: 0,
  /** The external id names no recipe the vision system knows. */
  unknownRecipe: -1,
  /** UnprepareRecipe for a recipe that is not the prepared one. */
  notPrepared: -2,
  /** The default code of the `refuse` fault: the vision system declines to prepare (e.g. its camera is not ready). */
  refused: -100,
} as const;

/** Vendor-namespace node of the simulator's fault injection, beside each vision system's standard nodes. */
export const SIMULATION = {
  object: 'Simulation',
  setFaults: 'SetFaults',
} as const;
