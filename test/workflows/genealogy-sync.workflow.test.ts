/**
 * The genealogy sync workflow on a real Temporal dev server: it pages through a system's documents after its cursor,
 * applies each page once, waits when there is nothing new, reads at once on `syncNow`, and survives a failing read.
 * The ERP's feed and the genealogy store are stand-ins here (their own tests cover them); the workflow's job is the
 * cursor and the pacing.
 */
import { randomUUID } from 'node:crypto';
import {
  genealogySyncStatusQuery,
  genealogySyncWorkflowId,
  syncNowSignal,
  type GenealogySyncStatus,
} from '../../workflows/contracts';
import { eventually } from '../support/eventually';
import {
  FakeErp,
  FakeMes,
  RecordingEscalation,
  RecordingGenealogy,
  ScriptedGenealogyFeed,
} from '../support/fake-ports';
import { WorkflowHarness } from '../support/workflow-harness';

const harness = new WorkflowHarness();
beforeAll(() => harness.setUp());
afterAll(() => harness.tearDown());

test('pages through the documents after its cursor, waits when current, reads again on syncNow, retries a failed read', async () => {
  const erp = new FakeErp();
  const feed = new ScriptedGenealogyFeed();
  erp.genealogy = feed;
  const genealogy = new RecordingGenealogy();
  const { worker, taskQueue } = await harness.worker({
    mes: new FakeMes(),
    erp,
    escalation: new RecordingEscalation(),
    genealogy,
  });
  const site = `PLANT-${randomUUID().slice(0, 6)}`;
  feed.documents.push(...Array.from({ length: 7 }, (_, i) => `mdoc-${i}`));
  feed.failNext = 1;

  await worker.runUntil(async () => {
    const handle = await harness.client.workflow.start('genealogySyncWorkflow', {
      workflowId: genealogySyncWorkflowId('erp', site),
      taskQueue,
      args: [
        {
          site,
          erpPlant: '1000',
          production: 'mes',
          system: 'erp',
          pageSize: 3,
          pollInterval: '1h',
          preset: harness.config.activityPresets.erpPost,
        },
      ],
    });
    const status = (when: (s: GenealogySyncStatus) => boolean) =>
      eventually(
        'the sync status',
        () => handle.query(genealogySyncStatusQuery),
        (s) => when(s),
      );

    // 7 documents in pages of 3: three pages (the first read failed once and was retried), then it waits.
    const current = await status((s) => !s.catchingUp && s.totals.documents === 7);
    expect(current).toMatchObject({ cursor: '7', totals: { pages: 3, documents: 7, added: 7, unchanged: 0 } });
    expect(feed.reads).toEqual([undefined, undefined, '3', '6']);
    expect([...genealogy.edges].sort()).toEqual(feed.documents.slice().sort());
    expect(new Set(genealogy.sources)).toEqual(new Set([`erp-sync:${site}`]));
    // Caught up, it sweeps the gaps other writers explained (a part's inspection came through ingest).
    await eventually('the sweep', async () => genealogy.reconciled.length > 0);
    expect(new Set(genealogy.reconciled)).toEqual(new Set([`erp-sync:${site}`]));

    // New documents wait for the poll interval (an hour here) unless someone asks for them now.
    feed.documents.push('mdoc-7', 'mdoc-8');
    await new Promise((r) => setTimeout(r, 500));
    expect(feed.reads).toHaveLength(4);
    await handle.signal(syncNowSignal);
    const again = await status((s) => s.totals.documents === 9 && !s.catchingUp);
    expect(again.cursor).toBe('9');
    expect(genealogy.edges.size).toBe(9);

    // What the Web UI shows for the workflow: where it is and what it applied.
    const metadata = await handle.query<{ currentDetails?: string }>('__temporal_workflow_metadata');
    expect(metadata.currentDetails).toContain(`**ERP genealogy of ${site}** — current`);
    expect(metadata.currentDetails).toContain('4 page(s), 9 document(s): 9 added');
    await handle.terminate('test done');
  });
});
