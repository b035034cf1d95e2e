import { ExternalSystemError } from '../../activities/errors';
import { odataString } from '../../infra/connectors/sap-s4/client';
import {
  kindForSapError,
  parseSapError,
  sapHttpError,
  sapMalformedResponse,
  sapTransportError,
} from '../../infra/connectors/sap-s4/errors';
import {
  IDEMPOTENCY_TOKEN_LENGTH,
  idempotencyToken,
  textWithToken,
} from '../../infra/connectors/sap-s4/idempotency-token';

describe('idempotencyToken', () => {
  it('is deterministic, 16 characters of HF + base32, and differs between keys', () => {
    const key = 'defect:evt-0001:block';
    expect(idempotencyToken(key)).toBe(idempotencyToken(key));
    expect(idempotencyToken(key)).toMatch(/^HF[A-Z2-7]{14}$/);
    expect(idempotencyToken(key)).toHaveLength(IDEMPOTENCY_TOKEN_LENGTH);
    const tokens = new Set(Array.from({ length: 5000 }, (_, i) => idempotencyToken(`defect:evt-${i}:block`)));
    expect(tokens.size).toBe(5000);
  });

  it('encodes the first 70 bits of SHA-256 (known vector)', () => {
    // sha256('') = e3b0c442 98fc1c14 …; base32 of e3 b0 c4 42 98 fc 1c 14 9a… starts 4OYMIQUY7QOB.
    expect(idempotencyToken('')).toBe('HF4OYMIQUY7QOBJG');
  });
});

describe('textWithToken', () => {
  const token = 'HFAAAAAAAAAAAAAA';
  it('appends the token after a space and cuts the text, never the token, to the field length', () => {
    expect(textWithToken('scratch', token, 40)).toBe(`scratch ${token}`);
    const long = textWithToken('a very long defect description that will not fit', token, 40);
    expect(long).toHaveLength(40);
    expect(long.endsWith(` ${token}`)).toBe(true);
    expect(textWithToken('   ', token, 40)).toBe(token);
  });
});

describe('odataString', () => {
  it('quotes and doubles embedded quotes', () => {
    expect(odataString("O'Brien")).toBe("'O''Brien'");
  });
});

describe('OData V4 error bodies', () => {
  it('are read like V2 ones: the message is a plain string, the code decides a business refusal', () => {
    const body = JSON.stringify({
      error: { code: 'ZHFS_SIM/010', message: 'Notification 200000001 is completed', details: [] },
    });
    expect(parseSapError(body)).toEqual({ code: 'ZHFS_SIM/010', message: 'Notification 200000001 is completed' });
    expect(sapHttpError('sap', 'addNotificationItem', 400, body).kind).toBe('rejected');
  });
});

describe('SAP error classification', () => {
  const sapBody = (code: string, value: string) => JSON.stringify({ error: { code, message: { lang: 'en', value } } });

  it('reads the SAP Gateway error body, or the first line of plain text', () => {
    expect(parseSapError(sapBody('M7/021', 'Deficit of BL Blocked stock 5 PC'))).toEqual({
      code: 'M7/021',
      message: 'Deficit of BL Blocked stock 5 PC',
    });
    expect(parseSapError('CSRF token validation failed')).toEqual({ message: 'CSRF token validation failed' });
    expect(parseSapError('<html><body>Logon failed</body></html>')).toEqual({ message: 'Logon failed' });
    expect(parseSapError('')).toEqual({});
  });

  it.each([
    [400, 'M7/021', 'rejected'],
    [400, 'ZHFS_SIM/010', 'rejected'],
    [400, 'M3/305', 'validation'],
    [422, undefined, 'validation'],
    [404, undefined, 'not-found'],
    [403, undefined, 'rejected'],
    [409, undefined, 'rejected'],
    [429, undefined, 'transient'],
    [500, undefined, 'transient'],
    [503, undefined, 'transient'],
  ] as const)('HTTP %i with %s is %s', (status, code, kind) => {
    expect(kindForSapError(status, code ? { code } : {})).toBe(kind);
  });

  /** A goods movement refused the way the material document API answers: a generic 014, the reason nested. */
  const nested = (detail: { code: string; message: string; severity: string }) =>
    JSON.stringify({
      error: {
        code: 'MM_IM_ODATA_API_MDOC/014',
        message: { lang: 'en', value: 'Material document processing failed' },
        innererror: {
          application: { component_id: '', service_namespace: '/SAP/', service_id: 'API_MATERIAL_DOCUMENT_SRV' },
          transactionid: 'A1B2',
          timestamp: '20260101120000',
          Error_Resolution: { SAP_Transaction: '', SAP_Note: '' },
          errordetails: [
            { ...detail, propertyref: '', target: '' },
            {
              code: '/IWBEP/CX_MGW_BUSI_EXCEPTION',
              message: 'Material document processing failed',
              propertyref: '',
              severity: 'info',
              target: '',
            },
          ],
        },
      },
    });

  it('finds a deficit reported only in errordetails: rejected, and the message shows it', () => {
    const body = nested({ code: 'M7/021', message: 'Deficit of BL Blocked stock 5 PC : BRKT-200', severity: 'error' });
    expect(parseSapError(body)).toEqual({
      code: 'MM_IM_ODATA_API_MDOC/014',
      message: 'Material document processing failed',
      details: [
        { code: 'M7/021', message: 'Deficit of BL Blocked stock 5 PC : BRKT-200', severity: 'error' },
        { code: '/IWBEP/CX_MGW_BUSI_EXCEPTION', message: 'Material document processing failed', severity: 'info' },
      ],
    });
    const err = sapHttpError('sap-prd', 'postGoodsMovement 555', 400, body);
    expect(err).toMatchObject({ kind: 'rejected', httpStatus: 400 });
    expect(err.message).toBe(
      'SAP sap-prd postGoodsMovement 555: HTTP 400 M7/021: Deficit of BL Blocked stock 5 PC : BRKT-200' +
        ' (MM_IM_ODATA_API_MDOC/014: Material document processing failed)',
    );
  });

  it('counts only details of severity error: a business code in an info entry does not make a refusal', () => {
    const info = nested({ code: 'M7/021', message: 'for information', severity: 'info' });
    expect(sapHttpError('sap', 'op', 400, info).kind).toBe('validation');
    const unknownMaterial = nested({ code: 'M3/305', message: 'Material X does not exist', severity: 'error' });
    const err = sapHttpError('sap', 'op', 400, unknownMaterial);
    expect(err.kind).toBe('validation');
    expect(err.message).toContain('HTTP 400 M3/305: Material X does not exist');
  });

  it('reads OData V4 bodies: message as text, details with a numeric severity', () => {
    const body = JSON.stringify({
      error: {
        code: 'SY/530',
        message: 'Notification could not be changed',
        target: '',
        details: [
          { code: 'ZHFS_SIM/010', message: 'Notification 200000001 is completed', '@Common.numericSeverity': 4 },
          { code: 'SY/002', message: 'hint', '@Common.numericSeverity': 2 },
        ],
        innererror: {},
      },
    });
    expect(parseSapError(body).details).toEqual([
      { code: 'ZHFS_SIM/010', message: 'Notification 200000001 is completed', severity: 'error' },
      { code: 'SY/002', message: 'hint', severity: 'info' },
    ]);
    const err = sapHttpError('sap', 'completeNotification', 400, body);
    expect(err.kind).toBe('rejected');
    expect(err.message).toContain('HTTP 400 ZHFS_SIM/010: Notification 200000001 is completed (SY/530:');
  });

  it('says an unknown or inactive service (403 /IWFND/MED/170) is not active, and does not retry it', () => {
    const body = JSON.stringify({
      error: {
        code: '/IWFND/MED/170',
        message: { lang: 'en', value: "No service found for namespace '/SAP/', name 'API_X', version '0002'" },
        innererror: { errordetails: [] },
      },
    });
    const err = sapHttpError('sap-prd', 'postGoodsMovement 344', 403, body);
    expect(err).toMatchObject({ kind: 'rejected', httpStatus: 403 });
    expect(err.message).toContain('/IWFND/MED/170: the OData service is not active on this SAP system');
    expect(err.message).toContain("name 'API_X', version '0002'");
  });

  it('names system, operation, status, code and SAP text in the message', () => {
    const err = sapHttpError(
      'sap-prd',
      'postGoodsMovement 344',
      400,
      sapBody('M7/021', 'Deficit of SL Unrestricted-use 2 PC'),
    );
    expect(err).toBeInstanceOf(ExternalSystemError);
    expect(err).toMatchObject({ system: 'sap-prd', kind: 'rejected', httpStatus: 400 });
    expect(err.message).toBe('SAP sap-prd postGoodsMovement 344: HTTP 400 M7/021: Deficit of SL Unrestricted-use 2 PC');
  });

  it('treats timeouts, closed connectors and socket errors as transient, keeping the socket code', () => {
    const timeout = Object.assign(new Error('The operation was aborted due to timeout'), { name: 'TimeoutError' });
    expect(sapTransportError('sap', 'op', timeout, 250)).toMatchObject({
      kind: 'transient',
      message: 'SAP sap op: no response within 250 ms',
    });
    const abort = Object.assign(new Error('aborted'), { name: 'AbortError' });
    expect(sapTransportError('sap', 'op', abort, 250).message).toContain('connector is closing');
    const dropped = new TypeError('fetch failed', {
      cause: Object.assign(new Error('other side closed'), { code: 'UND_ERR_SOCKET' }),
    });
    const err = sapTransportError('sap', 'op', dropped, 250);
    expect(err.kind).toBe('transient');
    expect(err.message).toContain('UND_ERR_SOCKET other side closed');
    const already = new ExternalSystemError('sap', 'validation', 'x');
    expect(sapTransportError('sap', 'op', already, 250)).toBe(already);
  });

  it('treats a malformed 2xx body as validation', () => {
    const err = sapMalformedResponse('sap', 'op', 200, 'body is not JSON');
    expect(err).toMatchObject({ kind: 'validation', httpStatus: 200 });
  });
});
