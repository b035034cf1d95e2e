import { canonicalJson, sha256Hex } from '../../infra/ingest/canonical-json';

describe('canonicalJson', () => {
  it('gives the same bytes for the same value whatever the key order, at every depth', () => {
    const a = { b: 1, a: { d: [{ y: 2, x: 1 }], c: 'x' } };
    const b = { a: { c: 'x', d: [{ x: 1, y: 2 }] }, b: 1 };

    expect(canonicalJson(a)).toBe('{"a":{"c":"x","d":[{"x":1,"y":2}]},"b":1}');
    expect(canonicalJson(b)).toBe(canonicalJson(a));
  });

  it('keeps array order and drops undefined members as JSON.stringify does', () => {
    expect(canonicalJson({ list: [3, 1, 2], gone: undefined, nil: null })).toBe('{"list":[3,1,2],"nil":null}');
  });

  it('distinguishes values that differ only in a nested field', () => {
    const base = { defects: [{ class: 'scratch', score: 0.9 }] };
    const other = { defects: [{ class: 'scratch', score: 0.91 }] };

    expect(sha256Hex(canonicalJson(base))).not.toBe(sha256Hex(canonicalJson(other)));
    expect(sha256Hex(canonicalJson(base))).toMatch(/^[0-9a-f]{64}$/);
  });
});
