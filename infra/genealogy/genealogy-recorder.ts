/**
 * The genealogy store as the sync activity's port (activities/ports.ts GenealogyRecorder): a page's facts applied
 * lots first (so the movements, deliveries and parts that name them find them), each kind in its own transaction.
 * A crash between two of them leaves a page half applied; its retry applies it again and completes it, because each
 * fact is keyed by its document.
 */
import type { GenealogyApplied, GenealogyRecorder } from '../../activities/ports';
import type { GenealogyStore } from './genealogy-store';

export function genealogyRecorder(store: GenealogyStore): GenealogyRecorder {
  return {
    async record(source, facts) {
      const batch = { source };
      const results = [
        await store.recordLots(batch, facts.lots),
        await store.recordMovements(batch, facts.movements),
        await store.recordDeliveries(batch, facts.deliveries),
        await store.recordParts(batch, facts.parts),
      ];
      return results.reduce<GenealogyApplied>(
        (sum, r) => ({
          added: sum.added + r.added,
          updated: sum.updated + r.updated,
          unchanged: sum.unchanged + r.unchanged,
          gapsOpened: sum.gapsOpened + r.gapsOpened,
          gapsResolved: sum.gapsResolved + r.gapsResolved,
        }),
        { added: 0, updated: 0, unchanged: 0, gapsOpened: 0, gapsResolved: 0 },
      );
    },
  };
}
