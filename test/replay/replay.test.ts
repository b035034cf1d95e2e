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
test('recorded histories exist for both workflow types', () => {
  expect(files.some((f) => f.startsWith('shadow-'))).toBe(true);
  expect(files.some((f) => f.startsWith('lot-case-'))).toBe(true);
});

test.each(files)('%s replays deterministically', async (file) => {
  installQuietRuntime();
  const history = historyFromJSON(JSON.parse(readFileSync(join(dir, file), 'utf8')));
  const workflowType = file.startsWith('shadow-') ? 'shadowDefectWorkflow' : 'lotCaseWorkflow';
  await expect(
    Worker.runReplayHistory(
      { workflowsPath: require.resolve('../../workflows'), replayName: file, dataConverter },
      history,
      `${workflowType}-${file}`,
    ),
  ).resolves.toBeUndefined();
});
