import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseConfig } from '../../infra/config/load';
import { cameraStationsFor } from '../../infra/simulators/camera/camera.plan';
import { visionFaultsFromEnv, visionSystemsFromConfig } from '../../infra/simulators/line-plc/plant-config';
import { seedRecipesFromConfig } from '../../infra/vision/recipe.repository';

const repoConfig = parseConfig(readFileSync(resolve(__dirname, '../../temporal.yaml'), 'utf8'));

describe('line-plc simulator options from the plant config', () => {
  it("runs one vision system per station with vision:, knowing the recipe ids of that station's SKUs", () => {
    expect(visionSystemsFromConfig(repoConfig)).toEqual([
      {
        system: 'L1-S4-vision',
        site: 'PLANT1',
        line: 'L1',
        station: 'S4',
        recipes: ['BRKT200-A', 'CVR120-C', 'HSG310-B'],
      },
    ]);
  });

  it('leaves the external vision station out of the camera simulator and the recipes Holdfast seeds', () => {
    const cameras = cameraStationsFor(repoConfig.sites);
    const stationsOf = (list: { line: string; station: string }[]) =>
      new Set(list.filter((s) => s.line === 'L1').map((s) => s.station));

    expect(stationsOf([...cameras.stations, ...cameras.skipped])).toEqual(new Set(['S1', 'S2', 'S3']));
    expect(stationsOf(seedRecipesFromConfig(repoConfig))).toEqual(new Set(['S1', 'S2', 'S3']));
  });

  it('gives a system its faults from LINE_PLC_VISION_FAULTS', () => {
    const faults = visionFaultsFromEnv('{"L1-S4-vision":{"prepareDelayMs":2000,"refuseWithError":-100}}');

    expect(visionSystemsFromConfig(repoConfig, faults)[0]!.faults).toEqual({
      prepareDelayMs: 2000,
      refuseWithError: -100,
    });
    expect(visionFaultsFromEnv('{"X":{"reportWrongRecipe":"HSG310-B"}}')).toEqual({
      X: { reportWrongRecipe: 'HSG310-B' },
    });
    expect(visionFaultsFromEnv(undefined)).toEqual({});
  });

  it.each([
    ['not json', /LINE_PLC_VISION_FAULTS is not JSON/],
    ['[1]', /must be an object keyed by vision system name/],
    ['{"X":{"refuseWithError":0}}', /X\.refuseWithError must be a non-zero integer/],
    ['{"X":{"prepareDelayMs":-1}}', /X\.prepareDelayMs must be a number of ms/],
    ['{"X":{"slow":true}}', /X: unknown fault slow/],
  ])('refuses LINE_PLC_VISION_FAULTS=%s, naming what is wrong', (raw, message) => {
    expect(() => visionFaultsFromEnv(raw)).toThrow(message);
  });
});
