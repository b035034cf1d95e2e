/**
 * Typed stand-ins for the plant ports a changeover works through (activities/ports.ts, feedback layer): Holdfast
 * stations, external vision systems, the line's release interlock, the first-article reader, the recipes, and an MES
 * that releases orders for production. Each keeps the calls it received, in order, for the tests to assert.
 */
import type { ChangeoverRecipe, ChangeoverRecipeSource } from '../../activities';
import type {
  CreateOptions,
  FirstArticlePart,
  FirstArticleReader,
  LineInterlockPort,
  MesProductionRelease,
  MesProductionReleaseRequest,
  StationControlPort,
  StationReadBack,
  StationRecipeTarget,
  StationRef,
  VisionSystemPort,
  VisionSystemState,
} from '../../activities/ports';
import type { ChangeoverInput, ChangeoverStationConfig } from '../../workflows/contracts';
import { ExternalSystemError } from '../../activities/errors';
import { FakeMes } from './fake-ports';

/** sha256 of each model the fake stations load, as the manifests state them. */
export const MODEL_SHA: Record<string, string> = {
  'surface@1.0.0': 'a'.repeat(64),
  'surface@2.0.0': 'b'.repeat(64),
};

export class FakeRecipes implements ChangeoverRecipeSource {
  /** station → SKU → recipe. */
  readonly recipes = new Map<string, Map<string, ChangeoverRecipe>>();

  set(station: string, sku: string, recipe: Omit<ChangeoverRecipe, 'modelSha256'>): this {
    const bySku = this.recipes.get(station) ?? new Map<string, ChangeoverRecipe>();
    bySku.set(sku, { ...recipe, modelSha256: MODEL_SHA[`${recipe.model.name}@${recipe.model.version}`] });
    this.recipes.set(station, bySku);
    return this;
  }

  async active(station: StationRef, sku: string): Promise<ChangeoverRecipe | undefined> {
    return this.recipes.get(station.station)?.get(sku);
  }
}

type Assignment = NonNullable<StationReadBack['active']>;

/** Holdfast inference stations: arming loads the model at once (its sha256 from MODEL_SHA) and waits armed. */
export class FakeStationControl implements StationControlPort {
  readonly stations = new Map<string, StationReadBack & { previous?: StationReadBack }>();
  readonly calls: string[] = [];
  /** Stations whose read-back reports another model file than the manifest's (a corrupt or stale load). */
  readonly wrongModel = new Set<string>();

  activate(station: string, a: Omit<Assignment, 'activatedAt'>): void {
    this.stations.set(station, { active: { ...a, activatedAt: '2026-01-01T00:00:00.000Z' } });
  }

  async arm(station: StationRef, target: StationRecipeTarget): Promise<void> {
    this.calls.push(`arm ${station.station} ${target.workOrder}`);
    const now = this.stations.get(station.station) ?? {};
    const modelKey = `${target.model.name}@${target.model.version}`;
    this.stations.set(station.station, {
      ...(now.active ? { active: now.active } : {}),
      previous: { ...(now.active ? { active: now.active } : {}), ...(now.armed ? { armed: now.armed } : {}) },
      armed: {
        changeoverId: target.changeoverId,
        workOrder: target.workOrder,
        sku: target.sku,
        recipeVersion: target.recipeVersion,
        modelKey,
        modelSha256: MODEL_SHA[modelKey] ?? 'unknown',
        preparedAt: new Date().toISOString(),
      },
    });
  }

  async readBack(station: StationRef): Promise<StationReadBack> {
    this.calls.push(`readBack ${station.station}`);
    const now = this.stations.get(station.station) ?? {};
    const readBack: StationReadBack = {
      ...(now.active ? { active: now.active } : {}),
      ...(now.armed ? { armed: now.armed } : {}),
    };
    if (this.wrongModel.has(station.station) && readBack.armed) {
      readBack.armed = { ...readBack.armed, modelSha256: 'f'.repeat(64) };
    }
    return readBack;
  }

  async revert(station: StationRef, changeoverId: string): Promise<void> {
    this.calls.push(`revert ${station.station} ${changeoverId}`);
    const now = this.stations.get(station.station);
    if (now?.previous) this.stations.set(station.station, now.previous);
  }
}

/** An OPC 40100 server's vision systems: PrepareRecipe sets the recipe and brings the system to Ready. */
export class FakeVisionSystem implements VisionSystemPort {
  readonly endpoint = 'opc.tcp://fake-vision:4840';
  readonly systems = new Map<string, VisionSystemState>();
  readonly calls: string[] = [];

  async prepareRecipe(system: string, externalRecipeId: string): Promise<{ internalRecipeId: string }> {
    this.calls.push(`prepare ${system} ${externalRecipeId}`);
    const internalRecipeId = `int-${externalRecipeId}`;
    this.systems.set(system, { state: 'Operational', substate: 'Ready', externalRecipeId, internalRecipeId });
    return { internalRecipeId };
  }

  async unprepareRecipe(system: string, internalRecipeId: string): Promise<void> {
    this.calls.push(`unprepare ${system} ${internalRecipeId}`);
    this.systems.set(system, {
      state: 'Operational',
      substate: 'Idle',
      externalRecipeId: null,
      internalRecipeId: null,
    });
  }

  async readState(system: string): Promise<VisionSystemState> {
    return (
      this.systems.get(system) ?? {
        state: 'Operational',
        substate: 'Idle',
        externalRecipeId: null,
        internalRecipeId: null,
      }
    );
  }
}

export class FakeLineInterlock implements LineInterlockPort {
  readonly calls: { line: string; released: boolean; workOrder: string }[] = [];
  readonly lines = new Map<string, { released: boolean; workOrder: string }>();
  /** The PLC does not answer: every write fails as a transient fault (retried until the step's timeout). */
  unreachable = false;

  async setRelease(line: { site: string; line: string }, state: { released: boolean; workOrder: string }) {
    if (this.unreachable) throw new ExternalSystemError('fake-plc', 'transient', 'no answer from the PLC');
    this.calls.push({ line: line.line, ...state });
    this.lines.set(line.line, state);
  }

  async readRelease(line: { site: string; line: string }) {
    return this.lines.get(line.line) ?? { released: true, workOrder: '' };
  }
}

/** The first parts of each order, as the tests add them. */
export class FakeFirstArticles implements FirstArticleReader {
  readonly parts = new Map<string, FirstArticlePart[]>();

  add(workOrder: string, ...results: ('pass' | 'fail')[]): void {
    const parts = this.parts.get(workOrder) ?? [];
    for (const result of results) {
      const n = parts.length + 1;
      parts.push({
        partId: `${workOrder}-P${n}`,
        result,
        eventIds: [`ev-${workOrder}-${n}`],
        lotId: `LOT-${workOrder}`,
        inspectedAt: new Date().toISOString(),
      });
    }
    this.parts.set(workOrder, parts);
  }

  async firstParts(_line: { site: string; line: string }, workOrder: string, parts: number) {
    return (this.parts.get(workOrder) ?? []).slice(0, parts);
  }
}

/** The shared fake MES, also keeping each production-release request as sent, by its idempotency key. */
export class ReleasingMes extends FakeMes {
  readonly releaseRequests = new Map<string, MesProductionReleaseRequest & { options?: CreateOptions }>();

  override async releaseForProduction(
    req: MesProductionReleaseRequest,
    opts?: CreateOptions,
  ): Promise<MesProductionRelease> {
    if (!this.releaseRequests.has(req.idempotencyKey)) {
      this.releaseRequests.set(req.idempotencyKey, { ...req, ...(opts ? { options: opts } : {}) });
    }
    return super.releaseForProduction(req, opts);
  }
}

/** A changeover's input with fast steps: read-backs and first-article polls every 100 ms. */
export function changeoverTestInput(
  over: Partial<ChangeoverInput> & { site: string; workOrder: string; stations: ChangeoverStationConfig[] },
  preset: ChangeoverInput['preset'],
): ChangeoverInput {
  return {
    line: 'L1',
    sku: 'SKU-B',
    trigger: 'manual',
    requestId: `req-${over.workOrder}`,
    requestedBy: 'local:qe',
    reason: 'test changeover',
    dueAt: new Date().toISOString(),
    interlock: true,
    options: {
      prepareTimeout: '5s',
      stepTimeout: '1m',
      verifyAttempts: 3,
      verifyInterval: '100ms',
      firstArticleParts: 2,
      firstArticleEscalateAfter: '1h',
      firstArticleTimeout: '2h',
      firstArticlePollInterval: '100ms',
    },
    preset,
    ...over,
  };
}
