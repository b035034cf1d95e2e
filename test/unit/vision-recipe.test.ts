/**
 * A station's recipe turns decoder candidates into the verdict: per-class thresholds (recipe, else the model's
 * manifest default, else 0.5), a minimum defect size, and defects ordered most confident first.
 */
import { ModelManifest, type DefectCandidate, type Recipe } from '../../infra/vision/contracts';
import { applyRecipe, FALLBACK_THRESHOLD, thresholdFor } from '../../infra/vision/recipe';

const manifest = ModelManifest.parse({
  name: 'part-defects',
  version: '2024.1',
  file: 'part-defects.onnx',
  sha256: 'a'.repeat(64),
  input: {
    name: 'input',
    layout: 'NCHW',
    shape: [-1, 3, 128, 128],
    colorSpace: 'rgb',
    normalisation: { scale: 1 / 255, mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25] },
  },
  decoder: { kind: 'classifier-box', logitsOutput: 'logits', boxOutput: 'box', goodClass: 'good' },
  classes: ['good', 'scratch', 'dent', 'crack', 'contamination'],
  thresholds: { scratch: 0.6, dent: 0.4 },
});

function recipe(over: Partial<Recipe> = {}): Recipe {
  return {
    site: 'PLANT1',
    line: 'L1',
    station: 'ST1',
    sku: 'BRACKET-A',
    version: '3',
    model: { name: 'part-defects', version: '2024.1' },
    thresholds: {},
    minDefectAreaPx: 0,
    ...over,
  };
}

const box = (x: number, y: number, width: number, height: number) => ({ x, y, width, height });

describe('applyRecipe', () => {
  it('takes each class threshold from the recipe, else the manifest, else 0.5', () => {
    const r = recipe({ thresholds: { scratch: 0.8, crack: 0.3 } });
    expect(thresholdFor('scratch', r, manifest)).toBe(0.8); // recipe overrides the manifest's 0.6
    expect(thresholdFor('dent', r, manifest)).toBe(0.4); // manifest default
    expect(thresholdFor('crack', r, manifest)).toBe(0.3); // recipe only
    expect(thresholdFor('contamination', r, manifest)).toBe(FALLBACK_THRESHOLD);
    expect(FALLBACK_THRESHOLD).toBe(0.5);

    const candidates: DefectCandidate[] = [
      { class: 'scratch', score: 0.7 }, // < 0.8 (recipe): dropped, though above the manifest's 0.6
      { class: 'dent', score: 0.4 }, // = 0.4 (manifest): kept, a threshold is reached when equalled
      { class: 'crack', score: 0.35 }, // >= 0.3 (recipe): kept
      { class: 'contamination', score: 0.49 }, // < 0.5 (fallback): dropped
    ];
    expect(applyRecipe(candidates, r, manifest)).toEqual({
      result: 'fail',
      defects: [
        { class: 'dent', score: 0.4 },
        { class: 'crack', score: 0.35 },
      ],
    });
    // The same candidates under the manifest defaults alone.
    expect(applyRecipe(candidates, recipe(), manifest).defects.map((d) => d.class)).toEqual(['scratch', 'dent']);
  });

  it('ignores boxes smaller than minDefectAreaPx and always counts a candidate without a box', () => {
    const r = recipe({ minDefectAreaPx: 100 });
    const candidates: DefectCandidate[] = [
      { class: 'dent', score: 0.9, box: box(10, 10, 9.9, 10) }, // 99 px²: too small
      { class: 'dent', score: 0.8, box: box(50, 50, 10, 10) }, // 100 px²: counts
      { class: 'crack', score: 0.7 }, // not localised: counts
    ];
    expect(applyRecipe(candidates, r, manifest).defects).toEqual([
      { class: 'dent', score: 0.8, bbox: box(50, 50, 10, 10) },
      { class: 'crack', score: 0.7 },
    ]);
    expect(applyRecipe([candidates[0]!], r, manifest)).toEqual({ result: 'pass', defects: [] });
  });

  it('orders defects by score, most confident first, with boxes rounded to whole pixels', () => {
    const candidates: DefectCandidate[] = [
      { class: 'dent', score: 0.55, box: box(10.4, 20.5, 30.49, 40.6) },
      { class: 'contamination', score: 0.95, box: box(1.2, 2.7, 3.5, 4.4) },
      { class: 'scratch', score: 0.75 },
    ];
    expect(applyRecipe(candidates, recipe(), manifest).defects).toEqual([
      { class: 'contamination', score: 0.95, bbox: box(1, 3, 4, 4) },
      { class: 'scratch', score: 0.75 },
      { class: 'dent', score: 0.55, bbox: box(10, 21, 30, 41) },
    ]);
  });

  it('passes a part with no candidates, or only candidates below their thresholds', () => {
    expect(applyRecipe([], recipe(), manifest)).toEqual({ result: 'pass', defects: [] });
    expect(applyRecipe([{ class: 'scratch', score: 0.59 }], recipe(), manifest)).toEqual({
      result: 'pass',
      defects: [],
    });
  });

  it('refuses a recipe written for another model, whose thresholds would mean something else', () => {
    const other = recipe({ model: { name: 'part-defects', version: '2023.9' } });
    expect(() => applyRecipe([{ class: 'dent', score: 0.9 }], other, manifest)).toThrow(
      'recipe ST1/BRACKET-A v3 is for model part-defects@2023.9, not part-defects@2024.1',
    );
  });
});
