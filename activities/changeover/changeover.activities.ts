import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import {
  ErrorType,
  changeoverKeys,
  type ChangeoverStationConfig,
  type ChangeoverStationPlan,
  type ChangeoverStationSnapshot,
} from '../../workflows/contracts';
import { atBoundary, configurationFailure } from '../boundary';
import { ConfigError } from '../errors';
import { createOnce } from '../intents';
import type {
  EscalationPort,
  FirstArticleReader,
  FirstArticlePart,
  IntentLedger,
  LineInterlockPort,
  MesPort,
  MesProductionRelease,
  StationControlPort,
  StationReadBack,
  StationRef,
  VisionSystemPort,
} from '../ports';

/** A Holdfast station's active recipe for a SKU, with what its model's manifest says the station must load. */
export interface ChangeoverRecipe {
  version: string;
  model: { name: string; version: string };
  /** sha256 of the model file, from its manifest; undefined: the manifest is not in the models directory. */
  modelSha256: string | undefined;
  /** Parts of a first article under this recipe; undefined: changeover.firstArticleParts. */
  firstArticleParts?: number;
}

/** The recipes in force (holdfast.vision_recipe with the model manifests): what a Holdfast station is switched to. */
export interface ChangeoverRecipeSource {
  active(station: StationRef, sku: string): Promise<ChangeoverRecipe | undefined>;
}

export interface ChangeoverDeps {
  /** Holdfast's inference stations (infra/vision station assignment); absent: this worker switches none. */
  stationControl?: StationControlPort;
  firstArticles?: FirstArticleReader;
  /** The OPC 40100 server behind a connector of role vision-system (Station.vision.connector). */
  visionFor?: (connector: string) => VisionSystemPort;
  /** The site's release interlock (Site.lineControl, a connector of role line-control). */
  lineControlFor?: (site: string) => LineInterlockPort;
  changeoverRecipes?: ChangeoverRecipeSource;
  mesFor: (site: string) => MesPort;
  ledger: IntentLedger;
  escalationFor: (site: string) => { target: string; port: EscalationPort };
}

interface StationOf {
  site: string;
  line: string;
  plan: ChangeoverStationPlan;
}

/** How long a Holdfast station's prepare waits for its inference worker's report after the arm, and how often it reads. */
const REPORT_WAIT_MS = 5_000;
const REPORT_POLL_MS = 50;

const refOf = ({ site, line, plan }: StationOf): StationRef => ({ site, line, station: plan.station });
const modelKeyOf = (model: { name: string; version: string }) => `${model.name}@${model.version}`;

/** What a Holdfast station applies now (the active assignment, else the armed one). */
function holdfastSnapshot(readBack: StationReadBack): ChangeoverStationSnapshot {
  const applied = readBack.active ?? readBack.armed;
  if (!applied) return { assignment: 'none' };
  return {
    assignment: readBack.active ? 'active' : 'armed',
    workOrder: applied.workOrder,
    sku: applied.sku,
    recipeVersion: applied.recipeVersion,
    modelKey: applied.modelKey,
    modelSha256: applied.modelSha256,
  };
}

/**
 * The changeover's steps (docs/changeover.md#the-changeover). Stations are reached through their ports: a Holdfast
 * station through StationControlPort, an external vision system through its OPC 40100 server. Every step is safe to
 * repeat: arming again arms the same assignment, PrepareRecipe of a prepared recipe answers its id, and the MES calls
 * go through the intent ledger under keys derived from the changeover's workflow id.
 */
export const createChangeoverActivities = (deps: ChangeoverDeps) => {
  const need = <T>(port: T | undefined, what: string): T => {
    if (port === undefined) throw new ConfigError(`this worker has no ${what}`);
    return port;
  };
  const stationControl = () => need(deps.stationControl, 'station control (Holdfast inference stations)');
  const vision = (connector: string) => need(deps.visionFor, 'vision-system connectors')(connector);

  return {
    /**
     * Resolves what every station of the line is to apply for the SKU. A station without one (no active recipe, no
     * model manifest, no external recipe id) fails the changeover at once, naming every such station: nothing is
     * touched before every station is known to be switchable.
     */
    async resolveChangeover(input: {
      site: string;
      line: string;
      sku: string;
      stations: ChangeoverStationConfig[];
    }): Promise<ChangeoverStationPlan[]> {
      return atBoundary(`resolve changeover of ${input.site}/${input.line} to ${input.sku}`, async () => {
        const missing: string[] = [];
        const plans: ChangeoverStationPlan[] = [];
        for (const s of input.stations) {
          if (s.vision) {
            if (s.vision.externalRecipeId === null) {
              missing.push(
                `station ${s.station} (vision system ${s.vision.system} on ${s.vision.connector}) has no external ` +
                  `recipe id for SKU ${input.sku} (vision.recipes)`,
              );
              continue;
            }
            plans.push({
              kind: 'opc40100',
              station: s.station,
              connector: s.vision.connector,
              system: s.vision.system,
              externalRecipeId: s.vision.externalRecipeId,
            });
            continue;
          }
          const recipes = need(deps.changeoverRecipes, 'recipe source');
          const recipe = await recipes.active({ site: input.site, line: input.line, station: s.station }, input.sku);
          if (!recipe) {
            missing.push(`station ${s.station} has no active recipe for SKU ${input.sku}`);
            continue;
          }
          if (!recipe.modelSha256) {
            missing.push(
              `station ${s.station}: the model ${modelKeyOf(recipe.model)} of recipe ${recipe.version} has no manifest`,
            );
            continue;
          }
          plans.push({
            kind: 'holdfast',
            station: s.station,
            recipeVersion: recipe.version,
            model: recipe.model,
            modelSha256: recipe.modelSha256,
            ...(recipe.firstArticleParts !== undefined ? { firstArticleParts: recipe.firstArticleParts } : {}),
          });
        }
        if (missing.length > 0) {
          throw ApplicationFailure.create({
            message: `cannot change ${input.site}/${input.line} over to ${input.sku}: ${missing.join('; ')}`,
            type: ErrorType.Validation,
            nonRetryable: true,
          });
        }
        return plans;
      });
    },

    /** Sets or lifts the line's release interlock: while not released, the line may not run product. */
    async setLineRelease(input: { site: string; line: string; workOrder: string; released: boolean }): Promise<void> {
      const lineControl = need(deps.lineControlFor, 'line-control connectors')(input.site);
      await atBoundary(`${input.released ? 'release' : 'interlock'} line ${input.site}/${input.line}`, () =>
        lineControl.setRelease(
          { site: input.site, line: input.line },
          { released: input.released, workOrder: input.workOrder },
        ),
      );
    },

    /** What a station applies now, read back from the station itself. */
    async readChangeoverStation(input: StationOf): Promise<ChangeoverStationSnapshot> {
      const { plan } = input;
      return atBoundary(`read back station ${plan.station}`, async () => {
        if (plan.kind === 'holdfast') return holdfastSnapshot(await stationControl().readBack(refOf(input)));
        const state = await vision(plan.connector).readState(plan.system);
        return {
          state: state.substate ? `${state.state}/${state.substate}` : state.state,
          externalRecipeId: state.externalRecipeId,
          internalRecipeId: state.internalRecipeId,
        };
      });
    },

    /** Arms a Holdfast station (it switches at the order's first frame) or prepares the vision system's recipe. */
    async prepareChangeoverStation(
      input: StationOf & { changeoverId: string; workOrder: string; sku: string },
    ): Promise<{ internalRecipeId?: string }> {
      const { plan } = input;
      return atBoundary(`prepare station ${plan.station}`, async () => {
        if (plan.kind === 'opc40100') {
          return vision(plan.connector).prepareRecipe(plan.system, plan.externalRecipeId);
        }
        const station = refOf(input);
        await stationControl().arm(station, {
          changeoverId: input.changeoverId,
          workOrder: input.workOrder,
          sku: input.sku,
          recipeVersion: plan.recipeVersion,
          model: plan.model,
        });
        // Prepared means loaded, as PrepareRecipe answers once a vision system is Ready: the inference worker loads
        // the model after the arm and reports it (tens of ms, hundreds under load). Verify reading before that report
        // would wait out its 2 s re-read interval (BENCHMARKS.md, bench:changeover). A station that has not reported
        // within REPORT_WAIT_MS is left to verify, which reads it again and names it.
        const ctx = Context.current();
        for (let waited = 0; waited < REPORT_WAIT_MS; waited += REPORT_POLL_MS) {
          const back = await stationControl().readBack(station);
          if (back.armed?.changeoverId === input.changeoverId || back.active?.workOrder === input.workOrder) break;
          await ctx.sleep(REPORT_POLL_MS);
        }
        return {};
      });
    },

    /**
     * Reads the station back and compares with what was asked: a Holdfast station's armed (or, once the order's first
     * frame arrived, active) assignment by order, recipe version, model and the model file's sha256; a vision system's
     * recipe ids and its Ready state. A disagreement is an answer, not an error: the workflow reads again.
     */
    async verifyChangeoverStation(
      input: StationOf & { changeoverId: string; workOrder: string; sku: string; internalRecipeId?: string },
    ): Promise<{ verified: boolean; after: ChangeoverStationSnapshot; problem?: string }> {
      const { plan } = input;
      return atBoundary(`verify station ${plan.station}`, async () => {
        if (plan.kind === 'opc40100') {
          const state = await vision(plan.connector).readState(plan.system);
          const after: ChangeoverStationSnapshot = {
            state: state.substate ? `${state.state}/${state.substate}` : state.state,
            externalRecipeId: state.externalRecipeId,
            internalRecipeId: state.internalRecipeId,
          };
          const problems = [
            state.externalRecipeId !== plan.externalRecipeId &&
              `external recipe ${String(state.externalRecipeId)}, asked ${plan.externalRecipeId}`,
            input.internalRecipeId !== undefined &&
              state.internalRecipeId !== input.internalRecipeId &&
              `internal recipe ${String(state.internalRecipeId)}, prepared ${input.internalRecipeId}`,
            state.state !== 'Ready' && state.substate !== 'Ready' && `state ${after.state}, not Ready`,
          ].filter((p): p is string => typeof p === 'string');
          return {
            verified: problems.length === 0,
            after,
            ...(problems.length ? { problem: problems.join('; ') } : {}),
          };
        }
        const readBack = await stationControl().readBack(refOf(input));
        const armed = readBack.armed?.changeoverId === input.changeoverId ? readBack.armed : undefined;
        const active = readBack.active?.workOrder === input.workOrder ? readBack.active : undefined;
        const applied = armed ?? active;
        const after = applied
          ? {
              assignment: armed ? ('armed' as const) : ('active' as const),
              workOrder: applied.workOrder,
              sku: applied.sku,
              recipeVersion: applied.recipeVersion,
              modelKey: applied.modelKey,
              modelSha256: applied.modelSha256,
            }
          : holdfastSnapshot(readBack);
        if (!applied) {
          return { verified: false, after, problem: `nothing armed or active for work order ${input.workOrder}` };
        }
        const problems = [
          applied.sku !== input.sku && `SKU ${applied.sku}, asked ${input.sku}`,
          applied.recipeVersion !== plan.recipeVersion &&
            `recipe ${applied.recipeVersion}, asked ${plan.recipeVersion}`,
          applied.modelKey !== modelKeyOf(plan.model) && `model ${applied.modelKey}, asked ${modelKeyOf(plan.model)}`,
          applied.modelSha256 !== plan.modelSha256 &&
            `model sha256 ${applied.modelSha256}, the manifest's ${plan.modelSha256}`,
        ].filter((p): p is string => typeof p === 'string');
        return { verified: problems.length === 0, after, ...(problems.length ? { problem: problems.join('; ') } : {}) };
      });
    },

    /**
     * Puts a station back as it was before the changeover (compensation): a Holdfast station's previous assignment;
     * a vision system's new recipe unprepared and its previous external recipe prepared again.
     */
    async revertChangeoverStation(
      input: StationOf & {
        changeoverId: string;
        before?: ChangeoverStationSnapshot;
        internalRecipeId?: string;
      },
    ): Promise<void> {
      const { plan } = input;
      await atBoundary(`revert station ${plan.station}`, async () => {
        if (plan.kind === 'holdfast') return stationControl().revert(refOf(input), input.changeoverId);
        const port = vision(plan.connector);
        const previous = input.before?.externalRecipeId;
        // Prepared by an earlier changeover and still wanted: leave it rather than unprepare what was there before.
        if (input.internalRecipeId !== undefined && input.internalRecipeId !== input.before?.internalRecipeId) {
          await port.unprepareRecipe(plan.system, input.internalRecipeId);
        }
        if (previous && previous !== plan.externalRecipeId) await port.prepareRecipe(plan.system, previous);
      });
    },

    /**
     * Waits for the order's first parts on the line's Holdfast stations, reading them every `pollInterval` and
     * heartbeating. Returns when a part failed, when `parts` passed, or as soon as more parts than `known` are in (so
     * the workflow can show them): at most `parts` + 1 calls per first article.
     */
    async awaitFirstArticle(input: {
      site: string;
      line: string;
      workOrder: string;
      parts: number;
      known: number;
      pollIntervalMs: number;
      /** The changeover's start: parts received before it do not count. Absent in histories from before it existed. */
      since?: string;
    }): Promise<{ outcome: 'passed' | 'failed' | 'pending'; parts: FirstArticlePart[] }> {
      const reader = need(deps.firstArticles, 'first-article reader');
      const ctx = Context.current();
      for (;;) {
        const parts = await atBoundary(`first article of ${input.workOrder}`, () =>
          reader.firstParts({ site: input.site, line: input.line }, input.workOrder, input.parts, input.since),
        );
        ctx.heartbeat({ parts: parts.length });
        if (parts.some((p) => p.result === 'fail')) return { outcome: 'failed', parts };
        if (parts.length >= input.parts) return { outcome: 'passed', parts };
        if (parts.length > input.known) return { outcome: 'pending', parts };
        // Rejects with CancelledFailure when the workflow stops waiting (an approval, a cancel, the timeout).
        await ctx.sleep(input.pollIntervalMs);
      }
    },

    /** Releases the order for production in the MES, once, under the changeover's release key. */
    async releaseOrderForProduction(input: {
      site: string;
      line: string;
      workOrder: string;
      workflowId: string;
    }): Promise<MesProductionRelease> {
      const mes = deps.mesFor(input.site);
      if (!mes.releaseForProduction) {
        throw configurationFailure(
          `the MES ${mes.system} of site ${input.site} offers no production release: work order ${input.workOrder} ` +
            'cannot be released by a changeover',
        );
      }
      const req = {
        idempotencyKey: changeoverKeys.release(input.workflowId),
        workOrder: input.workOrder,
        line: input.line,
        releasedBy: input.workflowId,
        comment: `changeover ${input.workflowId}: every station verified, first article accepted`,
      };
      return atBoundary(`MES production release of ${input.workOrder}`, () =>
        createOnce(
          deps.ledger,
          { key: req.idempotencyKey, step: 'mes-production-release', system: mes.system, request: req },
          (opts) => mes.releaseForProduction!(req, opts),
        ),
      );
    },

    /** Tells the site's escalation target about the changeover; once per changeover and reason. */
    async escalateChangeover(input: {
      site: string;
      line: string;
      workOrder: string;
      workflowId: string;
      reason: string;
      since: string;
      text: string;
    }): Promise<{ target: string }> {
      const { target, port } = deps.escalationFor(input.site);
      const message = {
        idempotencyKey: changeoverKeys.escalation(input.workflowId, input.reason),
        site: input.site,
        line: input.line,
        lotId: '',
        lotCaseWorkflowId: input.workflowId,
        waitingSince: input.since,
        text: input.text,
      };
      await atBoundary(`escalate changeover ${input.workflowId} to ${target}`, () =>
        createOnce(
          deps.ledger,
          { key: message.idempotencyKey, step: 'changeover-escalation', system: target, request: message },
          async () => {
            await port.escalate(message);
            return { target };
          },
        ),
      );
      return { target };
    },
  };
};

export type ChangeoverActivities = ReturnType<typeof createChangeoverActivities>;
