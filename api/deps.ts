import type { PayloadCodec } from '@temporalio/common';
import type pg from 'pg';
import type { AuditTrail } from '../infra/audit/audit-trail';
import type { Accounts } from '../infra/identity/accounts';
import type { SigningKey } from '../infra/identity/signing-key';
import type { HoldfastConfig } from '../infra/config/schema';
import type { HealthCheck } from '../infra/observability/health-checks';
import type { IngestMetrics } from '../infra/observability/ingest-metrics';
import type { ChangeoverControl } from '../infra/temporal/changeover-starter';
import type { SupplierControl } from '../infra/temporal/supplier-control';
import type { WorkflowGateway } from '../infra/temporal/gateway';

/** What routes need, passed in by buildApp: tests hand in a real pool and a fake gateway. */
export interface ApiDeps {
  pool: pg.Pool;
  gateway: WorkflowGateway;
  config: HoldfastConfig;
  /** Temporal namespace, for Web UI links. */
  namespace: string;
  /** Counts what POST /v1/inspections stores and refuses. */
  ingestMetrics: IngestMetrics;
  /** What GET /health checks: PostgreSQL, then whatever the process adds (Temporal). */
  healthChecks: readonly HealthCheck[];
  /** Where every create and change by a request is recorded (docs/audit-trail.md). */
  audit: AuditTrail;
  /**
   * The Temporal payload codec (infra/temporal/payload-codec.ts); given, the app serves the Web UI's codec endpoint
   * (POST /codec/decode, /codec/encode). The API process always gives it.
   */
  payloadCodec?: PayloadCodec;
  /** Local accounts and machine keys (docs/identity.md). */
  accounts: Accounts;
  /** Signs the tokens of local sign-ins. */
  signingKey: SigningKey;
  /** Seals electronic signatures and verifies them on every read (infra/identity/e-signature.ts). */
  signatureKey: SigningKey;
  /** Starts, reads, approves and cancels changeovers (docs/changeover.md); absent: the changeover routes answer 503. */
  changeovers?: ChangeoverControl;
  /** Starts, signals and reads SCAR workflows (docs/analytics.md#supplier-quality); absent: those routes answer 503. */
  suppliers?: SupplierControl;
}
