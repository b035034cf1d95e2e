import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { SearchAttributeType, TypedSearchAttributes, defineSearchAttributeKey } from '@temporalio/common';
import { startTemporalDevServer, type TemporalDevServer } from '../../infra/local/temporal-dev-server';
import { ALL_SEARCH_ATTRIBUTES, SearchAttributes } from '../../workflows/contracts';
import { eventually } from '../support/eventually';
import { readTestEnv } from '../support/test-env';
import { isRunning } from '../support/process-alive';

jest.setTimeout(120_000);

let dir: string;
let server: TemporalDevServer | undefined;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'holdfast-temporal-'));
});

afterEach(async () => {
  await server?.stop();
  server = undefined;
  rmSync(dir, { recursive: true, force: true });
});

async function withClient<T>(address: string, work: (client: Client, connection: Connection) => Promise<T>) {
  const connection = await Connection.connect({ address });
  try {
    return await work(new Client({ connection, namespace: 'default' }), connection);
  } finally {
    await connection.close();
  }
}

describe('startTemporalDevServer', () => {
  it('keeps workflows and search attributes when restarted on the same SQLite file', async () => {
    const { temporalCliPath } = readTestEnv();
    const dbFile = join(dir, 'nested', 'temporal.sqlite');
    const opts = { cliPath: temporalCliPath, uiPort: false as const, dbFile, searchAttributes: ALL_SEARCH_ATTRIBUTES };
    const workflowId = `restart-check-${Date.now()}`;

    server = await startTemporalDevServer(opts);
    const firstPid = server.pid;
    // No worker polls this queue: the execution simply stays Running, which is all a restart check needs.
    await withClient(server.address, (client) =>
      client.workflow.start('holdfastRestartProbe', {
        taskQueue: 'holdfast-restart-probe',
        workflowId,
        typedSearchAttributes: new TypedSearchAttributes([{ key: SearchAttributes.site, value: 'PLANT1' }]),
      }),
    );
    await server.stop();
    expect(isRunning(firstPid)).toBe(false);

    server = await startTemporalDevServer(opts);
    const { status, site, customAttributes } = await withClient(server.address, async (client, connection) => {
      const description = await client.workflow.getHandle(workflowId).describe();
      const attrs = await connection.operatorService.listSearchAttributes({ namespace: 'default' });
      return {
        status: description.status.name,
        site: description.typedSearchAttributes.get(SearchAttributes.site),
        customAttributes: Object.keys(attrs.customAttributes ?? {}),
      };
    });

    expect(status).toBe('RUNNING');
    expect(site).toBe('PLANT1');
    expect(customAttributes).toEqual(expect.arrayContaining(ALL_SEARCH_ATTRIBUTES.map((k) => k.name)));

    // An upgrade: a file from a build that had fewer attributes gets the new ones at start.
    await server.stop();
    // Not a Keyword: Holdfast's attributes take all 10 of the dev server's Keyword slots.
    const added = defineSearchAttributeKey('HoldfastUpgradeProbe', SearchAttributeType.INT);
    server = await startTemporalDevServer({ ...opts, searchAttributes: [...ALL_SEARCH_ATTRIBUTES, added] });
    const upgraded = await withClient(server.address, async (_client, connection) =>
      Object.keys(
        (await connection.operatorService.listSearchAttributes({ namespace: 'default' })).customAttributes ?? {},
      ),
    );
    expect(upgraded).toContain(added.name);

    // The file keeps the types it was given first: a start that needs another type for one says so and stops.
    await server.stop();
    server = undefined;
    const asKeyword = defineSearchAttributeKey(SearchAttributes.workOrder.name, SearchAttributeType.KEYWORD);
    await expect(startTemporalDevServer({ ...opts, searchAttributes: [asKeyword] })).rejects.toThrow(
      /registered with another type in this dev server's database: WorkOrder \(needs Keyword\)/,
    );
  });

  it('serves the Web UI on the port it reports', async () => {
    server = await startTemporalDevServer({
      cliPath: readTestEnv().temporalCliPath,
      searchAttributes: [],
    });
    const { uiUrl } = server;
    expect(uiUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    // The UI server comes up alongside the frontend; give it a moment on a busy 2-core host.
    const status = await eventually(
      'the Web UI to answer',
      () => fetch(uiUrl!).then((r) => r.status),
      (s) => s === 200,
    );
    expect(status).toBe(200);
  });

  it('refuses a port that is already taken instead of talking to the server there', async () => {
    const { temporalAddress, temporalCliPath } = readTestEnv();
    const port = Number(temporalAddress.split(':').pop());

    const attempt = startTemporalDevServer({ cliPath: temporalCliPath, port, uiPort: false, searchAttributes: [] });

    await expect(attempt).rejects.toThrow(`Temporal gRPC port 127.0.0.1:${port} is already in use`);
  });

  it('fails with the exit status and the tail of the server output when the server dies', async () => {
    const fakeCli = join(dir, 'temporal');
    writeFileSync(fakeCli, '#!/bin/sh\necho "starting"\necho "sqlite: unable to open database file" >&2\nexit 3\n', {
      mode: 0o755,
    });

    const attempt = startTemporalDevServer({ cliPath: fakeCli, uiPort: false, searchAttributes: [] });

    await expect(attempt).rejects.toThrow(
      /exited with code 3 while starting[\s\S]*server output \(tail\)[\s\S]*sqlite: unable to open database file/,
    );
  });
});
