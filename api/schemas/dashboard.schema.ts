/**
 * The quality dashboard's own reads (docs/dashboard.md): what the page needs that no other route answers in one
 * request. Everything else on the page (FPY, Pareto, lot quality, suppliers, SCARs, trace, recalls, dispositions)
 * comes from the routes every integrator uses, so the page shows what the API says.
 *
 * The browser code imports these *types* only (`import type`): zod stays on the server.
 */
import { z } from 'zod';
import { Identifier } from '../../infra/ingest/inspection.schema';
import { Instant, fromNotAfterTo } from './recall.schema';

export const DashboardSiteQuerySchema = z.strictObject({
  site: Identifier,
  line: Identifier.optional(),
});

/** Who is signed in, for the page's navigation (what it offers); the routes still decide every call. */
export const MeResponseSchema = z.object({
  id: z.string(),
  name: z.string(),
  roles: z.array(z.string()),
  /** The sites this person may read (config sites, narrowed by the token's sites), with their lines. */
  sites: z.array(
    z.object({
      id: z.string(),
      name: z.string().nullable(),
      lines: z.array(z.string()),
      /** The site's first-pass yield target (`sites[].fpyTarget`), null when none is configured. */
      fpyTarget: z.number().nullable().optional(),
      /** Each line's target: its own `fpyTarget`, else the site's; lines without either are absent. */
      lineFpyTargets: z.record(z.string(), z.number()).optional(),
    }),
  ),
  /** local: re-enter the password to sign; oidc: a recent sign-in at the provider is the re-authentication. */
  method: z.enum(['local', 'oidc']),
  /** Temporal Web UI base, for links from the page (namespace included). */
  temporalUiUrl: z.string().nullable(),
});
export type MeResponse = z.infer<typeof MeResponseSchema>;

const LotCaseTileSchema = z.object({
  lotId: z.string(),
  line: z.string(),
  sku: z.string(),
  stage: z.string(),
  workflowId: z.string(),
  runId: z.string(),
  openedAt: z.string(),
  ageSeconds: z.number().int(),
  /** When the disposition is due (opened + the site's disposition deadline); null where no deadline applies. */
  dispositionDueAt: z.string().nullable(),
  overdue: z.boolean(),
  /** Steps parked for attention (needs-attention), by name. */
  parkedSteps: z.array(z.string()),
  temporalUiUrl: z.string(),
});
export type LotCaseTile = z.infer<typeof LotCaseTileSchema>;

const RunningWorkflowTileSchema = z.object({
  kind: z.enum(['changeover', 'recall', 'mock-recall', 'recall-drill']),
  /** The business identity: the work order of a changeover, the recall id of a recall or drill. */
  id: z.string(),
  line: z.string().nullable(),
  stage: z.string(),
  startedAt: z.string(),
  workflowId: z.string(),
  temporalUiUrl: z.string(),
});
export type RunningWorkflowTile = z.infer<typeof RunningWorkflowTileSchema>;

const ConnectorTileSchema = z.object({
  /** MES, ERP, PLC, MQTT broker, Temporal, PostgreSQL. */
  name: z.string(),
  status: z.enum(['up', 'down', 'unknown']),
  detail: z.string().optional(),
  checkedAt: z.string(),
});
export type ConnectorTile = z.infer<typeof ConnectorTileSchema>;

/** A failed inspection as the live feed shows it: in the Now view's first answer and in each `inspections` event. */
export const LiveDefectSchema = z.object({
  eventId: z.string(),
  line: z.string(),
  station: z.string(),
  lotId: z.string(),
  partId: z.string(),
  defectClasses: z.array(z.string()),
  inspectedAt: z.string(),
});
export type LiveDefect = z.infer<typeof LiveDefectSchema>;

export const NowResponseSchema = z.object({
  site: z.string(),
  line: z.string().nullable(),
  generatedAt: z.string(),
  lotCases: z.object({
    open: z.number().int(),
    byStage: z.array(z.object({ stage: z.string(), count: z.number().int() })),
    overdue: z.number().int(),
    /** The open cases, oldest first (at most 200). */
    items: z.array(LotCaseTileSchema),
  }),
  running: z.array(RunningWorkflowTileSchema),
  connectors: z.array(ConnectorTileSchema),
  backlogs: z.object({
    outboxPending: z.number().int(),
    outboxOldestAgeSeconds: z.number().int().nullable(),
    deferredFrames: z.number().int(),
    deferredOldestAgeSeconds: z.number().int().nullable(),
  }),
  /** The latest failed inspections (newest first, at most 20), so the live feed starts filled. */
  latestDefects: z.array(LiveDefectSchema),
});
export type NowResponse = z.infer<typeof NowResponseSchema>;

/**
 * One server-sent event of `GET /v1/live?site=` (`event: <type>`, `data: <json>`). The page refreshes what an event
 * touches; `inspections` carries the failed ones of a statement (at most 20) so the live feed needs no extra read.
 */
export type LiveEvent =
  | {
      type: 'inspections';
      site: string;
      lines: string[];
      inspections: number;
      failed: number;
      defects: LiveDefect[];
    }
  | { type: 'lot-case'; site: string; line: string; lotId: string; stage: string };

/** `GET /v1/lots/{lotId}/defects?site=`: the lot's failed inspections for the MRB console. */
export const LOT_DEFECTS_LIMIT = 200;
export const LotDefectsResponseSchema = z.object({
  site: z.string(),
  lotId: z.string(),
  /** The lot's failed production inspections in all; `defects` holds the newest `limit` of them. */
  total: z.number().int(),
  limit: z.number().int(),
  defects: z.array(
    z.object({
      eventId: z.string(),
      line: z.string(),
      station: z.string(),
      partId: z.string(),
      inspectedAt: z.string(),
      defects: z.array(z.object({ class: z.string(), score: z.number() }).passthrough()),
      /** `/v1/defects/{eventId}/image` when the frame had an image reference the API may fetch; else null. */
      imageUrl: z.string().nullable(),
      /** The frame's reference as stored (shown when the API may not fetch it). */
      imageRef: z.string().nullable(),
    }),
  ),
});
export type LotDefectsResponse = z.infer<typeof LotDefectsResponseSchema>;

/** The longest range one chart covers: a p- or u-chart is drawn again from the parts in it. */
export const CHART_MAX_DAYS = 2;

export const ControlChartQuerySchema = z
  .strictObject({
    from: Instant.optional().describe('default: 24 hours before `to`'),
    to: Instant.optional().describe('default: now'),
  })
  .superRefine(fromNotAfterTo);

/** `GET /v1/quality-rules/{site}/{ruleId}/chart?from=&to=`: a control chart's points, limits and trips. */
export const ControlChartResponseSchema = z.object({
  site: z.string(),
  ruleId: z.string(),
  /** The rule's current version: its definition and limits draw the chart. */
  version: z.number().int(),
  kind: z.string(),
  line: z.string(),
  station: z.string().nullable(),
  from: z.string(),
  to: z.string(),
  title: z.string(),
  /** What each point is (p, np, u, c, count per window, …), as the rule defines it. */
  statistic: z.string(),
  centre: z.number().nullable(),
  /** The chart's limits where they are the same for every point (subgroups of a fixed size, a threshold); else null. */
  upperLimit: z.number().nullable(),
  lowerLimit: z.number().nullable(),
  points: z.array(
    z.object({
      at: z.string(),
      value: z.number(),
      /** The subgroup size behind the point (inspections), when the statistic has one. */
      n: z.number().int().nullable(),
      /** This point's own 3σ limits and standardised value (p- and u-charts with limits: they vary with n). */
      upperLimit: z.number().nullable(),
      lowerLimit: z.number().nullable(),
      z: z.number().nullable(),
      /**
       * The rule tests this point tripped, empty when none: the run rules `beyond-3-sigma`, `2-of-3-beyond-2-sigma`,
       * `4-of-5-beyond-1-sigma`, `run-of-8` on p- and u-charts; the rule's kind on an hourly chart of another rule.
       */
      tripped: z.array(z.string()),
      /** The escalation it raised, to link to. */
      escalationId: z.string().nullable(),
    }),
  ),
});
export type ControlChartResponse = z.infer<typeof ControlChartResponseSchema>;

/**
 * `GET /v1/metrics/defect-heatmap?site=&by=&from=&to=&line=`: defect rate (defective units ÷ units first inspected)
 * per key and shift date, from the aggregates kept at ingest.
 */
export const HEATMAP_DIMENSIONS = ['product', 'line', 'shift', 'component-lot', 'supplier'] as const;
/** The longest range one heat map covers: the analytics benchmark's 30-day window, and a day to spare. */
export const HEATMAP_MAX_DAYS = 31;

export const DefectHeatmapQuerySchema = z
  .strictObject({
    site: Identifier,
    by: z.enum(HEATMAP_DIMENSIONS),
    line: Identifier.optional(),
    from: Instant.optional().describe('hours starting at or after this instant; default: 30 days before `to`'),
    to: Instant.optional().describe('hours starting before this instant; default: now'),
  })
  .superRefine(fromNotAfterTo);

export const DefectHeatmapResponseSchema = z.object({
  site: z.string(),
  by: z.enum(HEATMAP_DIMENSIONS),
  line: z.string().nullable(),
  /** The range read: hours starting in [from, to). */
  from: z.string(),
  to: z.string(),
  /** Shift dates with any cell, ascending. */
  days: z.array(z.string()),
  /** The keys shown, most units first: at most `keyLimit` of the `totalKeys` with units in the range. */
  keys: z.array(z.string()),
  keyLimit: z.number().int(),
  totalKeys: z.number().int(),
  cells: z.array(
    z.object({
      key: z.string(),
      day: z.string(),
      units: z.number().int(),
      defective: z.number().int(),
      rate: z.number().nullable(),
    }),
  ),
});
export type DefectHeatmapResponse = z.infer<typeof DefectHeatmapResponseSchema>;
