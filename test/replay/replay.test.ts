import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { historyFromJSON } from '@temporalio/common/lib/proto-utils';
import { Worker } from '@temporalio/worker';
import {
  generatePayloadKeyEntry,
  holdfastDataConverter,
  holdfastPayloadCodec,
} from '../../infra/temporal/payload-codec';
import { installQuietRuntime } from '../support/workflow-harness';

const dir = join(__dirname, 'histories');
const files = readdirSync(dir).filter((f) => f.endsWith('.json'));
/** Any key: the recorded payloads are stored decrypted (record.histories.ts) and pass through the codec. */
const dataConverter = holdfastDataConverter(
  holdfastPayloadCodec({ HOLDFAST_PAYLOAD_KEYS: generatePayloadKeyEntry('replay') }),
);

/**
 * Every recorded history must replay on today's workflow code without a non-determinism error. The histories are
 * recorded by record.histories.ts, one per shape of history; workflows/README.md says when they change.
 */
/** A history's workflow type, from its file name. */
const WORKFLOW_TYPES: Record<string, string> = {
  'shadow-': 'shadowDefectWorkflow',
  'lot-case-': 'lotCaseWorkflow',
  'genealogy-sync-': 'genealogySyncWorkflow',
  'line-quality-advisor-': 'lineQualityAdvisorWorkflow',
  // Longest prefix first: a notification's or a drill's history also starts with `recall-`.
  'recall-notification-': 'recallNotificationWorkflow',
  'recall-drill-': 'recallDrillWorkflow',
  'recall-': 'recallWorkflow',
  'changeover-': 'changeoverWorkflow',
  'erp-feed-': 'erpFeedWorkflow',
  'quality-rule-evaluator-': 'lineRuleEvaluatorWorkflow',
  'quality-escalation-': 'qualityEscalationWorkflow',
  // Recorded on the time-skipping server with stub activities (docs/analytics.md#supplier-quality), not by
  // record.histories.ts: a SCAR escalated, verified and closed, and rejected and accepted receipts.
  'scar-': 'scarWorkflow',
  'incoming-receipt-': 'incomingReceiptWorkflow',
};
const workflowTypeOf = (file: string) =>
  Object.entries(WORKFLOW_TYPES).find(([prefix]) => file.startsWith(prefix))?.[1];

test('recorded histories exist for every workflow type, and every history names one', () => {
  for (const prefix of Object.keys(WORKFLOW_TYPES))
    expect([prefix, files.some((f) => f.startsWith(prefix))]).toEqual([prefix, true]);
  expect(files.filter((f) => workflowTypeOf(f) === undefined)).toEqual([]);
});

test.each(files)('%s replays deterministically', async (file) => {
  installQuietRuntime();
  const history = historyFromJSON(JSON.parse(readFileSync(join(dir, file), 'utf8')));
  const workflowType = workflowTypeOf(file)!;
  await expect(
    Worker.runReplayHistory(
      { workflowsPath: require.resolve('../../workflows'), replayName: file, dataConverter },
      history,
      `${workflowType}-${file}`,
    ),
  ).resolves.toBeUndefined();
});
