/**
 * Which recipe a frame is inspected under at a station that changeovers have assigned (docs/changeover.md#holdfast-stations).
 * Pure, so that the pipeline's hot path costs a map lookup and a few string comparisons.
 */
import type { AssignedRecipe, StationAssignmentView } from './ports';

export type StationDecision =
  /** Never changed over (or reverted to that): the frame's SKU's active recipe, as before changeovers existed. */
  | { kind: 'unassigned' }
  /** A frame of the order the station runs. */
  | { kind: 'active'; assignment: AssignedRecipe }
  /** The first frame of the armed order: the station switches here, then inspects it under the armed recipe. */
  | { kind: 'boundary'; assignment: AssignedRecipe }
  /** Any other order or SKU: never inspected under the wrong criteria. */
  | { kind: 'mismatch'; detail: string };

const isFor = (a: AssignedRecipe | undefined, frame: { workOrder: string; sku: string }): boolean =>
  a !== undefined && a.workOrder === frame.workOrder && a.sku === frame.sku;

/**
 * The armed order is checked first: a changeover that re-arms the order already running (a new recipe version for
 * it) switches at that order's next frame. A station armed before its first changeover has nothing active, so the old
 * order's frames keep today's behaviour until the boundary.
 */
export function decideFrame(
  view: StationAssignmentView | undefined,
  frame: { workOrder: string; sku: string },
): StationDecision {
  if (!view || (!view.armed && !view.active)) return { kind: 'unassigned' };
  if (view.armed && isFor(view.armed, frame)) return { kind: 'boundary', assignment: view.armed };
  if (view.active && !view.switching && isFor(view.active, frame)) return { kind: 'active', assignment: view.active };
  if (!view.active && !view.switching) return { kind: 'unassigned' };
  const runs: AssignedRecipe = (view.switching ? view.armed : view.active) ?? view.armed ?? view.active!;
  return {
    kind: 'mismatch',
    detail:
      `frame of work order ${frame.workOrder} (SKU ${frame.sku}); the station runs ${runs.workOrder} ` +
      `(SKU ${runs.sku}, recipe ${runs.recipeVersion})` +
      (view.armed && view.active && !view.switching
        ? `, armed for ${view.armed.workOrder} (SKU ${view.armed.sku})`
        : ''),
  };
}
