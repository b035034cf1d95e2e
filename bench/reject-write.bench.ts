/**
 * Reject-signal write latency: `signalReject` → the PLC's WriteResponse, over one long-lived OPC UA session to the
 * simulated line PLC, sequential writes after a warm-up. Acceptance (issue 3): fail → reject write p99 ≤ 20 ms.
 *
 *   node --import tsx bench/reject-write.bench.ts [--n 2000] [--warmup 200] [--plc process|inprocess]
 *       [--security None|Sign|SignAndEncrypt]
 *
 * --plc process (default) runs the PLC as its own process (infra/simulators/line-plc/main.ts), as a real PLC is a
 * separate device; inprocess shares this event loop with the server, which then also reports the one-way time to the
 * PLC's write handler (`server_p99_ms`). Progress on stderr; one JSON summary line last on stdout.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import type { ConnectorLogger } from '../infra/connectors/define';
import { openOpcUaRejectStation } from '../infra/connectors/opcua/reject-station';
import { findFreePort, spawnManaged, type ManagedProcess } from '../infra/local/managed-process';
import { startLinePlcSimulator, type LinePlcSimulator } from '../infra/simulators/line-plc/line-plc.simulator';
import { runBenchmark } from './harness';

const { values: args } = parseArgs({
  options: {
    n: { type: 'string', default: '2000' },
    warmup: { type: 'string', default: '200' },
    plc: { type: 'string', default: 'process' },
    security: { type: 'string', default: 'None' },
  },
});
const n = Number(args.n);
const warmup = Number(args.warmup);
const plcMode = args.plc;
if (plcMode !== 'process' && plcMode !== 'inprocess') throw new Error('--plc must be process or inprocess');
const SECURITY_MODES = ['None', 'Sign', 'SignAndEncrypt'] as const;
const securityMode = SECURITY_MODES.find((m) => m === args.security);
if (!securityMode) throw new Error(`--security must be one of ${SECURITY_MODES.join(', ')}`);

const say = (msg: string) => void process.stderr.write(`[bench:reject-write] ${msg}\n`);
const quiet: ConnectorLogger = { info: () => undefined, warn: say, error: say };
// A station that exists in temporal.yaml, so the out-of-process PLC (which reads the project config) serves it.
const station = { site: 'PLANT1', line: 'L1', station: 'S1' };

function quantile(sorted: number[], q: number): number {
  const index = Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1);
  return Math.round(sorted[Math.max(0, index)]! * 1000) / 1000;
}

async function startPlcProcess(port: number, dataDir: string): Promise<ManagedProcess> {
  const root = resolve(__dirname, '..');
  let ready: () => void = () => undefined;
  const readyLine = new Promise<void>((r) => (ready = r));
  const proc = spawnManaged({
    name: 'line-plc',
    command: process.execPath,
    args: ['--import', 'tsx', join(root, 'infra/simulators/line-plc/main.ts')],
    cwd: root,
    env: {
      ...process.env,
      LINE_PLC_PORT: String(port),
      LINE_PLC_DATA_DIR: dataDir,
      LINE_PLC_TRUSTED_CLIENT_PKI_DIRS: join(dataDir, '..', 'client-pki'),
      LINE_PLC_ALLOW_SECURITY_NONE: String(securityMode === 'None'),
    },
    onLine: (line) => {
      if (line.includes('line-plc ready')) ready();
    },
  });
  const exited = proc.exited.then((exit) => {
    throw new Error(`line-plc exited before it was ready (${JSON.stringify(exit)}):\n${proc.outputTail()}`);
  });
  await Promise.race([readyLine, exited]);
  return proc;
}

runBenchmark('reject-write', async (bench) => {
  const dataDir = mkdtempSync(join(tmpdir(), 'holdfast-reject-bench-'));
  bench.onCleanUp('work directory', async () => rmSync(dataDir, { recursive: true, force: true }));
  const port = await findFreePort();
  say(`starting the line PLC (${plcMode}) on 127.0.0.1:${port}`);
  let sim: LinePlcSimulator | undefined;
  if (plcMode === 'process') {
    const plcProcess = await startPlcProcess(port, join(dataDir, 'plc'));
    bench.onCleanUp('line PLC simulator', () => plcProcess.stop({ signal: 'SIGTERM', graceMs: 5_000 }));
  } else {
    const inProcess = await startLinePlcSimulator({
      port,
      stations: [station],
      dataDir: join(dataDir, 'plc'),
      trustedClientPkiDirs: [join(dataDir, 'client-pki')],
      allowSecurityNone: securityMode === 'None',
    });
    bench.onCleanUp('line PLC simulator', () => inProcess.stop());
    sim = inProcess;
  }

  const rejectStation = await openOpcUaRejectStation(
    {
      endpointUrl: `opc.tcp://127.0.0.1:${port}`,
      securityMode,
      pkiDir: join(dataDir, 'client-pki'),
      acceptUnknownServerCertificate: true,
    },
    quiet,
  );
  bench.onCleanUp('OPC UA session', () => rejectStation.close());
  say(`warm-up: ${warmup} writes, then ${n} measured, sequential, security ${securityMode}`);
  const latencies: number[] = [];
  const serverLatencies: number[] = [];
  for (let i = 0; i < warmup + n; i++) {
    const calledAt = process.hrtime.bigint();
    const ack = await rejectStation.signalReject({ ...station, partId: `P-${i}`, eventId: `EV-bench-${i}` });
    if (i < warmup) continue;
    latencies.push(ack.latencyMs);
    const received = sim?.rejects().at(-1);
    if (received) serverLatencies.push(Number(received.receivedAtHr - calledAt) / 1e6);
  }
  latencies.sort((a, b) => a - b);
  serverLatencies.sort((a, b) => a - b);
  const summary = {
    p50_ms: quantile(latencies, 0.5),
    p90_ms: quantile(latencies, 0.9),
    p99_ms: quantile(latencies, 0.99),
    max_ms: quantile(latencies, 1),
    n: latencies.length,
    warmup,
    plc: plcMode,
    security: securityMode,
    ...(serverLatencies.length > 0 ? { server_p99_ms: quantile(serverLatencies, 0.99) } : {}),
    cpus: cpus().length,
    loadavg_1m: Math.round(loadavg()[0]! * 100) / 100,
    node: process.version,
  };
  return { summary };
});
