import { createAdviceActivities, type AdviceDeps } from './advice/advice.activities';
import { createChangeoverActivities, type ChangeoverDeps } from './changeover/changeover.activities';
import { createErpActivities, type ErpDeps } from './erp/erp.activities';
import { createErpFeedActivities, type ErpFeedDeps } from './erp-feed/erp-feed.activities';
import { createEscalationActivities, type EscalationDeps } from './escalation/escalation.activities';
import { createGenealogyActivities, type GenealogyDeps } from './traceability/genealogy.activities';
import { createMesActivities, type MesDeps } from './mes/mes.activities';
import { createRecallActivities, type RecallDeps } from './recall/recall.activities';
import { createRecallDrillActivities, type RecallDrillDeps } from './recall/recall-drill.activities';
import { createRecallContainActivities, type RecallContainDeps } from './recall/recall-contain.activities';
import {
  createRecallNotificationActivities,
  type RecallNotificationDeps,
} from './recall/recall-notification.activities';
import { createTraceabilityActivities, type TraceabilityDeps } from './traceability/traceability.activities';
import { createQualityRuleActivities, type QualityRuleDeps } from './quality-rules/quality-rules.activities';
import { createSupplierActivities, type SupplierDeps } from './supplier/supplier.activities';

export type ActivityDeps = MesDeps &
  ErpDeps &
  TraceabilityDeps &
  EscalationDeps &
  GenealogyDeps &
  RecallDeps &
  RecallDrillDeps &
  RecallContainDeps &
  RecallNotificationDeps &
  AdviceDeps &
  ChangeoverDeps &
  ErpFeedDeps &
  QualityRuleDeps &
  Partial<SupplierDeps>;

/** Every activity Holdfast registers, built over its ports. Workflows see only the type. */
export const createActivities = (deps: ActivityDeps) => ({
  ...createMesActivities(deps),
  ...createErpActivities(deps),
  ...createTraceabilityActivities(deps),
  ...createEscalationActivities(deps),
  ...createGenealogyActivities(deps),
  ...createRecallActivities(deps),
  ...createRecallDrillActivities(deps),
  ...createRecallContainActivities(deps),
  ...createRecallNotificationActivities(deps),
  ...createAdviceActivities(deps),
  ...createChangeoverActivities(deps),
  ...createErpFeedActivities(deps),
  ...createQualityRuleActivities(deps),
  ...createSupplierActivities({
    ...deps,
    // Optional so that the workers and tests that predate supplier quality need not pass them.
    supplierScores: deps.supplierScores ?? (() => Promise.reject(new Error('this worker has no supplier scorecards'))),
  }),
});

export type Activities = ReturnType<typeof createActivities>;
export type { ChangeoverRecipe, ChangeoverRecipeSource } from './changeover/changeover.activities';
export type { TraceLink } from './traceability/traceability.activities';
