import { defectStaticDetails, defectStaticSummary } from '../../infra/temporal/gateway';
import { type DefectDetection, SearchAttributes, detectionSearchAttributes } from '../../workflows/contracts';

function input(overrides: Partial<DefectDetection> = {}): DefectDetection {
  return {
    eventId: 'cam-7:000123',
    site: 'PLANT1',
    line: 'L1',
    station: 'S1',
    partId: 'P-1',
    sku: 'BRKT-200',
    lotId: 'L-0001',
    workOrder: '1000100',
    defects: [
      { class: 'scratch', score: 0.934 },
      { class: 'dent', score: 0.4 },
    ],
    modelVersion: 'yolo-1.4.2',
    recipeVersion: 'R-17',
    inspectedAt: '2025-03-04T10:15:00+01:00',
    ...overrides,
  };
}

describe('workflow metadata for the Temporal Web UI', () => {
  it('summarises class, place, lot and part on one line', () => {
    expect(defectStaticSummary(input())).toBe('scratch on PLANT1/L1/S1 · lot L-0001 · part P-1');
    expect(defectStaticSummary(input(), 'shadow: ')).toBe('shadow: scratch on PLANT1/L1/S1 · lot L-0001 · part P-1');
  });

  it('keeps the summary within 200 bytes without splitting a multi-byte character', () => {
    const summary = defectStaticSummary(input({ lotId: 'Ä'.repeat(150), partId: 'ü'.repeat(50) }));

    expect(Buffer.byteLength(summary, 'utf8')).toBeLessThanOrEqual(200);
    expect(summary.endsWith('…')).toBe(true);
    expect(summary).not.toContain('\uFFFD');
  });

  it('writes Markdown details with versions and image, escaping producer text that would break the table', () => {
    const details = defectStaticDetails(input({ imageRef: 's3://b/k|x.png', partId: 'P_*1*' }));

    expect(details).toContain('| Event | `cam-7:000123` |');
    expect(details).toContain('| Model version | yolo-1.4.2 |');
    expect(details).toContain('| Recipe version | R-17 |');
    expect(details).toContain('| Image | s3://b/k\\|x.png |');
    expect(details).toContain('| Part | P\\_\\*1\\* |');
    expect(details).toContain('scratch (0.934), dent (0.400)');
  });

  it('sets every search attribute: one-element lists for a case to grow, DefectClass from the first defect', () => {
    const attrs = new Map(detectionSearchAttributes(input()).map((a) => [a.key.name, a.value]));

    expect(attrs.get(SearchAttributes.defectClass.name)).toEqual(['scratch']);
    expect(attrs.get(SearchAttributes.workOrder.name)).toEqual(['1000100']);
    expect(attrs.get(SearchAttributes.station.name)).toEqual(['S1']);
    expect(attrs.get(SearchAttributes.dispositionState.name)).toBe('containing');
    expect(attrs.get(SearchAttributes.lot.name)).toBe('L-0001');
    expect((attrs.get(SearchAttributes.detectedAt.name) as Date).toISOString()).toBe('2025-03-04T09:15:00.000Z');
    // Every attribute but a recall's own (RecallKind, RecallState, RecallScope: set by the recall workflow), a
    // changeover's (ChangeoverState) and supplier quality's (Supplier: receipts and SCARs).
    const recallOnly: string[] = [
      SearchAttributes.recallKind.name,
      SearchAttributes.recallState.name,
      SearchAttributes.recallScope.name,
      SearchAttributes.changeoverState.name,
      SearchAttributes.supplier.name,
    ];
    expect([...attrs.keys()].sort()).toEqual(
      Object.values(SearchAttributes)
        .map((k) => k.name)
        .filter((name) => !recallOnly.includes(name))
        .sort(),
    );
  });
});
