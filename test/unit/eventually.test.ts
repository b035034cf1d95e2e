import { eventually } from '../support/eventually';

describe('eventually', () => {
  test('returns the first value the predicate accepts, reading again until then', async () => {
    let reads = 0;
    const value = await eventually(
      'the third read',
      () => ++reads,
      (n) => n === 3,
      { intervalMs: 1 },
    );
    expect(value).toBe(3);
    expect(reads).toBe(3);
  });

  test('without a predicate, undefined, null and false mean not yet and the value is returned', async () => {
    const answers = [undefined, null, false, { row: 1 }];
    await expect(eventually('a row', () => answers.shift(), { intervalMs: 1 })).resolves.toEqual({ row: 1 });
    expect(answers).toEqual([]);
  });

  test('a read that throws counts as not yet', async () => {
    let reads = 0;
    const read = async () => {
      reads += 1;
      if (reads < 3) throw new Error('workflow not found');
      return 'running';
    };
    await expect(eventually('the workflow', read, { intervalMs: 1 })).resolves.toBe('running');
  });

  test('the timeout names what it waited for, the last value read and the last error', async () => {
    let reads = 0;
    const read = async () => {
      reads += 1;
      if (reads % 2 === 1) throw new Error(`connection refused #${reads}`);
      return { stage: 'open', parts: reads };
    };
    const failure = eventually('the lot case closed', read, (v) => v.stage === 'closed', {
      timeoutMs: 100,
      intervalMs: 5,
    });
    await expect(failure).rejects.toThrow(/^timed out after 100 ms \(\d+ reads\) waiting for the lot case closed/);
    await expect(failure).rejects.toThrow(/last value read: \{ stage: 'open', parts: \d+ \}/);
    await expect(failure).rejects.toThrow(/last error: connection refused #\d+$/);
  });

  test('says so when no read ever succeeded', async () => {
    const read = (): number => {
      throw new Error('ECONNREFUSED');
    };
    await expect(eventually('the server', read, { timeoutMs: 30 })).rejects.toThrow(
      /last value read: \(no read succeeded\); last error: ECONNREFUSED$/,
    );
  });
});
