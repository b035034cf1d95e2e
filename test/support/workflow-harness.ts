import type { AdviceStore } from '../../activities/advice/advice.ports';
import type { EscalationPolicy, QualityRuleStore } from '../../activities/quality-rules/quality-rules.ports';
import { randomUUID } from 'node:crypto';
import { Client, Connection } from '@temporalio/client';
import {
  DefaultLogger,
  NativeConnection,
  Runtime,
  bundleWorkflowCode,
  type Worker,
  type WorkflowBundleWithSourceMap,
} from '@temporalio/worker';
import type { Pool } from 'pg';
import { createActivities, type ChangeoverRecipeSource } from '../../activities';
import type {
  ErpFeedStore,
  ErpPort,
  EscalationPort,
  GenealogyRecorder,
  MesPort,
  RecallDrillStore,
  RecallContainmentStore,
  RecallNoticePort,
  RecallReinspector,
  RecallStore,
} from '../../activities/ports';
import { loadConfig, sitePolicy } from '../../infra/config/load';
import type { HoldfastConfig } from '../../infra/config/schema';
import { createPgIntentLedger } from '../../infra/ledger/pg-intent-ledger';
import { createRecallNotificationStore } from '../../infra/recall/recall-notification-store';
import { createTemporalLotCaseStarter } from '../../infra/temporal/gateway';
import { holdfastDataConverter, holdfastPayloadCodec } from '../../infra/temporal/payload-codec';
import { createQualityWorkers } from '../../workers/quality-workers';
import type { ChangeoverPorts } from '../../workers/worker-activities';
import { lotCaseWorkflow } from '../../workflows';
import {
  lotCaseEnrolment,
  type DefectDetection,
  type DetectionDispatch,
  type RecallNotifyPolicy,
  type SitePolicy,
} from '../../workflows/contracts';
import { quietLog } from './quiet-log';
import { readTestEnv, testPool } from './test-env';

/** Shared Temporal + PostgreSQL plumbing for tests that run real workflows against the jest dev server. */
export class WorkflowHarness {
  readonly config: HoldfastConfig = loadConfig();
  pool!: Pool;
  client!: Client;
  native!: NativeConnection;
  namespace!: string;
  /** Encrypted payloads, as in production (the key: test/support/global-setup.ts). */
  readonly payloadCodec = holdfastPayloadCodec();
  readonly dataConverter = holdfastDataConverter(this.payloadCodec);
  private connection!: Connection;
  private bundle!: WorkflowBundleWithSourceMap;

  async setUp(): Promise<void> {
    const env = readTestEnv();
    installQuietRuntime();
    this.namespace = env.namespace;
    this.pool = testPool();
    this.native = await NativeConnection.connect({ address: env.temporalAddress });
    this.connection = await Connection.connect({ address: env.temporalAddress });
    this.client = new Client({
      connection: this.connection,
      namespace: env.namespace,
      dataConverter: this.dataConverter,
    });
    this.bundle = await bundleWorkflowCode({ workflowsPath: require.resolve('../../workflows'), logger: quietLog() });
  }

  async tearDown(): Promise<void> {
    await this.native?.close();
    await this.connection?.close();
    await this.pool?.end();
  }

  /** A worker on a task queue of its own, with activities over the given ports. */
  async worker(ports: {
    mes: MesPort;
    erp: ErpPort;
    escalation: EscalationPort;
    genealogy?: GenealogyRecorder;
    /** A recall's stages, its re-inspection and its containment rows, for recall workflow tests. */
    recalls?: RecallStore;
    drills?: RecallDrillStore;
    reinspector?: RecallReinspector;
    containment?: RecallContainmentStore;
    /** Where recall notifications go, and how they are chased, for every site. */
    recallNotice?: { port: RecallNoticePort; policy: RecallNotifyPolicy };
    /** Scheduling advice's store, for the line-quality advisor's tests. */
    advice?: AdviceStore;
    /** The plant ports and recipes a changeover works through (test/support/changeover-fakes.ts). */
    changeover?: ChangeoverPorts & { changeoverRecipes?: ChangeoverRecipeSource };
    /** The ERP feed's records (test/support/erp-feed-fakes.ts). */
    erpFeed?: ErpFeedStore;
    /** Statistical escalation's store and every site's policy, for the escalation workflows' tests. */
    qualityRules?: QualityRuleStore;
    escalationPolicy?: EscalationPolicy;
  }): Promise<{ worker: Worker; taskQueue: string }> {
    const taskQueue = `test-${randomUUID()}`;
    const activities = createActivities({
      pool: this.pool,
      ledger: createPgIntentLedger(this.pool),
      mesFor: () => ports.mes,
      erpFor: () => ports.erp,
      escalationFor: () => ({ target: 'test', port: ports.escalation }),
      ...(ports.genealogy ? { genealogy: ports.genealogy } : {}),
      ...(ports.recalls ? { recalls: ports.recalls } : {}),
      ...(ports.drills ? { drills: ports.drills } : {}),
      ...(ports.reinspector ? { reinspector: ports.reinspector } : {}),
      ...(ports.containment ? { containment: ports.containment } : {}),
      recallNotifications: createRecallNotificationStore(this.pool),
      ...(ports.recallNotice ? { recallNoticeFor: () => ports.recallNotice! } : {}),
      ...(ports.advice ? { advice: ports.advice } : {}),
      ...ports.changeover,
      ...(ports.erpFeed ? { erpFeed: ports.erpFeed } : {}),
      ...(ports.qualityRules ? { qualityRules: ports.qualityRules } : {}),
      ...(ports.escalationPolicy ? { escalationPolicyFor: () => ports.escalationPolicy! } : {}),
    });
    const [worker] = await createQualityWorkers({
      config: this.config,
      connection: this.native,
      namespace: this.namespace,
      dataConverter: this.dataConverter,
      activities,
      workflowBundle: this.bundle,
      taskQueue,
    });
    return { worker: worker!, taskQueue };
  }

  policy(overrides: Partial<SitePolicy> = {}): SitePolicy {
    return { ...sitePolicy(this.config, this.config.sites[0]!), ...overrides };
  }

  /**
   * Hands a production part to its lot case as the outbox dispatcher does (infra/temporal/gateway.ts): signal-with-
   * start of the lot's case. A second hand-off of the same detection is dropped by the lot case (same event id).
   */
  async enrol(d: DefectDetection, policy: SitePolicy, taskQueue: string) {
    const enrolment = lotCaseEnrolment(d, policy, taskQueue);
    await createTemporalLotCaseStarter(this.client).enrol(enrolment);
    return this.client.workflow.getHandle<typeof lotCaseWorkflow>(enrolment.workflowId);
  }
}

/** Worker state changes at INFO drown test output; keep warnings. Runtime is per jest module registry. */
export function installQuietRuntime(): void {
  try {
    Runtime.install({ logger: new DefaultLogger('WARN') });
  } catch {
    // Already installed in this module registry.
  }
}

let seq = 0;
export function detection(overrides: Partial<DefectDetection> = {}): DefectDetection {
  seq++;
  return {
    eventId: `evt-${randomUUID()}`,
    site: 'PLANT1',
    line: 'L1',
    station: 'S1',
    partId: `P-${seq}-${randomUUID().slice(0, 8)}`,
    sku: 'BRKT-200',
    lotId: `L-${randomUUID().slice(0, 8)}`,
    workOrder: '1000100',
    defects: [{ class: 'scratch', score: 0.93, bbox: { x: 10, y: 20, width: 30, height: 8 } }],
    modelVersion: 'vision-1.0.0',
    recipeVersion: 'BRKT-200@3',
    inspectedAt: new Date().toISOString(),
    ...overrides,
  };
}

export function dispatchOf(d: DefectDetection, policy: SitePolicy, taskQueue: string): DetectionDispatch {
  return { detection: d, policy, taskQueue };
}
