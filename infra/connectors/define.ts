import type { z } from 'zod';

export type ConnectorRole = 'mes' | 'erp';

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
}

/** A connected instance: the port it serves plus its lifecycle. The worker that connected it closes it. */
export interface ConnectorInstance<Port> {
  port: Port;
  healthCheck(): Promise<void>;
  close(): Promise<void>;
}

/**
 * The integrator's extension point: one module per kind, declared once, registered in workers/registry.ts.
 * `configSchema` validates the instance's block in temporal.yaml (secrets as ${env:NAME} references).
 */
export interface ConnectorDefinition<Schema extends z.ZodType, Port> {
  kind: string;
  role: ConnectorRole;
  configSchema: Schema;
  connect(config: z.infer<Schema>, ctx: ConnectorContext): Promise<ConnectorInstance<Port>>;
}

export function defineConnector<Schema extends z.ZodType, Port>(
  def: ConnectorDefinition<Schema, Port>,
): ConnectorDefinition<Schema, Port> {
  return def;
}
