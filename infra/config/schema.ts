import { z } from 'zod';
import { parseDurationMs } from './duration';
import { DEFAULT_QUALITY_TASK_QUEUE } from '../../workflows/contracts';
import { RuleDefinitionSchema, RuleIdSchema } from '../../activities/quality-rules/rule-definition.schema';
import {
  CONNECTOR_KINDS,
  ROLE_REFERENCES,
  isConnectorKind,
  knownConnectorKinds,
  type ConnectorRole,
} from './connector-kinds';

/** Temporal duration strings as accepted by the SDK ('250ms', '30s', '5m', '72h', '2d'). */
const Duration = z.string().regex(/^\d+(ms|s|m|h|d)$/, 'expected a duration such as 500ms, 30s, 5m, 4h or 2d');

/** `${env:NAME}` reads a secret from the environment at start; secrets never live in the file. */
export const EnvRef = z.string().regex(/^\$\{env:[A-Z_][A-Z0-9_]*\}$/, 'expected ${env:NAME}');

const Retry = z.strictObject({
  initialInterval: Duration,
  backoffCoefficient: z.number().min(1).max(10),
  maximumInterval: Duration,
  maximumAttempts: z.number().int().positive().optional(),
});

const ActivityPreset = z.strictObject({
  startToCloseTimeout: Duration,
  scheduleToCloseTimeout: Duration.optional(),
  retry: Retry,
});

const Temporal = z.strictObject({
  /** host:port of the frontend. Absent: the embedded dev server started by `npm start`. */
  address: z.string().min(1).optional(),
  namespace: z.string().min(1).default('default'),
  /** TLS for a self-hosted cluster or Temporal Cloud (mTLS); paths or env references. */
  tls: z
    .strictObject({
      serverName: z.string().optional(),
      clientCertPath: z.string().optional(),
      clientKeyPath: z.string().optional(),
      serverRootCaCertPath: z.string().optional(),
    })
    .optional(),
  /** Temporal Cloud API key, always from the environment. */
  apiKey: EnvRef.optional(),
  devServer: z
    .strictObject({
      port: z.number().int().min(1).max(65535).default(7233),
      uiPort: z.number().int().min(1).max(65535).default(8233),
      /** SQLite file under the data directory, so workflows survive a restart. */
      dbFile: z.string().default('temporal.sqlite'),
    })
    .prefault({}),
});

const WorkerPool = z.strictObject({
  name: z.string().min(1),
  taskQueue: z.string().min(1),
  workflows: z.boolean().default(true),
  activities: z.boolean().default(true),
  maxConcurrentActivityTaskExecutions: z.number().int().positive().default(100),
  maxConcurrentWorkflowTaskExecutions: z.number().int().positive().default(40),
  maxCachedWorkflows: z.number().int().nonnegative().default(1000),
});

/**
 * One entry under `connectors:`. `kind` picks the implementation (connector-kinds.ts); the other keys are the
 * connector's own, validated by its `configSchema` when a process opens it.
 */
const Connector = z.looseObject({
  kind: z.string().min(1),
  /**
   * false: a failing health check at start is logged and start-up goes on (for a target the process can do without
   * for a while, e.g. an escalation webhook). A connector that cannot be opened at all stops start-up either way.
   */
  required: z.boolean().default(true),
});

/** A key that moved under `connectors:`; the message says where. */
const movedToConnectors = (message: string) => z.never({ error: message }).optional();

/** The name of an entry under `connectors:` (checked against the entries and their roles below). */
const ConnectorName = (role: string) =>
  z.string({ error: `expected the name of a ${role} connector declared under connectors` }).min(1);

const Station = z.strictObject({
  id: z.string().min(1),
  name: z.string().optional(),
  /**
   * `shadow`: parallel monitoring while a station is validated. Results are recorded and a shadow workflow per defect records
   * what would be done, but no reject signal is written and no MES/ERP action is taken.
   */
  mode: z.enum(['production', 'shadow']).default('production'),
  /**
   * An external vision system at this station, switched over OPC UA for Machine Vision (OPC 40100) at a changeover
   * (docs/changeover.md): its frames are not Holdfast's to inspect. Absent: a Holdfast inference station.
   */
  vision: z
    .strictObject({
      /** A connector of kind opcua-machine-vision: the OPC UA server hosting the vision system. */
      connector: z.string().min(1),
      /** The vision system's name on that server (its VisionSystem object's browse name). */
      system: z.string().min(1),
      /** The vision system's own recipe id (OPC 40100 ExternalRecipeId) per SKU. */
      recipes: z.record(z.string().min(1), z.string().min(1)).default({}),
    })
    .optional(),
  /**
   * `incoming-inspection`: the station inspects received material (docs/analytics.md#supplier-quality). Its inspections
   * are ordinary ones whose lot is the received batch and whose SKU is the material; they decide the receipt by
   * `acceptance` instead of starting lot cases. Absent: `production`.
   */
  role: z.enum(['production', 'incoming-inspection']).optional(),
  acceptance: z
    .strictObject({
      /** n: parts of the receipt inspected before it is accepted. */
      sampleSize: z.number().int().positive().max(10_000).default(13),
      /** c: defective parts the sample may hold; one more rejects the receipt at once. */
      acceptanceNumber: z.number().int().nonnegative().default(0),
      /** Defect classes that reject the receipt on their first occurrence, whatever c allows. */
      criticalClasses: z.array(z.string().min(1)).default([]),
    })
    .refine((a) => a.acceptanceNumber < a.sampleSize, {
      message: 'acceptanceNumber must be below sampleSize',
      path: ['acceptanceNumber'],
    })
    .optional(),
});

const Roi = z.strictObject({
  x: z.number().int().nonnegative(),
  y: z.number().int().nonnegative(),
  width: z.number().int().positive(),
  height: z.number().int().positive(),
});

/** A recipe `npm start` makes sure exists (and activates) at start; plants manage theirs in holdfast.vision_recipe. */
const SeedRecipe = z.strictObject({
  site: z.string().min(1),
  /** Absent: every line / station of the site. */
  line: z.string().min(1).optional(),
  station: z.string().min(1).optional(),
  skus: z.array(z.string().min(1)).min(1),
  version: z.string().regex(/^[A-Za-z0-9._-]+$/),
  model: z.strictObject({ name: z.string().min(1), version: z.string().min(1) }),
  thresholds: z.record(z.string(), z.number().min(0).max(1)).default({}),
  roi: Roi.optional(),
  minDefectAreaPx: z.number().int().nonnegative().default(0),
  /** Parts of a new order that must pass before release (docs/changeover.md); absent: changeover.firstArticleParts. */
  firstArticleParts: z.number().int().positive().max(1000).optional(),
});

const Vision = z.strictObject({
  /** Directory holding `<model>/manifest.json` + .onnx; relative paths are from the repository root. */
  modelsDir: z.string().min(1).default('models'),
  /** The broker frames arrive on and results go back to: a connector of kind `mqtt`. */
  broker: ConnectorName('vision-broker (kind mqtt)').optional(),
  /**
   * The topic tree of the vision stream: cameras publish frames on `<topicPrefix>/<site>/<line>/<station>/frames`,
   * results go to `.../inspection`, and one-off images over HTTP are addressed the same way.
   */
  topicPrefix: z
    .string()
    .regex(/^[A-Za-z0-9_-]+$/)
    .default('holdfast'),
  /** The line PLC that diverts failed parts: a connector of kind `opcua-reject-station`. Absent: fails are recorded
   *  but nothing is diverted (logged at start). */
  rejectStation: ConnectorName('reject-station (kind opcua-reject-station)').optional(),
  mqtt: movedToConnectors(
    'moved: declare the broker under connectors (kind mqtt: url, embeddedPort, clientId, maxInFlight), name it in vision.broker, and set vision.topicPrefix',
  ),
  /**
   * Where frames may name their image by reference (`imageRef`): URL prefixes (http:, https:, file:). A reference
   * under none of them is refused; with none configured, frames must carry the image.
   */
  imageSources: z
    .array(z.url({ protocol: /^(https?|file)$/, error: 'expected an http:, https: or file: URL' }))
    .default([]),
  /** How long one image read by reference may take before the frame is kept and tried again later. */
  imageFetchTimeout: Duration.default('2s'),
  /** A frame kept because its image source was down is tried again after this, then after twice as long each time… */
  imageRetryInterval: Duration.default('5s'),
  /** …up to this. */
  imageRetryMaxBackoff: Duration.default('5m'),
  /** A kept frame whose image still cannot be read after this long is given up and recorded as refused. */
  imageRetryMaxAge: Duration.default('24h'),
  /** The inference worker's HTTP edge for one-off images: POST /v1/stations/{site}/{line}/{station}/frames. */
  http: z
    .strictObject({
      host: z.string().default('127.0.0.1'),
      /** 0: any free port (tests, benchmarks). */
      port: z.number().int().min(0).max(65535).default(3100),
      /** A frame's JSON (base64 is 4/3 of the image) or the image itself; images are 16 MiB at most. */
      bodyLimitBytes: z
        .number()
        .int()
        .positive()
        .default(24 * 1024 * 1024),
      /**
       * Requests per caller per window (OWASP API4), counted as the API counts them (infra/http/rate-limit.ts). A
       * machine key's 12 000 a minute (200 frames/s) is twice the fastest station we plan for (a press at 1 200
       * strokes a minute, five views a part: 100 frames/s) and above what one worker inspects (~100 frames/s on the
       * CI machine), so a camera at line rate is never refused; a runaway or stolen key is.
       */
      rateLimit: z
        .strictObject({
          max: z.number().int().positive().default(1_200),
          machineMax: z.number().int().positive().default(12_000),
          timeWindow: Duration.default('1m'),
        })
        .prefault({}),
    })
    .prefault({}),
  inference: z
    .strictObject({
      /** Frames per session.run; the batch closes early after `maxBatchWait`. */
      batchSize: z.number().int().positive().max(256).default(8),
      maxBatchWait: Duration.default('5ms'),
      /** onnxruntime intra-op threads; absent: the cores available. */
      intraOpThreads: z.number().int().positive().optional(),
      /** Results written to PostgreSQL per transaction at most. */
      ingestBatchSize: z.number().int().positive().max(500).default(64),
    })
    .prefault({}),
  recipes: z.array(SeedRecipe).default([]),
});
/**
 * Metrics and tracing (docs/operations.md). The API serves GET /metrics and /health on `api.port`, the inference worker
 * on `vision.http.port`; the Temporal worker has no HTTP edge, so it gets one here.
 */
const Observability = z.strictObject({
  worker: z
    .strictObject({
      host: z.string().default('127.0.0.1'),
      /** GET /metrics (Holdfast's series) and GET /health of the Temporal worker; 0: any free port. */
      port: z.number().int().min(0).max(65535).default(9470),
      /**
       * The Temporal SDK's own Prometheus exporter (task slots, poll and schedule-to-start latencies, …); 0: any free
       * port, not reported (tests that do not scrape it).
       */
      temporalSdkPort: z.number().int().min(0).max(65535).default(9471),
    })
    .prefault({}),
  tracing: z
    .strictObject({
      /**
       * OTLP/HTTP collector base URL (`/v1/traces` is appended), e.g. http://otel-collector:4318. Absent: tracing is
       * off, unless OTEL_EXPORTER_OTLP_ENDPOINT is set, which wins.
       */
      otlpEndpoint: z.url({ protocol: /^https?$/ }).optional(),
    })
    .prefault({}),
});

const Line = z.strictObject({ id: z.string().min(1), name: z.string().optional(), stations: z.array(Station).min(1) });

/** A configured drill scope: one of the recall scopes (docs/recall.md), checked again when the drill traces it. */
const DrillScope = z.looseObject({
  kind: z.enum(['lot-key', 'mes-lot', 'erp-batch', 'supplier-lot', 'part', 'serial', 'work-order', 'model-version']),
});

const RecallDrill = z.strictObject({
  enabled: z.boolean().default(true),
  /** How often a drill runs (a Temporal interval, e.g. 90d); with `cron`, the gap expected between drills. */
  every: Duration.default('90d'),
  /** Calendar times instead of an interval, e.g. `0 6 1 1,4,7,10 *` (06:00 on each quarter's first day, site time). */
  cron: z.string().min(1).optional(),
  /** `random-supplier-lot`: a supplier lot with genealogy at the site, picked anew for each drill. */
  scope: z.union([z.literal('random-supplier-lot'), DrillScope]).default('random-supplier-lot'),
  /** A drill not finished this long after it started is overdue and escalates. */
  completeWithin: Duration.default('8m'),
  /** A drill that finds the previous one older than `every` plus this escalates a missed drill. */
  grace: Duration.default('7d'),
});

/** A money amount per unit in the site's currency: not negative, at most 4 decimals. */
const Rate = z.number().nonnegative().finite();
/** A G/L account or cost centre as SAP keys them (up to 10 characters). */
const AccountKey = z.string().regex(/^[A-Za-z0-9]{1,10}$/, 'expected up to 10 letters or digits, e.g. 52000000');

/**
 * The site's ERP feed (docs/analytics.md#the-erp-feed): production order confirmations and cost of quality posted for
 * each interval, by a Temporal Schedule `erp-feed-<site>`. Absent: the site has no feed.
 */
export const ErpFeed = z.strictObject({
  /** A fixed interval (aligned to the epoch, e.g. 15m → :00, :15, :30, :45 UTC) or each end of a shift. */
  every: z.union([z.literal('shift-end'), Duration]),
  /** How long after an interval ends it is posted, so inspections stored just before the end are in. */
  settle: Duration.default('1m'),
  /** Per line, the station whose results the confirmations count; default: the line's last production station. */
  confirmingStations: z.record(z.string().min(1), z.string().min(1)).default({}),
  /** The routing operation every confirmation is posted against (SAP OrderOperation, four digits). */
  operation: z
    .string()
    .regex(/^\d{4}$/, 'four digits, e.g. 0010')
    .default('0010'),
  /** Unit of the confirmed quantities (SAP ConfirmationUnit). */
  unit: z.string().min(1).max(3).default('PC'),
  /** The company code the cost-of-quality journal entries are posted in. */
  companyCode: z.string().regex(/^[A-Za-z0-9]{1,4}$/, 'up to 4 letters or digits, e.g. 1010'),
  costCentre: AccountKey,
  accounts: z.strictObject({
    scrap: AccountKey,
    rework: AccountKey,
    inspection: AccountKey,
    externalFailure: AccountKey,
    /** The credit side of each cost-of-quality entry (e.g. an internal activity allocation account). */
    offset: AccountKey,
  }),
  rates: z.strictObject({
    /** Rework labour per hour. */
    reworkPerHour: Rate,
    /** Minutes of rework per reworked part. */
    reworkMinutesPerPart: Rate,
    /** Cost of one inspection. */
    inspectionPerPart: Rate,
  }),
  /** ISO 4217 code of the amounts (SAP TransactionCurrency). */
  currency: z.string().regex(/^[A-Z]{3}$/, 'an ISO 4217 code such as EUR'),
  /** When the site's first run finds nothing posted, it starts this far back (aligned), and catches up from there. */
  startBack: Duration.default('1d'),
});
export type ErpFeedConfig = z.infer<typeof ErpFeed>;
/** A local clock time, `HH:MM` (00:00 to 23:59). */
const ClockTime = z.string().regex(/^([01]\d|2[0-3]):[0-5]\d$/, 'expected a local clock time HH:MM (00:00 to 23:59)');

/** One shift of a site's calendar, by local clock time in the site's time zone (docs/analytics.md#shared-definitions). */
const Shift = z.strictObject({
  id: z.string().regex(/^[A-Za-z0-9_-]{1,40}$/, '1 to 40 letters, digits, - and _'),
  name: z.string().optional(),
  /** Local clock time the shift starts. */
  start: ClockTime,
  /** Local clock time it ends; not after `start`: it runs across midnight (its shift date is the day it started). */
  end: ClockTime,
});
export type ShiftConfig = z.infer<typeof Shift>;

/** No shifts configured: one, all day. */
export const ALL_DAY_SHIFT: ShiftConfig = { id: 'all', start: '00:00', end: '00:00' };

const minutesOf = (clock: string) => Number(clock.slice(0, 2)) * 60 + Number(clock.slice(3, 5));
const clockOf = (minute: number) =>
  `${String(Math.floor(minute / 60)).padStart(2, '0')}:${String(minute % 60).padStart(2, '0')}`;

/**
 * The shifts cover the day once: every minute of the local day belongs to exactly one shift. Each issue names the
 * field: the shift that overlaps another at its start, or the list when a stretch of the day is left uncovered.
 */
function checkShiftCalendar(shifts: readonly ShiftConfig[], ctx: z.RefinementCtx): void {
  const owner = new Array<number | undefined>(24 * 60).fill(undefined);
  shifts.forEach((shift, i) => {
    const earlier = shifts.findIndex((s) => s.id === shift.id);
    if (earlier !== i) {
      ctx.addIssue({ code: 'custom', path: [i, 'id'], message: `shift id "${shift.id}" is used twice` });
      return;
    }
    const start = minutesOf(shift.start);
    const end = minutesOf(shift.end);
    const length = end > start ? end - start : end + 24 * 60 - start;
    for (let k = 0; k < length; k++) {
      const minute = (start + k) % (24 * 60);
      const other = owner[minute];
      if (other !== undefined) {
        ctx.addIssue({
          code: 'custom',
          path: [i, 'start'],
          message: `shift ${shift.id} (${shift.start}–${shift.end}) overlaps shift ${shifts[other]?.id} at ${clockOf(minute)}`,
        });
        return;
      }
      owner[minute] = i;
    }
  });
  // The first uncovered stretch, from where it starts (it may run across midnight).
  const day = 24 * 60;
  const free = owner.findIndex((o, m) => o === undefined && owner[(m + day - 1) % day] !== undefined);
  if (free >= 0) {
    let end = free;
    while (owner[end % day] === undefined) end++;
    ctx.addIssue({
      code: 'custom',
      path: [],
      message: `the shifts must cover the whole day: ${clockOf(free)}–${clockOf(end % day)} belongs to no shift`,
    });
  }
}

/** An IANA time zone name that this runtime (and so PostgreSQL's zone database, which has the same names) knows. */
const TimeZone = z.string().refine(
  (zone) => {
    try {
      new Intl.DateTimeFormat('en', { timeZone: zone });
      return true;
    } catch {
      return false;
    }
  },
  { message: 'expected an IANA time zone such as Europe/Berlin or America/Chicago' },
);

const Site = z.strictObject({
  id: z.string().regex(/^[A-Za-z0-9_-]+$/, 'letters, digits, - and _ only (used in workflow ids)'),
  name: z.string().optional(),
  timezone: TimeZone.default('UTC'),
  /**
   * The site's shift calendar by local clock time in `timezone`, covering the day without overlap
   * (docs/analytics.md#shared-definitions). Absent: one shift, `all`, 00:00 to 00:00.
   */
  shifts: z
    .array(Shift)
    .min(1)
    .superRefine(checkShiftCalendar)
    .default(() => [{ ...ALL_DAY_SHIFT }]),
  /** Names of entries under `connectors`. */
  mes: ConnectorName('mes'),
  erp: ConnectorName('erp'),
  /** Where an overdue disposition is announced: a connector of kind escalation-log or escalation-webhook. */
  escalation: ConnectorName('escalation'),
  /**
   * The ERP plant whose batches this site's lots are. The MES's lot ids are those batches (docs/traceability.md), so
   * one lot has one key whichever system states it.
   */
  erpPlant: z.string().min(1).max(4).default('1010'),
  lines: z.array(Line).min(1),
  /**
   * The PLC holding each line's release interlock (a connector of kind opcua-line-control): set at a changeover's
   * start, released only after its first article (docs/changeover.md). Absent: changeovers run without an interlock
   * (logged at start).
   */
  lineControl: z.string().min(1).optional(),
  /**
   * What a tripped statistical rule does (docs/analytics.md#statistical-escalation): `alert` the escalation target
   * only; `hold-line` also holds the rule's line in the MES; `hold-order` holds the work order of the part that
   * tripped it. A hold is released only by a signed decision.
   */
  escalationPolicy: z.enum(['alert', 'hold-line', 'hold-order']).default('alert'),
  policy: z
    .strictObject({
      blockQuantity: z.enum(['defective-parts', 'whole-lot']).default('defective-parts'),
      notificationType: z.string().min(1).default('F3'),
      dispositionTimeout: Duration.default('4h'),
      escalation: movedToConnectors(
        'moved: declare the target under connectors (kind escalation-log, or escalation-webhook with its url) and name it in sites[].escalation',
      ),
    })
    .prefault({}),
  /** What a mock recall is scored against (docs/recall.md#score). */
  recall: z
    .strictObject({
      traceWithin: Duration.default('8m'),
      reconciliationAtLeast: z.number().min(0).max(1).default(0.995),
      /** How a real recall tells customers (docs/recall.md#notify); absent: this site's real recalls cannot notify. */
      notify: z
        .strictObject({
          /** A connector of role recall-notice: recall-notice-webhook, recall-notice-smtp or recall-notice-file. */
          target: ConnectorName('recall-notice'),
          ackWithin: Duration.default('24h'),
          escalateEvery: Duration.default('24h'),
          escalationLimit: z.number().int().min(0).max(100).default(3),
          concurrency: z.number().int().positive().max(100).default(10),
        })
        .optional(),
      /** Scheduled mock-recall drills (docs/recall.md#drills): one Temporal Schedule per site. */
      drill: RecallDrill.optional(),
    })
    .prefault({}),
  /** Confirmations and cost of quality to the site's ERP at its interval (docs/analytics.md#the-erp-feed). */
  erpFeed: ErpFeed.optional(),
});

/** An http or https origin, written as the URL standard serialises it (no path, query, user or fragment). */
const ImageOrigin = z
  .string()
  .refine(
    (v) => {
      if (!URL.canParse(v)) return false;
      const u = new URL(v);
      return (u.protocol === 'http:' || u.protocol === 'https:') && u.origin === v.replace(/\/$/, '');
    },
    { message: 'must be an http or https origin (scheme://host[:port]) without path, query or credentials' },
  )
  .transform((v) => new URL(v).origin);

export const HoldfastConfig = z
  .strictObject({
    temporal: Temporal.prefault({}),
    taskQueues: z.strictObject({ quality: z.string().min(1).default(DEFAULT_QUALITY_TASK_QUEUE) }).prefault({}),
    workerPools: z.array(WorkerPool).min(1),
    activityPresets: z.strictObject({
      mesCall: ActivityPreset,
      erpPost: ActivityPreset,
      traceWrite: ActivityPreset,
      notify: ActivityPreset,
    }),
    outbox: z
      .strictObject({
        pollInterval: Duration.default('200ms'),
        batchSize: z.number().int().positive().max(1000).default(50),
        maxBackoff: Duration.default('30s'),
        /** How long a dispatched row may wait for its workflow to record the part before it is sent again. */
        confirmationGrace: Duration.default('30s'),
      })
      .prefault({}),
    api: z
      .strictObject({
        host: z.string().default('127.0.0.1'),
        port: z.number().int().min(0).max(65535).default(3000),
        /** Base URL of the Temporal Web UI, for links in API responses. */
        temporalUiUrl: z.url().default('http://127.0.0.1:8233'),
        /**
         * Browser origins allowed to call the codec endpoint (POST /codec/decode, /codec/encode), i.e. where the
         * Temporal Web UI is served. Default: the origin of temporalUiUrl.
         */
        codecUiOrigins: z.array(z.url()).optional(),
        /**
         * Who may decode payloads through the codec endpoint. `signed-in`: quality staff, auditors and admins, with the
         * bearer token the Web UI passes on (production: the UI signs in through the same OpenID provider).
         * `local-ui`: a browser on this machine at one of codecUiOrigins, without a token; only for the embedded
         * `npm start`, whose dev-server Web UI has no sign-in, and only while the API listens on loopback.
         */
        codecAccess: z.enum(['signed-in', 'local-ui']).default('signed-in'),
        bodyLimitBytes: z.number().int().positive().default(1_048_576),
        maxBatch: z.number().int().positive().default(500),
        /**
         * Requests per caller per window (OWASP API4): a person by their id, a machine by its key, anyone else by
         * client address. Machine keys get their own, higher limit: a station posts every part, and the benchmarks
         * post about 100 requests a second from one key. `signIn` bounds POST /v1/auth/token per client address,
         * on top of the account lock-out (identity.local.maxFailedSignIns).
         */
        rateLimit: z
          .strictObject({
            max: z.number().int().positive().default(1_200),
            machineMax: z.number().int().positive().default(12_000),
            timeWindow: Duration.default('1m'),
            signIn: z
              .strictObject({
                max: z.number().int().positive().default(10),
                timeWindow: Duration.default('1m'),
              })
              .prefault({}),
          })
          .prefault({}),
        /** The dashboard's own reads (docs/dashboard.md#now). */
        dashboard: z
          .strictObject({
            /**
             * Other processes' GET /health, probed for the dashboard's connector tiles (at most 500 ms each, answers
             * kept 5 s). `name` is the tile (MES, ERP, PLC, MQTT broker); `check` the entry of the answer's `checks`
             * that decides it (e.g. `connector:mes-sim`), else the answer's status. `npm start` fills it for the
             * processes it starts (HOLDFAST_DASHBOARD_HEALTH_ENDPOINTS); a tile with no endpoint shows unknown.
             */
            healthEndpoints: z
              .array(z.strictObject({ name: z.string().min(1), url: z.url(), check: z.string().min(1).optional() }))
              .default([]),
            /**
             * How long one GET /v1/live stream stays open: then it ends and the page opens another, with the token it
             * holds then (a stream never outlives its credentials by more than this).
             */
            liveMaxDuration: Duration.default('15m'),
            /**
             * Origins (scheme, host, port: `http://camera-store.plant1:8080`) whose frame images the API may fetch and
             * serve to signed-in readers (GET /v1/defects/{id}/image, docs/dashboard.md#mrb-console-data). Exact
             * origin match, http and https only. Default: none, so the API fetches nothing a frame's imageRef names.
             */
            imageOrigins: z.array(ImageOrigin).default([]),
          })
          .prefault({}),
      })
      .prefault({}),
    vision: Vision.prefault({}),
    observability: Observability.prefault({}),
    /** Who may call Holdfast's HTTP routes (docs/identity.md). */
    identity: z
      .strictObject({
        /**
         * The plant's OpenID Connect provider (Keycloak, Entra ID, Okta): its issuer URL, whose discovery document
         * names the signing keys. Absent: only local accounts sign in.
         */
        issuer: z.url().optional(),
        /** The `aud` Holdfast's access tokens carry at that provider. */
        audience: z.string().min(1).optional(),
        /** Claims (dot path for nested ones, e.g. `realm_access.roles`) holding a user's roles and sites. */
        rolesClaim: z.string().min(1).default('roles'),
        sitesClaim: z.string().min(1).default('sites'),
        /** Accepted signature algorithms of the provider's tokens: asymmetric only (never `none`, never HS*). */
        algorithms: z
          .array(z.enum(['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA']))
          .min(1)
          .default(['RS256', 'ES256']),
        /** Local accounts (holdfast.user_account), the embedded default: POST /v1/auth/token. */
        local: z
          .strictObject({
            enabled: z.boolean().default(true),
            /** Lifetime of a token from POST /v1/auth/token. */
            tokenTtl: Duration.default('15m'),
            /** Failed sign-ins in a row that lock an account, and for how long. */
            maxFailedSignIns: z.number().int().positive().default(5),
            lockFor: Duration.default('15m'),
            /** Holdfast's signing key pair (ES256), created on first start; relative to the data directory. */
            signingKeyFile: z.string().min(1).default('identity/signing-key.json'),
          })
          .prefault({}),
        /** Electronic signatures on dispositions (docs/e-signatures.md). */
        signatures: z
          .strictObject({
            /**
             * How recent an OpenID user's sign-in (`auth_time`) must be to sign: older, and the API asks them to sign
             * in again at the provider (Part 11 §11.200(a)). Local accounts re-enter their password instead.
             */
            maxAuthAge: Duration.default('5m'),
            /** The key pair (ES256) that seals signatures, created on first start; relative to the data directory. */
            keyFile: z.string().min(1).default('identity/signature-key.json'),
          })
          .prefault({}),
      })
      .refine((i) => (i.issuer === undefined) === (i.audience === undefined), {
        message: 'identity.issuer and identity.audience go together',
        path: ['audience'],
      })
      .prefault({}),
    /** The genealogy (docs/traceability.md). */
    traceability: z
      .strictObject({
        /** One sync workflow per site and system (genealogy-sync-<erp|mes>-<site>), started by the worker. */
        sync: z
          .strictObject({
            enabled: z.boolean().default(false),
            systems: z
              .array(z.enum(['erp', 'mes']))
              .min(1)
              .default(['erp', 'mes']),
            /**
             * Which system states production (consumed, produced, split, merged). Both record it; counting both
             * would double every movement. The MES (default) knows it as it happens, the ERP when it is posted.
             * Receipts and deliveries always come from the ERP, produced parts from the MES.
             */
            production: z.enum(['erp', 'mes']).default('mes'),
            /** Wait after a page that left nothing to read. */
            pollInterval: Duration.default('30s'),
            /** Documents per page (one activity each). */
            pageSize: z.number().int().positive().max(5000).default(500),
          })
          .prefault({}),
        /**
         * The MES's production events pushed over MQTT (docs/traceability.md#from-the-mes): the worker subscribes when
         * `broker` names a connector of kind mqtt (its url, login and TLS; an account that may read these topics only).
         * Absent (or without `broker`): off, and the MES sync's REST pull alone brings them.
         */
        mesEvents: z
          .strictObject({
            broker: ConnectorName('vision-broker (kind mqtt)').optional(),
            /** The persistent session the broker keeps unacknowledged events in; one per worker deployment. */
            clientId: z.string().min(1).default('holdfast-genealogy'),
            /** The Unified Namespace topics of every line's production performance. */
            topicFilter: z.string().min(1).default('plant/+/+/+/production/performance'),
          })
          .optional(),
      })
      .prefault({}),
    /** The audit trail (docs/audit-trail.md). */
    audit: z
      .strictObject({
        /** How often the API writes the audit chain's head to the anchor file (when it has moved). */
        anchorInterval: Duration.default('5m'),
        /** JSON lines, one per anchor; relative to the data directory (HOLDFAST_DATA_DIR, .holdfast/data). */
        anchorFile: z.string().min(1).default('audit/anchors.jsonl'),
      })
      .prefault({}),
    connectors: z.record(z.string().regex(/^[a-z0-9-]+$/), Connector),
    sites: z.array(Site).min(1),
    /** Changeovers (docs/changeover.md): what starts them and how long each step may take. */
    changeover: z
      .strictObject({
        /**
         * The MES's job-order events over MQTT (a connector of kind mqtt; a persistent session under clientId, QoS 1).
         * Absent: only the REST fallback below reads them.
         */
        events: z
          .strictObject({
            broker: z.string().min(1).optional(),
            clientId: z.string().min(1).default('holdfast-job-orders'),
            topicFilter: z.string().min(1).default('plant/+/+/+/production/job-orders'),
          })
          .optional(),
        /** How often the MES's job-order events are read over REST (what the MQTT stream missed); 0s: never. */
        pollInterval: Duration.default('5s'),
        /** A `started` order event starts a changeover unless this is false (manual changeovers only). */
        startOnOrderEvent: z.boolean().default(true),
        /** How long preparing one station may take (model load, PrepareRecipe) before it is retried. */
        prepareTimeout: Duration.default('30s'),
        /** Read-backs that disagree with what was asked before the changeover fails. */
        verifyAttempts: z.number().int().positive().max(20).default(3),
        /** Parts of the new order that must pass before release, when the recipe names none. */
        firstArticleParts: z.number().int().positive().max(1000).default(3),
        /** The first article not decided within this escalates (and again each time it passes). */
        firstArticleEscalateAfter: Duration.default('15m'),
        /** The first article not decided within this fails the changeover. */
        firstArticleTimeout: Duration.default('8h'),
      })
      .prefault({}),
    /**
     * Quality-aware scheduling advice (docs/changeover.md#scheduling-advice): a rule per line that watches the defect
     * rate of parts by component lot and, when a lot's rate is above `thresholdRate` with enough evidence, proposes to
     * hold what is left of the lot or use it on less critical orders.
     */
    advice: z
      .strictObject({
        /** Runs the rule (workflow `line-quality-advisor-<site>-<line>`) for every configured line. */
        enabled: z.boolean().default(false),
        /** The sliding window of inspections each evaluation counts (by inspection time, ending now). */
        window: Duration.default('7d'),
        /** The defect rate a lot may have; advice needs evidence that its true rate is above this. */
        thresholdRate: z.number().gt(0).lt(1).default(0.05),
        /** Parts of a lot inspected in the window before the test is applied at all. */
        minParts: z.number().int().positive().default(50),
        /** α of the one-sided exact binomial test of H0: rate ≤ thresholdRate. */
        significance: z.number().gt(0).lt(0.5).default(0.01),
        /** How often each line is evaluated. */
        evaluationInterval: Duration.default('15m'),
      })
      .prefault({}),
    /**
     * Statistical escalation (docs/analytics.md#statistical-escalation): one evaluator per configured line reads its
     * new inspections and evaluates the rules stored through `PUT /v1/quality-rules/{site}/{ruleId}`.
     */
    qualityRules: z
      .strictObject({
        /** Runs the evaluator (workflow `quality-rule-evaluator-<site>-<line>`) for every configured line. */
        enabled: z.boolean().default(false),
        /** The pause between an evaluator's passes. */
        evaluationInterval: Duration.default('5s'),
        /** Inspections per transaction, and transactions per pass. */
        batchSize: z.number().int().positive().max(10_000).default(1000),
        maxBatches: z.number().int().positive().max(100).default(10),
        /** An escalation also reads its release decision this often, should the release route's wake-up be lost. */
        releaseCheckInterval: Duration.default('1m'),
        /**
         * Rules a new installation starts with: each is stored as version 1 (changed by `temporal.yaml`) when the
         * rule has no version yet; later changes are made through the API and are never overwritten from here.
         */
        seed: z
          .array(
            z.strictObject({
              site: z.string().min(1),
              ruleId: RuleIdSchema,
              line: z.string().min(1),
              station: z.string().min(1).optional(),
              definition: RuleDefinitionSchema,
              active: z.boolean().default(true),
            }),
          )
          .default([]),
      })
      .prefault({}),
    /** Supplier quality (docs/analytics.md#supplier-quality). */
    supplierQuality: z
      .strictObject({
        /** The ERP notification type of a complaint against a supplier (SAP Q2). */
        complaintNotificationType: z.string().min(1).default('Q2'),
        /** SAP defect code group and code the complaint's first item carries. */
        defectCodeGroup: z.string().min(1).default('QM-E'),
        defectCode: z.string().min(1).default('0001'),
        /** How often decided receipts whose workflow has not started are looked for (the outbox's safety net). */
        relayInterval: Duration.default('1s'),
        /** Sends scorecards to the ERP's supplier evaluation on a Temporal Schedule (one, global). */
        evaluation: z
          .strictObject({
            enabled: z.boolean().default(false),
            every: Duration.default('1d'),
            /** The period each post covers, ending at the run. */
            period: Duration.default('30d'),
          })
          .prefault({}),
        scar: z
          .strictObject({
            /** Request a SCAR automatically when a supplier crosses the threshold below. */
            auto: z.boolean().default(true),
            /** Over the receipts decided in `window`: at least `minReceipts`, and a rejection rate at or above this. */
            lotRejectionRate: z.number().gt(0).max(1).default(0.2),
            minReceipts: z.number().int().positive().default(5),
            window: Duration.default('90d'),
            /** Where SCARs go to the supplier: a connector of role supplier-notice. Absent: recorded, not sent. */
            channel: z.string().min(1).optional(),
            /** The 8D response is due this long after the request (and after each rejected response or reopen). */
            responseDue: Duration.default('14d'),
            /** A reminder this often while the response is outstanding. */
            remindEvery: Duration.default('3d'),
            /** Escalated when the response is this late. */
            escalateAfter: Duration.default('7d'),
            /** Where an escalation is announced: the escalation connector of this site. */
            escalationSite: z.string().min(1).optional(),
            /** Receipts after acceptance that must all be accepted to close it. */
            verifyReceipts: z.number().int().positive().max(100).default(3),
          })
          .prefault({}),
      })
      .prefault({}),
    /** Real recalls (docs/recall.md). */
    recall: z
      .strictObject({
        /** The contain stage (docs/recall.md#contain): lots per activity, and how many at once. */
        contain: z
          .strictObject({
            /** Lots contained by one activity; the workflow's history grows by batch, not by lot. */
            batchSize: z.number().int().positive().max(1000).default(100),
            /** Batches running at once. */
            parallelBatches: z.number().int().positive().max(64).default(4),
            /** Lots of one batch worked on at once: at most parallelBatches × lotConcurrency calls reach the MES. */
            lotConcurrency: z.number().int().positive().max(64).default(8),
            /** How long one batch may take, and how soon a silent one (a dead worker) is given to another worker. */
            batchTimeout: Duration.default('10m'),
            heartbeatTimeout: Duration.default('30s'),
          })
          .prefault({}),
      })
      .prefault({}),
  })
  .superRefine((cfg, ctx) => {
    checkConnectors(cfg, ctx);
    cfg.vision.recipes.forEach((recipe, i) => {
      const site = cfg.sites.find((s) => s.id === recipe.site);
      if (!site) {
        ctx.addIssue({
          code: 'custom',
          path: ['vision', 'recipes', i, 'site'],
          message: `unknown site "${recipe.site}"`,
        });
        return;
      }
      const line = recipe.line === undefined ? undefined : site.lines.find((l) => l.id === recipe.line);
      if (recipe.line !== undefined && !line) {
        ctx.addIssue({
          code: 'custom',
          path: ['vision', 'recipes', i, 'line'],
          message: `unknown line "${recipe.line}"`,
        });
      } else if (
        recipe.station !== undefined &&
        !(line ? [line] : site.lines).some((l) => l.stations.some((st) => st.id === recipe.station))
      ) {
        ctx.addIssue({
          code: 'custom',
          path: ['vision', 'recipes', i, 'station'],
          message: `unknown station "${recipe.station}"`,
        });
      }
    });
    cfg.sites.forEach((site, i) => checkErpFeed(site, i, ctx));
    if (!cfg.workerPools.some((p) => p.taskQueue === cfg.taskQueues.quality && p.workflows)) {
      ctx.addIssue({
        code: 'custom',
        path: ['workerPools'],
        message: `no worker pool runs workflows on the quality task queue "${cfg.taskQueues.quality}"`,
      });
    }
  });

export type HoldfastConfig = z.infer<typeof HoldfastConfig>;

/** The feed's confirming stations name lines and production stations of its site; an interval is at least a minute. */
function checkErpFeed(site: z.infer<typeof Site>, i: number, ctx: z.RefinementCtx): void {
  const feed = site.erpFeed;
  if (!feed) return;
  const at = (...rest: (string | number)[]) => ['sites', i, 'erpFeed', ...rest];
  // Refinements run even when a field failed its own check: a malformed interval is named there, not here.
  const every = /^\d+(ms|s|m|h|d)$/.test(feed.every) ? parseDurationMs(feed.every) : undefined;
  if (every !== undefined && every < 60_000) {
    ctx.addIssue({ code: 'custom', path: at('every'), message: 'at least 1m, or shift-end' });
  }
  for (const [lineId, stationId] of Object.entries(feed.confirmingStations)) {
    const line = site.lines.find((l) => l.id === lineId);
    if (!line) {
      ctx.addIssue({ code: 'custom', path: at('confirmingStations', lineId), message: `unknown line "${lineId}"` });
      continue;
    }
    const station = line.stations.find((st) => st.id === stationId);
    if (!station || station.mode !== 'production') {
      ctx.addIssue({
        code: 'custom',
        path: at('confirmingStations', lineId),
        message: station
          ? `station "${stationId}" is in shadow mode: its results never count`
          : `unknown station "${stationId}" on line "${lineId}"`,
      });
    }
  }
}

type ConnectorReference = { path: (string | number)[]; name: string; role: ConnectorRole };

/** Every place temporal.yaml names a connector, with the role it must play there. */
export function connectorReferences(cfg: {
  sites: {
    mes: string;
    erp: string;
    escalation: string;
    recall?: { notify?: { target: string } | undefined };
    lineControl?: string | undefined;
    lines?: { stations: { vision?: { connector: string } | undefined }[] }[];
  }[];
  vision: { broker?: string | undefined; rejectStation?: string | undefined };
  traceability?: { mesEvents?: { broker?: string | undefined } };
  changeover?: { events?: { broker?: string | undefined } | undefined };
  supplierQuality?: { scar?: { channel?: string | undefined } };
}): ConnectorReference[] {
  const refs: ConnectorReference[] = cfg.sites.flatMap((site, i) =>
    (['mes', 'erp', 'escalation'] as const).map((role) => ({ path: ['sites', i, role], name: site[role], role })),
  );
  cfg.sites.forEach((site, i) => {
    const target = site.recall?.notify?.target;
    if (target !== undefined) {
      refs.push({ path: ['sites', i, 'recall', 'notify', 'target'], name: target, role: 'recall-notice' });
    }
    if (site.lineControl !== undefined) {
      refs.push({ path: ['sites', i, 'lineControl'], name: site.lineControl, role: 'line-control' });
    }
    site.lines?.forEach((line, j) =>
      line.stations.forEach((station, k) => {
        if (station.vision !== undefined) {
          refs.push({
            path: ['sites', i, 'lines', j, 'stations', k, 'vision', 'connector'],
            name: station.vision.connector,
            role: 'vision-system',
          });
        }
      }),
    );
  });
  if (cfg.vision.broker !== undefined) {
    refs.push({ path: ['vision', 'broker'], name: cfg.vision.broker, role: 'vision-broker' });
  }
  if (cfg.vision.rejectStation !== undefined) {
    refs.push({ path: ['vision', 'rejectStation'], name: cfg.vision.rejectStation, role: 'reject-station' });
  }
  const mesEventsBroker = cfg.traceability?.mesEvents?.broker;
  if (mesEventsBroker !== undefined) {
    refs.push({ path: ['traceability', 'mesEvents', 'broker'], name: mesEventsBroker, role: 'vision-broker' });
  }
  const jobOrderBroker = cfg.changeover?.events?.broker;
  if (jobOrderBroker !== undefined) {
    refs.push({ path: ['changeover', 'events', 'broker'], name: jobOrderBroker, role: 'vision-broker' });
  }
  const scarChannel = cfg.supplierQuality?.scar?.channel;
  if (scarChannel !== undefined) {
    refs.push({ path: ['supplierQuality', 'scar', 'channel'], name: scarChannel, role: 'supplier-notice' });
  }
  return refs;
}

/**
 * Connectors are checked here, where every process loads its configuration, so the API, the worker and the inference
 * worker refuse the same file with the same messages: an unknown kind, a reference to a connector that is not
 * declared or plays another role, and a declared connector nothing uses (a typo on either side).
 */
function checkConnectors(
  cfg: Parameters<typeof connectorReferences>[0] & { connectors: Record<string, { kind: string }> },
  ctx: z.RefinementCtx,
): void {
  for (const [name, block] of Object.entries(cfg.connectors)) {
    if (!isConnectorKind(block.kind)) {
      ctx.addIssue({
        code: 'custom',
        path: ['connectors', name, 'kind'],
        message: `"${block.kind}" is not a registered connector kind (known: ${knownConnectorKinds()})`,
      });
    }
  }
  const used = new Set<string>();
  for (const ref of connectorReferences(cfg)) {
    used.add(ref.name);
    const block = Object.hasOwn(cfg.connectors, ref.name) ? cfg.connectors[ref.name] : undefined;
    if (!block) {
      ctx.addIssue({
        code: 'custom',
        path: ref.path,
        message: `connector "${ref.name}" is not declared under connectors`,
      });
    } else if (isConnectorKind(block.kind) && CONNECTOR_KINDS[block.kind] !== ref.role) {
      ctx.addIssue({
        code: 'custom',
        path: ref.path,
        message: `connector "${ref.name}" (kind ${block.kind}) has role ${CONNECTOR_KINDS[block.kind]}; here it needs role ${ref.role}`,
      });
    }
  }
  for (const [name, block] of Object.entries(cfg.connectors)) {
    if (used.has(name)) continue;
    const where = isConnectorKind(block.kind) ? ROLE_REFERENCES[CONNECTOR_KINDS[block.kind]] : 'a site or vision';
    ctx.addIssue({
      code: 'custom',
      path: ['connectors', name],
      message: `declared but nothing uses it: name it in ${where}, or remove it`,
    });
  }
}
export type SiteConfig = HoldfastConfig['sites'][number];
