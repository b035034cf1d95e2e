/**
 * The genealogy store as the sync activity's port (activities/ports.ts GenealogyRecorder): a page of facts applied
 * in one transaction, so a retry after a crash finds it either whole or not at all.
 */
import type { GenealogyRecorder } from '../../activities/ports';
import type { GenealogyStore } from './genealogy-store';

export function genealogyRecorder(store: GenealogyStore): GenealogyRecorder {
  return {
    record: (source, facts) => store.recordPage({ source }, facts),
    reconcile: (source) => store.reconcile({ source }),
  };
}
