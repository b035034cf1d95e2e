import type { z } from 'zod';
import type { EscalationPort, ErpPort, MesPort } from '../activities/ports';
import { formatIssues } from '../infra/config/load';
import { ConfigError } from '../activities/errors';
import type { HoldfastConfig } from '../infra/config/schema';
import type { ConnectorDefinition, ConnectorInstance, ConnectorLogger } from '../infra/connectors/define';
import { createEscalationPort } from '../infra/connectors/escalation/escalation.connector';
import type { PortObserver } from '../infra/observability/connector-metrics';
import { erpConnectors, mesConnectors } from './registry';

/** The connectors one worker process owns, resolved per site. The owner calls close(). */
export interface SiteConnectors {
  mesFor: (site: string) => MesPort;
  erpFor: (site: string) => ErpPort;
  escalationFor: (site: string) => { target: string; port: EscalationPort };
  close(): Promise<void>;
}

/** `observe` wraps each opened MES and ERP port (infra/observability/connector-metrics.ts: metrics, spans). */
export async function openSiteConnectors(
  config: HoldfastConfig,
  log: ConnectorLogger,
  env: NodeJS.ProcessEnv = process.env,
  observe: PortObserver = (_role, port) => port,
): Promise<SiteConnectors> {
  const opened = new Map<string, ConnectorInstance<unknown>>();

  async function open<Port>(
    name: string,
    registry: Record<string, ConnectorDefinition<z.ZodType, Port>>,
    role: string,
  ) {
    const existing = opened.get(name);
    if (existing) return existing as ConnectorInstance<Port>;
    const block = config.connectors[name]!;
    const def = registry[block.kind];
    if (!def) {
      throw new ConfigError(
        `connectors.${name}.kind: "${block.kind}" is not a registered ${role} connector (known: ${Object.keys(registry).join(', ')})`,
      );
    }
    const { kind: _kind, ...settings } = block;
    const parsed = def.configSchema.safeParse(settings);
    if (!parsed.success) throw new ConfigError(`connectors.${name} is invalid:\n${formatIssues(parsed.error)}`);
    const instance = await def.connect(parsed.data, { name, env, log });
    opened.set(name, instance);
    return instance;
  }

  const mes = new Map<string, MesPort>();
  const erp = new Map<string, ErpPort>();
  const escalation = new Map<string, { target: string; port: EscalationPort }>();
  try {
    for (const site of config.sites) {
      mes.set(site.id, observe('mes', (await open(site.mes, mesConnectors, 'mes')).port));
      erp.set(site.id, observe('erp', (await open(site.erp, erpConnectors, 'erp')).port));
      const target = site.policy.escalation;
      escalation.set(site.id, {
        target: target.kind === 'webhook' ? target.url : 'worker log',
        port: createEscalationPort(target, log),
      });
    }
  } catch (err) {
    await Promise.allSettled([...opened.values()].map((c) => c.close()));
    throw err;
  }

  const lookup = <T>(map: Map<string, T>, site: string, what: string): T => {
    const found = map.get(site);
    // Not retryable: a detection for a site this worker does not know is a configuration problem.
    if (!found) throw new ConfigError(`site "${site}" has no ${what} configured in temporal.yaml`);
    return found;
  };

  return {
    mesFor: (site) => lookup(mes, site, 'MES'),
    erpFor: (site) => lookup(erp, site, 'ERP'),
    escalationFor: (site) => lookup(escalation, site, 'escalation'),
    async close() {
      await Promise.allSettled([...opened.values()].map((c) => c.close()));
    },
  };
}
