/**
 * A Holdfast stack for one site of its own with the genealogy syncs on, and a plant history loaded into its SAP and
 * MES simulators: what the genealogy, recall and records tests start from. A site and ERP plant of the test's own
 * keep its syncs' workflow ids and its lot keys apart from other tests sharing the Temporal server and database.
 */
import type { Pool } from 'pg';
import { loadConfig } from '../../infra/config/load';
import type { HoldfastConfig } from '../../infra/config/schema';
import { loadIntoSimulators } from '../../infra/simulators/plant-history/load';
import type { PlantHistory } from '../../infra/simulators/plant-history/plant-history';
import { ensureGenealogySyncs } from '../../infra/temporal/genealogy-sync-starter';
import { genealogySyncStatusQuery, genealogySyncWorkflowId } from '../../workflows/contracts';
import { eventually } from './eventually';
import { type HoldfastStack, startHoldfastStack } from './stack';
import { readTestEnv } from './test-env';
import { installQuietRuntime } from './workflow-harness';

export async function startGenealogyStack(
  pool: Pool,
  opts: {
    site: string;
    erpPlant: string;
    history: PlantHistory;
    /** Changes the test makes to the stack's topology (recall.contain, activity presets, vision settings). */
    configure?: (config: HoldfastConfig) => HoldfastConfig;
  },
): Promise<HoldfastStack> {
  installQuietRuntime();
  const env = readTestEnv();
  const base = loadConfig();
  const configured: HoldfastConfig = {
    ...base,
    sites: [{ ...base.sites[0]!, id: opts.site, erpPlant: opts.erpPlant }],
    traceability: {
      ...base.traceability,
      sync: { ...base.traceability.sync, enabled: true, pageSize: 200, pollInterval: '1h' },
    },
  };
  const config = opts.configure ? opts.configure(configured) : configured;
  const stack = await startHoldfastStack({
    pool,
    temporalAddress: env.temporalAddress,
    namespace: env.namespace,
    config,
    seedDemo: false,
  });
  await loadIntoSimulators(opts.history, {
    sap: { url: stack.sapUrl, username: stack.sapEnv.SAP_USER, password: stack.sapEnv.SAP_PASSWORD },
    mes: { url: stack.mesUrl },
  });
  return stack;
}

/** Starts the stack's site syncs (ERP and MES) and waits until each has read what is there. Their workflow ids. */
export async function syncGenealogy(stack: HoldfastStack): Promise<string[]> {
  const started = await ensureGenealogySyncs(stack.client, stack.config);
  for (const id of started) {
    await eventually(
      `${id} current`,
      () => stack.client.workflow.getHandle(id).query(genealogySyncStatusQuery),
      (status) => !status.catchingUp && status.totals.documents > 0,
      { timeoutMs: 150_000 },
    );
  }
  return started;
}

/** Ends the site's syncs (they would run for as long as the site), then the stack. */
export async function stopGenealogyStack(stack: HoldfastStack | undefined, site: string): Promise<void> {
  for (const system of ['erp', 'mes'] as const) {
    await stack?.client.workflow
      .getHandle(genealogySyncWorkflowId(system, site))
      .terminate('test done')
      .catch(() => undefined);
  }
  await stack?.stop();
}
