import { z } from 'zod';
import { ExternalSystemError } from '../../activities/errors';
import { mesHttpError, mesMalformedResponse, mesTransportError } from '../../infra/connectors/mes-rest/errors';

describe('MES REST error mapping', () => {
  it.each([
    [400, 'validation'],
    [422, 'validation'],
    [404, 'not-found'],
    [409, 'rejected'],
    [401, 'rejected'],
    [403, 'rejected'],
    [429, 'transient'],
    [500, 'transient'],
    [502, 'transient'],
    [503, 'transient'],
  ])('HTTP %i is %s', (status, kind) => {
    const err = mesHttpError('mes-sim', 'holdLot', status, { code: 'SOME_CODE', detail: 'explained' });

    expect(err).toBeInstanceOf(ExternalSystemError);
    expect(err).toMatchObject({ kind, httpStatus: status, system: 'mes-sim' });
    expect(err.message).toBe(`mes-sim holdLot: HTTP ${status} SOME_CODE: explained`);
  });

  it('names the status alone when the body carried no problem details', () => {
    expect(mesHttpError('mes-sim', 'getLot', 503, undefined).message).toBe('mes-sim getLot: HTTP 503');
  });

  it('treats our own timeout as transient and says how long it waited', () => {
    const timeout = new DOMException('The operation was aborted due to timeout', 'TimeoutError');

    const err = mesTransportError('mes-sim', 'recordQualityEvent', timeout, 5000);

    expect(err).toMatchObject({ kind: 'transient', httpStatus: undefined, cause: timeout });
    expect(err.message).toBe('mes-sim recordQualityEvent: no response within 5000 ms');
  });

  it.each([
    ['ECONNRESET', 'read ECONNRESET'],
    ['UND_ERR_SOCKET', 'other side closed'],
    ['ECONNREFUSED', 'connect ECONNREFUSED 127.0.0.1:4010'],
  ])('treats a fetch failure caused by %s as transient and keeps the socket error in the message', (code, message) => {
    const cause = Object.assign(new Error(message), { code });
    const failure = new TypeError('fetch failed', { cause });

    const err = mesTransportError('mes-sim', 'holdLot', failure, 5000);

    expect(err.kind).toBe('transient');
    expect(err.message).toBe(`mes-sim holdLot: network error (fetch failed <- ${code} ${message})`);
    expect(err.cause).toBe(failure);
  });

  it('passes an ExternalSystemError through unchanged', () => {
    const original = new ExternalSystemError('mes-sim', 'rejected', 'already classified');

    expect(mesTransportError('mes-sim', 'getLot', original, 5000)).toBe(original);
  });

  it('reports a malformed 2xx body as validation naming the offending fields', () => {
    const parsed = z.object({ holdId: z.string(), lotId: z.string() }).safeParse({ holdId: 7 });
    if (parsed.success) throw new Error('the sample body was expected to be invalid');

    const err = mesMalformedResponse('mes-sim', 'holdLot', 201, parsed.error);

    expect(err).toMatchObject({ kind: 'validation', httpStatus: 201 });
    expect(err.message).toMatch(/^mes-sim holdLot: malformed response \(HTTP 201\): holdId: .+; lotId: .+/);
  });
});
