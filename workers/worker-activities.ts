import type pg from 'pg';
import { createActivities } from '../activities';
import type {
  FirstArticleReader,
  GenealogyRecorder,
  LineInterlockPort,
  RecallReinspector,
  StationControlPort,
  VisionSystemPort,
} from '../activities/ports';
import { createPgAdviceStore } from '../infra/advice/pg-advice-store';
import { createPgQualityRuleStore } from '../infra/quality-rules/pg-quality-rule-store';
import { createAuditTrail } from '../infra/audit/audit-trail';
import type { HoldfastConfig } from '../infra/config/schema';
import { createGenealogyStore } from '../infra/genealogy/genealogy-store';
import { genealogyRecorder } from '../infra/genealogy/genealogy-recorder';
import { createPgIntentLedger } from '../infra/ledger/pg-intent-ledger';
import { createRecallContainmentStore } from '../infra/recall/recall-containment-store';
import { createRecallDrillStore } from '../infra/recall/recall-drill-store';
import { createRecallNotificationStore } from '../infra/recall/recall-notification-store';
import { createRecallStore } from '../infra/recall/recall-store';
import { createChangeoverRecipeSource } from '../infra/vision/changeover-recipes';
import { createErpFeedStore } from '../infra/erp-feed/erp-feed-store';
import type { SiteConnectors } from './connectors';
import { supplierScores } from '../infra/supplier/scorecard';

/**
 * The plant ports a changeover switches stations and the line's interlock through (docs/changeover.md). Each absent one
 * makes the changeover step that needs it fail naming it ("this worker has no …"), never skip.
 */
export interface ChangeoverPorts {
  /** Holdfast's inference stations (PostgreSQL station assignments read by the inference worker). */
  stationControl?: StationControlPort;
  firstArticles?: FirstArticleReader;
  /** By connector name (Station.vision.connector): connectors of role vision-system. */
  visionFor?: (connector: string) => VisionSystemPort;
  /** By site (Site.lineControl): connectors of role line-control. */
  lineControlFor?: (site: string) => LineInterlockPort;
}

/**
 * Every activity of a Holdfast worker over its database and its sites' connectors: the worker process, the test
 * stack and the benchmarks build them here, so none of them runs with an activity missing its port.
 */
export function createWorkerActivities(
  pool: pg.Pool,
  config: HoldfastConfig,
  connectors: Pick<SiteConnectors, 'mesFor' | 'erpFor' | 'escalationFor' | 'recallNoticeFor' | 'supplierNotice'>,
  opts: { reinspector: RecallReinspector; genealogy?: GenealogyRecorder; changeover?: ChangeoverPorts },
) {
  const audit = createAuditTrail(pool);
  return createActivities({
    pool,
    ledger: createPgIntentLedger(pool),
    mesFor: connectors.mesFor,
    erpFor: connectors.erpFor,
    escalationFor: connectors.escalationFor,
    recallNoticeFor: connectors.recallNoticeFor,
    recallNotifications: createRecallNotificationStore(pool),
    genealogy: opts.genealogy ?? genealogyRecorder(createGenealogyStore(audit)),
    recalls: createRecallStore(pool),
    drills: createRecallDrillStore(pool, config, audit),
    reinspector: opts.reinspector,
    containment: createRecallContainmentStore(pool),
    advice: createPgAdviceStore(pool, audit),
    changeoverRecipes: createChangeoverRecipeSource(pool, config),
    erpFeed: createErpFeedStore(pool, config),
    qualityRules: createPgQualityRuleStore(pool, audit),
    escalationPolicyFor: (site) => {
      const found = config.sites.find((s) => s.id === site);
      if (!found) throw new Error(`unknown site ${site}`);
      return found.escalationPolicy;
    },
    ...(connectors.supplierNotice ? { supplierNotice: connectors.supplierNotice } : {}),
    supplierScores: (period) => supplierScores(pool, period),
    ...opts.changeover,
  });
}
