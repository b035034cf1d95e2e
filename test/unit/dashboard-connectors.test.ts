/**
 * The dashboard's connector tiles (api/services/connector-health.service.ts) against real local HTTP servers, the
 * configuration of their endpoints (config and `npm start`), and what a live stream of a line is given.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createConnectorHealth, PROBE_CACHE_MS } from '../../api/services/connector-health.service';
import { eventFor } from '../../api/services/live-feed.service';
import type { LiveEvent } from '../../api/schemas/dashboard.schema';
import { loadConfig, withDashboardHealthEndpoints } from '../../infra/config/load';
import { dashboardHealthEndpoints } from '../../infra/local/start';
import { HealthCheckError } from '../../infra/observability/health-checks';

const servers: Server[] = [];
let hits = 0;

/** Answers /health like a Holdfast process; /hang never answers. */
async function healthServer(checks: Record<string, boolean>): Promise<string> {
  const server = createServer((req, res) => {
    hits += 1;
    if (req.url === '/hang') return;
    const down = Object.values(checks).some((ok) => !ok);
    res.writeHead(down ? 503 : 200, { 'content-type': 'application/json' });
    res.end(
      JSON.stringify({
        ...(down ? { status: 503, title: 'Dependencies unavailable' } : { status: 'ok' }),
        checks: Object.fromEntries(
          Object.entries(checks).map(([name, ok]) => [name, { ok, required: false, detail: ok ? 'fine' : 'refused' }]),
        ),
      }),
    );
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

afterAll(async () => {
  for (const s of servers) {
    s.closeAllConnections();
    await new Promise((resolve) => s.close(resolve));
  }
});

const statusOf = (tiles: { name: string; status: string }[]) =>
  Object.fromEntries(tiles.map((t) => [t.name, t.status]));

describe('connector tiles', () => {
  it('maps checks to tiles: own checks, named checks of other processes, the worst of several, unknown otherwise', async () => {
    const worker = await healthServer({ 'connector:mes-a': true, 'connector:mes-b': false, 'connector:erp': true });
    const tiles = await createConnectorHealth({
      checks: [
        { name: 'postgres', check: async () => undefined },
        { name: 'temporal', required: false, check: () => Promise.reject(new HealthCheckError('not connected')) },
      ],
      endpoints: [
        { name: 'MES', url: `${worker}/health`, check: 'connector:mes-a' },
        { name: 'MES', url: `${worker}/health`, check: 'connector:mes-b' },
        { name: 'ERP', url: `${worker}/health`, check: 'connector:erp' },
        { name: 'PLC', url: `${worker}/health`, check: 'reject-station' },
        { name: 'Historian', url: `${worker}/health` },
      ],
    }).tiles();
    expect(statusOf(tiles)).toEqual({
      PostgreSQL: 'up',
      Temporal: 'down',
      MES: 'down',
      ERP: 'up',
      PLC: 'unknown',
      'MQTT broker': 'unknown',
      // No check named: the answer's status decides (503 here).
      Historian: 'down',
    });
    expect(tiles.find((t) => t.name === 'Temporal')!.detail).toBe('not connected');
    expect(tiles.find((t) => t.name === 'MQTT broker')!.detail).toMatch(/api\.dashboard\.healthEndpoints/);
  });

  it('gives a process that does not answer 500 ms, then shows it unknown', async () => {
    const base = await healthServer({});
    const started = Date.now();
    const tiles = await createConnectorHealth({
      checks: [],
      endpoints: [{ name: 'MES', url: `${base}/hang`, check: 'connector:mes' }],
    }).tiles();
    expect(Date.now() - started).toBeLessThan(1_500);
    expect(tiles.find((t) => t.name === 'MES')).toMatchObject({ status: 'unknown', detail: 'no answer within 500 ms' });
  });

  it('probes once per 5 s however often the view is read', async () => {
    const base = await healthServer({ mqtt: true });
    let clock = 1_000_000;
    const health = createConnectorHealth({
      checks: [],
      endpoints: [{ name: 'MQTT broker', url: `${base}/health`, check: 'mqtt' }],
      now: () => clock,
    });
    hits = 0;
    await Promise.all([health.tiles(), health.tiles()]);
    await health.tiles();
    expect(hits).toBe(1);
    clock += PROBE_CACHE_MS;
    expect(statusOf(await health.tiles())['MQTT broker']).toBe('up');
    expect(hits).toBe(2);
  });
});

describe('health endpoints in the configuration', () => {
  const config = loadConfig();

  it('are empty by default and replaced by HOLDFAST_DASHBOARD_HEALTH_ENDPOINTS', () => {
    expect(config.api.dashboard.healthEndpoints).toEqual([]);
    const list = [{ name: 'MES', url: 'http://127.0.0.1:9470/health', check: 'connector:mes-sim' }];
    const env = { HOLDFAST_DASHBOARD_HEALTH_ENDPOINTS: JSON.stringify(list) };
    expect(withDashboardHealthEndpoints(config, env).api.dashboard.healthEndpoints).toEqual(list);
    expect(withDashboardHealthEndpoints(config, {})).toBe(config);
    expect(() =>
      withDashboardHealthEndpoints(config, { HOLDFAST_DASHBOARD_HEALTH_ENDPOINTS: '[{"name":"MES","url":"nope"}]' }),
    ).toThrow(/HOLDFAST_DASHBOARD_HEALTH_ENDPOINTS is invalid:\n {2}- 0\.url/);
    expect(() => withDashboardHealthEndpoints(config, { HOLDFAST_DASHBOARD_HEALTH_ENDPOINTS: '{' })).toThrow(
      /not JSON/,
    );
  });

  it('are filled by npm start: MES and ERP from the worker, PLC and broker from the inference worker', () => {
    expect(dashboardHealthEndpoints(config, 'http://w', 'http://i')).toEqual([
      { name: 'MES', url: 'http://w/health', check: 'connector:mes-sim' },
      { name: 'ERP', url: 'http://w/health', check: 'connector:sap-sim' },
      { name: 'PLC', url: 'http://i/health', check: 'reject-station' },
      { name: 'MQTT broker', url: 'http://i/health', check: 'mqtt' },
    ]);
  });
});

describe('what a live stream is given', () => {
  const defect = (line: string, eventId: string) => ({
    eventId,
    line,
    station: 'S1',
    lotId: 'LOT',
    partId: 'P',
    defectClasses: ['scratch'],
    inspectedAt: '2026-12-07T08:00:00.000Z',
  });
  const batch: LiveEvent = {
    type: 'inspections',
    site: 'PLANT1',
    lines: ['L1', 'L2'],
    inspections: 10,
    failed: 2,
    defects: [defect('L1', 'a'), defect('L2', 'b')],
  };

  it('keeps other sites out, and gives a line its own defects only', () => {
    expect(eventFor(batch, { site: 'PLANT2' })).toBeUndefined();
    expect(eventFor(batch, { site: 'PLANT1' })).toBe(batch);
    expect(eventFor(batch, { site: 'PLANT1', line: 'L2' })).toEqual({ ...batch, defects: [defect('L2', 'b')] });
    expect(eventFor(batch, { site: 'PLANT1', line: 'L3' })).toBeUndefined();
    const moved: LiveEvent = { type: 'lot-case', site: 'PLANT1', line: 'L1', lotId: 'LOT', stage: 'containing' };
    expect(eventFor(moved, { site: 'PLANT1', line: 'L1' })).toBe(moved);
    expect(eventFor(moved, { site: 'PLANT1', line: 'L2' })).toBeUndefined();
  });
});
