import { resolve } from 'node:path';
import type { EscalationPort, ErpPort, MesPort, RecallNoticePort, SupplierNoticePort } from '../activities/ports';
import { isConnectorKind, knownConnectorKinds, type ConnectorRole } from '../infra/config/connector-kinds';
import { ConfigError } from '../activities/errors';
import type { HoldfastConfig } from '../infra/config/schema';
import type { RecallNotifyPolicy } from '../workflows/contracts';
import {
  parseConnectorSettings,
  type ConnectorInstance,
  type ConnectorLogger,
  type PortOf,
} from '../infra/connectors/define';
import { connectorRegistry } from './registry';
import type { PortObserver } from '../infra/observability/connector-metrics';

/** One connector's answer to a health check: `detail` says what was checked, or why it failed. */
export interface ConnectorHealth {
  ok: boolean;
  detail: string;
  /** The failure itself, for a /health that shows only its classification, never a driver's message. */
  error?: unknown;
}

/** The connectors one process opened from temporal.yaml. The process owns them and calls close(). */
export interface ConnectorSet {
  /** The port of the connector opened under `name`, which plays `role`. */
  port<R extends ConnectorRole>(name: string, role: R): PortOf<R>;
  /** Every connector's health check, run now, side by side and bounded in time (for a process's /health). */
  health(): Promise<Record<string, ConnectorHealth>>;
  /** Closes every connector, the last opened first. Idempotent. */
  close(): Promise<void>;
}

export interface OpenConnectorsOptions {
  log: ConnectorLogger;
  env?: NodeJS.ProcessEnv;
  /** Where connectors keep local state. Default: HOLDFAST_DATA_DIR, else .holdfast/data. */
  dataDir?: string;
}

/** A connector that could not be opened, or failed its health check at start: named, with its cause. */
export class ConnectorStartError extends Error {
  override readonly name = 'ConnectorStartError';
  constructor(
    readonly connector: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** A health check that hangs counts as failed after this, so neither start-up nor /health waits on it. */
const HEALTH_TIMEOUT_MS = 10_000;

interface Opened {
  name: string;
  kind: string;
  role: ConnectorRole;
  required: boolean;
  instance: ConnectorInstance<unknown>;
}

/**
 * Opens the named connectors: every block is validated by its connector's `configSchema` before anything connects
 * (a bad key is a ConfigError naming `connectors.<name>.<key>`), then each connects, then all run their health check.
 * A connector that cannot be opened, or a required one whose health check fails, stops start-up: what was opened is
 * closed and a ConnectorStartError names the connector and its cause.
 */
export async function openConnectors(
  config: HoldfastConfig,
  names: Iterable<string>,
  opts: OpenConnectorsOptions,
): Promise<ConnectorSet> {
  const env = opts.env ?? process.env;
  const dataDir = resolve(opts.dataDir ?? env.HOLDFAST_DATA_DIR ?? '.holdfast/data');

  const planned = [...new Set(names)].map((name) => {
    const block = Object.hasOwn(config.connectors, name) ? config.connectors[name] : undefined;
    if (!block) throw new ConfigError(`connector "${name}" is not declared under connectors`);
    const { kind, required } = block;
    if (!isConnectorKind(kind)) {
      throw new ConfigError(
        `connectors.${name}.kind: "${kind}" is not a registered connector kind (known: ${knownConnectorKinds()})`,
      );
    }
    const definition = connectorRegistry[kind];
    const settings = parseConnectorSettings(definition.configSchema, config, name);
    return { name, kind, role: definition.role, required, definition, settings };
  });

  const opened: Opened[] = [];
  const closeAll = async () => {
    for (const c of opened.splice(0).reverse()) {
      await c.instance
        .close()
        .catch((err: unknown) => opts.log.warn('connector close failed', { connector: c.name, error: String(err) }));
    }
  };

  try {
    for (const { name, kind, role, required, definition, settings } of planned) {
      let instance: ConnectorInstance<unknown>;
      try {
        instance = await definition.connect(settings, { name, env, log: opts.log, dataDir });
      } catch (err) {
        if (err instanceof ConfigError) throw err;
        throw new ConnectorStartError(name, `connector ${name} (${kind}) could not be opened: ${messageOf(err)}`, {
          cause: err,
        });
      }
      opened.push({ name, kind, role, required, instance });
    }

    const checks = await Promise.all(opened.map(async (c) => ({ c, health: await checkHealth(c.instance) })));
    for (const { c, health } of checks.filter(({ health }) => health.ok)) {
      opts.log.info('connector ready', { connector: c.name, kind: c.kind, health: health.detail });
    }
    const failed = checks.filter(({ health }) => !health.ok);
    for (const { c, health } of failed.filter(({ c }) => !c.required)) {
      opts.log.warn('connector failed its health check at start; going on (required: false)', {
        connector: c.name,
        kind: c.kind,
        error: health.detail,
      });
    }
    const blocking = failed.filter(({ c }) => c.required);
    if (blocking.length > 0) {
      const lines = blocking.map(({ c, health }) => `connector ${c.name} (${c.kind}) is not healthy: ${health.detail}`);
      throw new ConnectorStartError(blocking[0]!.c.name, lines.join('\n'));
    }
  } catch (err) {
    await closeAll();
    throw err;
  }

  const byName = new Map(opened.map((c) => [c.name, c]));
  let closing: Promise<void> | undefined;
  return {
    port<R extends ConnectorRole>(name: string, role: R): PortOf<R> {
      const c = byName.get(name);
      if (!c) throw new ConfigError(`connector "${name}" was not opened by this process`);
      if (c.role !== role)
        throw new ConfigError(`connector "${name}" (kind ${c.kind}) has role ${c.role}, not ${role}`);
      return c.instance.port as PortOf<R>;
    },
    async health() {
      const results = await Promise.all(
        [...byName.values()].map(async (c) => [c.name, await checkHealth(c.instance)] as const),
      );
      return Object.fromEntries(results);
    },
    close() {
      closing ??= closeAll();
      return closing;
    },
  };
}

async function checkHealth(instance: ConnectorInstance<unknown>): Promise<ConnectorHealth> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${HEALTH_TIMEOUT_MS} ms`)), HEALTH_TIMEOUT_MS);
  });
  try {
    const detail = await Promise.race([instance.healthCheck(), late]);
    return { ok: true, detail: detail || 'ok' };
  } catch (err) {
    return { ok: false, detail: messageOf(err), error: err };
  } finally {
    clearTimeout(timer);
  }
}

const messageOf = (err: unknown): string => (err instanceof Error ? err.message : String(err));

/** The connectors the Temporal worker needs, resolved per site. The owner calls close(). */
export interface SiteConnectors {
  mesFor: (site: string) => MesPort;
  erpFor: (site: string) => ErpPort;
  /** `target` is the connector's name, recorded with each escalation sent. */
  escalationFor: (site: string) => { target: string; port: EscalationPort };
  /** A site's recall notification target and how notices are chased (sites[].recall.notify). */
  recallNoticeFor: (site: string) => { port: RecallNoticePort; policy: RecallNotifyPolicy };
  /** Where SCARs go to suppliers (supplierQuality.scar.channel); undefined when none is configured. */
  supplierNotice?: { target: string; port: SupplierNoticePort };
  health: ConnectorSet['health'];
  close(): Promise<void>;
}

/**
 * Opens every site's MES, ERP and escalation connector (each once, however many sites share it). `observe` wraps each
 * MES and ERP port once (infra/observability/connector-metrics.ts: metrics and spans per call).
 */
export async function openSiteConnectors(
  config: HoldfastConfig,
  log: ConnectorLogger,
  env: NodeJS.ProcessEnv = process.env,
  observe: PortObserver = (_role, port) => port,
): Promise<SiteConnectors> {
  const names = config.sites.flatMap((site) => [
    site.mes,
    site.erp,
    site.escalation,
    ...(site.recall.notify ? [site.recall.notify.target] : []),
  ]);
  const scarChannel = config.supplierQuality.scar.channel;
  if (scarChannel !== undefined) names.push(scarChannel);
  const connectors = await openConnectors(config, names, { log, env });
  const sites = new Map(config.sites.map((site) => [site.id, site]));
  const siteOf = (id: string, what: string) => {
    const site = sites.get(id);
    // Not retryable: a detection for a site this worker does not know is a configuration problem.
    if (!site) throw new ConfigError(`site "${id}" has no ${what} configured in temporal.yaml`);
    return site;
  };
  const observed = new Map<string, object>();
  const observedPort = <R extends 'mes' | 'erp'>(name: string, role: R): PortOf<R> => {
    let port = observed.get(name);
    if (!port) {
      port = observe(role, connectors.port(name, role));
      observed.set(name, port);
    }
    return port as PortOf<R>;
  };
  return {
    mesFor: (site) => observedPort(siteOf(site, 'MES').mes, 'mes'),
    erpFor: (site) => observedPort(siteOf(site, 'ERP').erp, 'erp'),
    escalationFor: (site) => {
      const target = siteOf(site, 'escalation').escalation;
      return { target, port: connectors.port(target, 'escalation') };
    },
    recallNoticeFor: (site) => {
      const policy = siteOf(site, 'recall notification').recall.notify;
      if (!policy) throw new ConfigError(`site "${site}" has no sites[].recall.notify in temporal.yaml`);
      return { port: connectors.port(policy.target, 'recall-notice'), policy };
    },
    ...(scarChannel !== undefined
      ? { supplierNotice: { target: scarChannel, port: connectors.port(scarChannel, 'supplier-notice') } }
      : {}),
    health: () => connectors.health(),
    close: () => connectors.close(),
  };
}
