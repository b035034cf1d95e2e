/**
 * Starts each site's genealogy sync (docs/traceability.md#sync) unless it runs already: one workflow per site and
 * system, `genealogy-sync-<system>-<site>`, for as long as the site runs. A worker calls this at every start; a sync
 * already running is left alone (its cursor is in it), so restarts neither fork nor reset it.
 */
import type { Client } from '@temporalio/client';
import type { HoldfastConfig } from '../config/schema';
import { genealogySyncWorkflowId, type GenealogySyncInput } from '../../workflows/contracts';

export const GENEALOGY_SYNC_WORKFLOW_TYPE = 'genealogySyncWorkflow';

export async function ensureGenealogySyncs(client: Client, config: HoldfastConfig): Promise<string[]> {
  const { sync } = config.traceability;
  if (!sync.enabled) return [];
  const started: string[] = [];
  for (const site of config.sites) {
    for (const system of sync.systems) {
      const input: GenealogySyncInput = {
        site: site.id,
        erpPlant: site.erpPlant,
        production: sync.production,
        system,
        pageSize: sync.pageSize,
        pollInterval: sync.pollInterval,
        preset: config.activityPresets.erpPost,
      };
      const workflowId = genealogySyncWorkflowId(system, site.id);
      await client.workflow.start(GENEALOGY_SYNC_WORKFLOW_TYPE, {
        workflowId,
        taskQueue: config.taskQueues.quality,
        args: [input],
        workflowIdConflictPolicy: 'USE_EXISTING',
        staticSummary: `${system.toUpperCase()} genealogy sync of ${site.id}`,
      });
      started.push(workflowId);
    }
  }
  return started;
}
