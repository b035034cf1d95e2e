import { ExternalSystemError } from '../../activities/errors';
import {
  connectorHealthChecks,
  runHealthChecks,
  type ConnectorHealthAnswer,
} from '../../infra/observability/health-checks';

describe("connector checks on /health, from each connector's own health check", () => {
  it('runs every connector check once per probe, and a failure shows its classification, not its message', async () => {
    let rounds = 0;
    const health = async (): Promise<Record<string, ConnectorHealthAnswer>> => {
      rounds += 1;
      const refused = new ExternalSystemError('line-plc', 'transient', 'opc.tcp://plc-7.plant.internal:4840 refused');
      return {
        'line-mqtt': { ok: true, detail: 'frame subscriber connected' },
        'line-plc': { ok: false, detail: refused.message, error: refused },
      };
    };
    const checks = connectorHealthChecks(health, [
      { name: 'mqtt', connector: 'line-mqtt' },
      { name: 'reject-station', connector: 'line-plc' },
      { name: 'connector:mes-sim', connector: 'mes-sim', required: false },
    ]);

    const report = await runHealthChecks(checks);

    expect(rounds).toBe(1);
    expect(report).toEqual({
      healthy: false,
      checks: {
        mqtt: { ok: true, required: true, detail: 'frame subscriber connected' },
        'reject-station': { ok: false, required: true, detail: 'down (transient)' },
        'connector:mes-sim': { ok: false, required: false, detail: 'no answer from its health check' },
      },
    });
    await runHealthChecks(checks);
    expect(rounds).toBe(2);
  });
});
