import {
  condition,
  makeContinueAsNewFunc,
  proxyActivities,
  setCurrentDetails,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import type { Activities } from '../../activities';
import {
  genealogySyncStatusQuery,
  syncNowSignal,
  type GenealogySyncInput,
  type GenealogySyncStatus,
  type GenealogySyncTotals,
} from '../contracts';
import { activityOptions } from '../options';

/** Pages per run before continue-as-new, unless the server suggests it sooner: keeps each run's history short. */
const PAGES_PER_RUN = 200;

const NO_TOTALS: GenealogySyncTotals = {
  pages: 0,
  documents: 0,
  added: 0,
  updated: 0,
  unchanged: 0,
  gapsOpened: 0,
  gapsResolved: 0,
};

/**
 * A site's ERP or MES genealogy, kept current (docs/traceability.md#sync): page after page of the system's documents
 * after a cursor, each applied by one activity; at the end of what is there, a wait for the poll interval or a
 * `syncNow` signal. The cursor is the only state, carried across continue-as-new; a page applied twice (a retry, a
 * reset) changes nothing, because every fact is keyed by the document that states it.
 */
export async function genealogySyncWorkflow(input: GenealogySyncInput): Promise<void> {
  const { site, system, pageSize } = input;
  const sync = proxyActivities<Activities>(activityOptions(input.preset));
  const status: GenealogySyncStatus = {
    site,
    system,
    ...(input.cursor !== undefined ? { cursor: input.cursor } : {}),
    totals: { ...NO_TOTALS, ...input.totals },
    catchingUp: true,
  };
  let wake = false;
  setHandler(syncNowSignal, () => {
    wake = true;
  });
  setHandler(genealogySyncStatusQuery, () => status, {
    description: 'Cursor, totals and whether the sync is still catching up.',
  });

  for (let pages = 0; ;) {
    const page = await sync.syncGenealogyPage.executeWithOptions(
      { summary: `${system.toUpperCase()} genealogy of ${site} after ${status.cursor ?? 'the start'}` },
      [
        {
          site,
          erpPlant: input.erpPlant,
          production: input.production,
          system,
          ...(status.cursor !== undefined ? { after: status.cursor } : {}),
          limit: pageSize,
        },
      ],
    );
    pages += 1;
    const t = status.totals;
    status.totals = {
      pages: t.pages + 1,
      documents: t.documents + page.documents,
      added: t.added + page.added,
      updated: t.updated + page.updated,
      unchanged: t.unchanged + page.unchanged,
      gapsOpened: t.gapsOpened + page.gapsOpened,
      gapsResolved: t.gapsResolved + page.gapsResolved,
    };
    status.cursor = page.cursor;
    status.lastPageAt = new Date().toISOString();
    status.catchingUp = page.more;
    setCurrentDetails(describe(status));
    if (pages >= PAGES_PER_RUN || workflowInfo().continueAsNewSuggested) {
      await makeContinueAsNewFunc<typeof genealogySyncWorkflow>()({
        ...input,
        cursor: status.cursor,
        totals: status.totals,
      });
    }
    if (!page.more) {
      if (page.documents > 0) {
        const swept = await sync.reconcileGenealogy.executeWithOptions(
          { summary: `Genealogy gaps of ${site} explained since the last sweep` },
          [{ site, system }],
        );
        status.totals = { ...status.totals, gapsResolved: status.totals.gapsResolved + swept.gapsResolved };
        setCurrentDetails(describe(status));
      }
      wake = false;
      await condition(() => wake, input.pollInterval);
    }
  }
}

function describe(s: GenealogySyncStatus): string {
  const t = s.totals;
  return [
    `**${s.system.toUpperCase()} genealogy of ${s.site}** — ${s.catchingUp ? 'catching up' : 'current'}`,
    `Cursor \`${s.cursor ?? '—'}\` · last page ${s.lastPageAt ?? '—'}`,
    `${t.pages} page(s), ${t.documents} document(s): ${t.added} added, ${t.updated} completed, ${t.unchanged} already known`,
    `Trace gaps: ${t.gapsOpened} opened, ${t.gapsResolved} resolved`,
  ].join('\n\n');
}
