import { CsrfSessionStore } from '../../infra/simulators/sap-s4/csrf-session';
import {
  keyPredicateText,
  parseFilter,
  parseODataDate,
  parseQueryOptions,
  parseResourcePath,
  SapODataError,
} from '../../infra/simulators/sap-s4/odata';

/** What `fn` throws; fails the test when it does not throw. */
function thrownBy(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  throw new Error('expected the call to throw');
}

describe('OData V2 resource paths', () => {
  it('parses entity sets, single and named key predicates, and navigations', () => {
    expect(parseResourcePath('QualityNotification')).toEqual({ entitySet: 'QualityNotification' });
    expect(parseResourcePath("QualityNotification('200000001')")).toEqual({
      entitySet: 'QualityNotification',
      key: { single: '200000001', named: {} },
    });
    expect(
      parseResourcePath(
        "A_MaterialDocumentHeader(MaterialDocumentYear='2026',MaterialDocument='4900000001')/to_MaterialDocumentItem",
      ),
    ).toEqual({
      entitySet: 'A_MaterialDocumentHeader',
      key: { named: { MaterialDocumentYear: '2026', MaterialDocument: '4900000001' } },
      navigation: 'to_MaterialDocumentItem',
    });
    expect(parseResourcePath("X('it''s, ok')").key?.single).toBe("it's, ok");
  });

  it('answers an unparsable path with 404 and a bad literal with 400', () => {
    expect(thrownBy(() => parseResourcePath('Not a path!'))).toBeInstanceOf(SapODataError);
    expect(thrownBy(() => parseResourcePath('X(unquoted)'))).toMatchObject({ httpStatus: 400 });
  });

  it('writes key predicates as SAP does in __metadata.uri', () => {
    expect(keyPredicateText({ QualityNotification: '200000001' })).toBe("('200000001')");
    expect(keyPredicateText({ A: '1', B: "o'k" })).toBe("(A='1',B='o''k')");
  });
});

describe('$filter', () => {
  it('accepts equality conjunctions with quoted and numeric literals', () => {
    expect(parseFilter("Material eq 'BRKT-200' and Plant eq '1010'")).toEqual([
      { property: 'Material', operator: 'eq', value: 'BRKT-200', literal: 'string' },
      { property: 'Plant', operator: 'eq', value: '1010', literal: 'string' },
    ]);
    expect(parseFilter("(Text eq 'a''b') and Year eq 2026")).toEqual([
      { property: 'Text', operator: 'eq', value: "a'b", literal: 'string' },
      { property: 'Year', operator: 'eq', value: '2026', literal: 'number' },
    ]);
    expect(parseFilter(undefined)).toEqual([]);
  });

  it('accepts range comparisons with datetime and time literals, for paging by date or number', () => {
    expect(
      parseFilter(
        "CreationDate ge datetime'2026-01-05T00:00:00' and CreationTime lt time'PT10H00M00S' and MaterialDocument gt '4900000010'",
      ),
    ).toEqual([
      { property: 'CreationDate', operator: 'ge', value: '2026-01-05T00:00:00', literal: 'datetime' },
      { property: 'CreationTime', operator: 'lt', value: 'PT10H00M00S', literal: 'time' },
      { property: 'MaterialDocument', operator: 'gt', value: '4900000010', literal: 'string' },
    ]);
  });

  it.each([
    "Material ne 'X'",
    "Material eq 'X' or Plant eq '1'",
    "substringof('X', Material)",
    "Material eq 'X' and",
    'Material eq Plant',
  ])('refuses %s with 400 instead of ignoring it', (filter) => {
    expect(thrownBy(() => parseFilter(filter))).toMatchObject({ httpStatus: 400 });
  });

  it('parses the other system query options and refuses a non-numeric $top', () => {
    expect(
      parseQueryOptions({ $top: '5', $skip: '2', $expand: 'to_A, to_B', $select: 'A,B', $inlinecount: 'allpages' }),
    ).toEqual({
      filter: [],
      top: 5,
      skip: 2,
      expand: ['to_A', 'to_B'],
      select: ['A', 'B'],
      inlineCount: true,
      orderBy: [],
    });
    expect(parseQueryOptions({ $orderby: 'CreationDate desc, MaterialDocument', $skiptoken: '5000' })).toMatchObject({
      orderBy: [
        { property: 'CreationDate', descending: true },
        { property: 'MaterialDocument', descending: false },
      ],
      skipToken: 5000,
    });
    expect(thrownBy(() => parseQueryOptions({ $top: 'ten' }))).toMatchObject({ httpStatus: 400 });
    expect(thrownBy(() => parseQueryOptions({ $orderby: 'A sideways' }))).toMatchObject({ httpStatus: 400 });
  });
});

describe('OData dates', () => {
  it('reads /Date(ms)/, with offset, and ISO-8601 input', () => {
    expect(parseODataDate('/Date(1767225600000)/', 'PostingDate').toISOString()).toBe('2026-01-01T00:00:00.000Z');
    expect(parseODataDate('/Date(1767225600000+0000)/', 'PostingDate').getTime()).toBe(1767225600000);
    expect(parseODataDate('2026-01-01T00:00:00', 'PostingDate').getTime()).toBe(1767225600000);
    expect(thrownBy(() => parseODataDate('yesterday', 'PostingDate'))).toMatchObject({ httpStatus: 400 });
  });
});

describe('CSRF sessions', () => {
  it('keeps one token per live session, binds it to both cookies and forgets it after the idle TTL', () => {
    const store = new CsrfSessionStore(1000);
    const s = store.fetch(undefined, 0);
    expect(store.fetch(s.id, 500).token).toBe(s.token);
    expect(store.validate(s.id, s.xsrfCookie, s.token, 900)).toMatchObject({ ok: true });
    expect(store.validate(s.id, 'other', s.token, 900)).toMatchObject({ ok: false });
    expect(store.validate(s.id, s.xsrfCookie, 'forged', 900)).toMatchObject({ ok: false });
    expect(store.validate(s.id, s.xsrfCookie, s.token, 3000)).toMatchObject({ ok: false });
    expect(store.fetch(s.id, 3000).token).not.toBe(s.token);
  });
});
