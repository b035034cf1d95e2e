import { execFile } from 'node:child_process';
import { resolve } from 'node:path';
import { promisify } from 'node:util';
import { encodeSearchAttributeIndexedValueType } from '@temporalio/common/lib/search-attributes';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { ALL_SEARCH_ATTRIBUTES } from '../../workflows/contracts';

/**
 * Temporal's time-skipping test server (the Java one, installed into ~/.cache/holdfast by
 * infra/local/temporal-test-server.sh): a missing Java or Maven fails here, naming the prerequisite. Holdfast's search
 * attributes are registered as on the dev server: the test server refuses a child workflow started with an unknown
 * one, and says so nowhere but in the child's start never completing.
 */
export async function startTimeSkippingEnvironment(): Promise<TestWorkflowEnvironment> {
  const script = resolve(__dirname, '../../infra/local/temporal-test-server.sh');
  let path: string;
  try {
    path = (await promisify(execFile)('bash', [script], { timeout: 600_000 })).stdout.trim();
  } catch (err) {
    const { stderr, message } = err as { stderr?: string; message: string };
    throw new Error(`Temporal's time-skipping test server is missing: ${stderr?.trim() || message}`);
  }
  const env = await TestWorkflowEnvironment.createTimeSkipping({
    server: { executable: { type: 'existing-path', path } },
  });
  await env.connection.operatorService.addSearchAttributes({
    namespace: env.namespace ?? 'default',
    searchAttributes: Object.fromEntries(
      ALL_SEARCH_ATTRIBUTES.map((key) => [key.name, encodeSearchAttributeIndexedValueType(key.type)!]),
    ),
  });
  return env;
}
