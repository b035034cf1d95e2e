import type { ErpPort, GenealogyApplied, GenealogyRecorder, MesPort } from '../ports';
import { ConfigError } from '../errors';
import { atBoundary } from '../boundary';

export interface GenealogyDeps {
  mesFor: (site: string) => MesPort;
  erpFor: (site: string) => ErpPort;
  /** Holdfast's genealogy in PostgreSQL (infra/genealogy); absent in processes that do not sync it. */
  genealogy?: GenealogyRecorder;
}

export interface GenealogySyncPage {
  site: string;
  /** The ERP plant of the site's batches (sites[].erpPlant). */
  erpPlant: string;
  /** Which system states production movements (traceability.sync.production). */
  production: 'erp' | 'mes';
  system: 'erp' | 'mes';
  /** Where the last page ended; undefined: from the system's first document. */
  after?: string;
  limit: number;
}

export interface GenealogySyncResult extends GenealogyApplied {
  cursor: string;
  documents: number;
  more: boolean;
}

export const createGenealogyActivities = ({ mesFor, erpFor, genealogy }: GenealogyDeps) => ({
  /**
   * Reads one page of a site's ERP or MES genealogy documents and applies them. Reading and applying are one
   * activity on purpose: a page can hold thousands of facts, more than a workflow's history should carry, and both
   * halves are idempotent (a read has no effect; the store keys every fact by the document that states it), so a
   * retry after a crash between them repeats the page and changes nothing. Only the cursor reaches the workflow.
   */
  async syncGenealogyPage({
    site,
    erpPlant,
    production,
    system,
    after,
    limit,
  }: GenealogySyncPage): Promise<GenealogySyncResult> {
    return atBoundary(`${system} genealogy of site ${site} after ${after ?? 'the start'}`, async () => {
      const feed = (system === 'erp' ? erpFor(site) : mesFor(site)).genealogy;
      if (!feed) throw new ConfigError(`the ${system} connector of site ${site} offers no genealogy feed`);
      if (!genealogy) throw new ConfigError('this worker has no genealogy store');
      const page = await feed.readGenealogy({ site, erpPlant, production }, after, limit);
      const applied = await genealogy.record(`${system}-sync:${site}`, page);
      return { ...applied, cursor: page.cursor, documents: page.documents, more: page.more };
    });
  },

  /**
   * Closes the gaps other writers explained since the last sweep: a part recorded without an inspection has one
   * once ingest stored it. The sync runs it each time it has caught up.
   */
  async reconcileGenealogy({ site, system }: { site: string; system: 'erp' | 'mes' }): Promise<GenealogyApplied> {
    return atBoundary(`genealogy reconcile for site ${site}`, async () => {
      if (!genealogy) throw new ConfigError('this worker has no genealogy store');
      return genealogy.reconcile(`${system}-sync:${site}`);
    });
  },
});
