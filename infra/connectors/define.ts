import type { z } from 'zod';
import type {
  EscalationPort,
  ErpPort,
  LineInterlockPort,
  SupplierNoticePort,
  MesPort,
  RecallNoticePort,
  VisionSystemPort,
} from '../../activities/ports';
import type { ConnectorKind, ConnectorRole, RoleOf } from '../config/connector-kinds';
import { formatIssues } from '../config/load';
import { ConfigError } from '../../activities/errors';
import type { HoldfastConfig } from '../config/schema';
import type { VisionBrokerPort } from './mqtt/mqtt.connector';
import type { RejectStationPort } from './opcua/reject-station';

export type { ConnectorKind, ConnectorRole };

/** The port each role implements: what the processes that use a connector of that role call. */
export interface RolePorts {
  mes: MesPort;
  erp: ErpPort;
  escalation: EscalationPort;
  'reject-station': RejectStationPort;
  'vision-broker': VisionBrokerPort;
  'recall-notice': RecallNoticePort;
  'vision-system': VisionSystemPort;
  'line-control': LineInterlockPort;
  'supplier-notice': SupplierNoticePort;
}
export type PortOf<R extends ConnectorRole> = RolePorts[R];

/** Message first, then fields. Processes pass a child of their pino logger (infra/observability/logger.ts). */
export interface ConnectorLogger {
  /** Per-event detail (a request, a reject written), shown only with LOG_LEVEL=debug. */
  debug?(msg: string, meta?: Record<string, unknown>): void;
  info(msg: string, meta?: Record<string, unknown>): void;
  warn(msg: string, meta?: Record<string, unknown>): void;
  error(msg: string, meta?: Record<string, unknown>): void;
}

export interface ConnectorContext {
  /** The instance name under `connectors:` in temporal.yaml, used in messages. */
  name: string;
  env: NodeJS.ProcessEnv;
  log: ConnectorLogger;
  /** Where a connector keeps local state (certificates, trust lists): HOLDFAST_DATA_DIR, absolute. */
  dataDir: string;
}

/** A connected instance: the port it serves plus its lifecycle. The process that connected it closes it. */
export interface ConnectorInstance<Port> {
  port: Port;
  /**
   * Asks the system whether it answers as this connector needs (reachable, credentials accepted, session up).
   * Resolves, optionally with a line saying what was checked, or throws (an ExternalSystemError) naming the cause.
   */
  healthCheck(): Promise<string | void>;
  /** Releases everything the instance holds (sockets, sessions, threads, timers); calls made later fail. Idempotent. */
  close(): Promise<void>;
}

/**
 * The integrator's extension point: one module per kind, declared once, registered in workers/registry.ts under a
 * kind listed in infra/config/connector-kinds.ts with the same role. `configSchema` validates the instance's block in
 * temporal.yaml (secrets as ${env:NAME} references); `connect` opens it.
 */
export interface ConnectorDefinition<Kind extends ConnectorKind, Role extends ConnectorRole, Schema extends z.ZodType> {
  kind: Kind;
  role: Role;
  configSchema: Schema;
  connect(config: z.output<Schema>, ctx: ConnectorContext): Promise<ConnectorInstance<PortOf<Role>>>;
}

export function defineConnector<const Kind extends ConnectorKind, Role extends RoleOf<Kind>, Schema extends z.ZodType>(
  def: ConnectorDefinition<Kind, Role, Schema>,
): ConnectorDefinition<Kind, Role, Schema> {
  return def;
}

/**
 * The block `connectors.<name>` without the keys every block has (`kind`, `required`), validated by a connector's
 * schema; a bad value is a ConfigError naming `connectors.<name>.<key>`.
 */
export function parseConnectorSettings<Schema extends z.ZodType>(
  schema: Schema,
  config: HoldfastConfig,
  name: string,
): z.output<Schema> {
  const block = Object.hasOwn(config.connectors, name) ? config.connectors[name] : undefined;
  if (!block) throw new ConfigError(`connector "${name}" is not declared under connectors`);
  const { kind: _kind, required: _required, ...settings } = block;
  const parsed = schema.safeParse(settings);
  if (!parsed.success) {
    throw new ConfigError(`connectors.${name} is invalid:\n${formatIssues(parsed.error, `connectors.${name}`)}`);
  }
  return parsed.data;
}
