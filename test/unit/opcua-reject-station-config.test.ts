import { ExternalSystemError } from '../../activities/errors';
import { rejectStationNodeId } from '../../infra/connectors/opcua/reject-station.address';
import { OpcUaRejectStationConfig, openOpcUaRejectStation } from '../../infra/connectors/opcua/reject-station';
import { quietLog } from '../support/quiet-log';

describe('OpcUaRejectStationConfig', () => {
  test('the minimal block gets the documented defaults', () => {
    expect(OpcUaRejectStationConfig.parse({ endpointUrl: 'opc.tcp://127.0.0.1:4840', pkiDir: '/tmp/pki' })).toEqual({
      endpointUrl: 'opc.tcp://127.0.0.1:4840',
      pkiDir: '/tmp/pki',
      securityMode: 'SignAndEncrypt',
      namespaceUri: 'urn:holdfast:line-plc',
      requestTimeoutMs: 1_000,
      connectTimeoutMs: 10_000,
      acceptUnknownServerCertificate: false,
      reconnect: { initialDelayMs: 250, maxDelayMs: 2_000, maxRetry: -1 },
      sessionTimeoutMs: 60_000,
    });
  });

  test('the temporal.yaml block, kind included, is accepted as is', () => {
    const block = {
      kind: 'opcua-reject-station',
      endpointUrl: 'opc.tcp://plc-l1.plant:4840',
      securityMode: 'SignAndEncrypt',
      securityPolicy: 'Aes256_Sha256_RsaPss',
      pkiDir: '.holdfast/data/opcua-pki',
    };
    expect(OpcUaRejectStationConfig.safeParse(block).success).toBe(true);
  });

  test.each([
    [{ endpointUrl: 'http://127.0.0.1:4840', pkiDir: '/tmp/pki' }, 'endpointUrl'],
    [{ endpointUrl: 'opc.tcp://h:4840' }, 'pkiDir'],
    [
      { endpointUrl: 'opc.tcp://h:4840', pkiDir: '/p', securityMode: 'None', securityPolicy: 'Basic256Sha256' },
      'securityPolicy',
    ],
    [{ endpointUrl: 'opc.tcp://h:4840', pkiDir: '/p', securityMode: 'Sign', securityPolicy: 'None' }, 'securityPolicy'],
    [{ endpointUrl: 'opc.tcp://h:4840', pkiDir: '/p', securityPolicy: 'Basic128Rsa15' }, 'securityPolicy'],
    [{ endpointUrl: 'opc.tcp://h:4840', pkiDir: '/p', reconnect: { maxRetry: -2 } }, 'reconnect.maxRetry'],
    [{ endpointUrl: 'opc.tcp://h:4840', pkiDir: '/p', requestTimout: 5 }, ''],
  ])('%j is refused at %s', (block, path) => {
    const result = OpcUaRejectStationConfig.safeParse(block);
    expect(result.success).toBe(false);
    expect(result.error!.issues.map((i) => i.path.join('.'))).toContain(path);
  });

  test('openOpcUaRejectStation refuses a bad block before connecting, naming the key', async () => {
    const err = await openOpcUaRejectStation({ endpointUrl: 'tcp://x', pkiDir: '/tmp/never-created' }, quietLog()).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ExternalSystemError);
    expect(err).toMatchObject({ kind: 'validation', reason: 'config' });
    expect((err as Error).message).toMatch(/reject station config is invalid: endpointUrl: expected opc\.tcp/);
  });
});

describe('reject station address scheme', () => {
  test('NodeIds follow the browse path under the station', () => {
    expect(rejectStationNodeId(2, { site: 'PLANT1', line: 'L1', station: 'S1' }, 'PartId')).toBe(
      'ns=2;s=PLANT1.L1.S1.RejectStation.PartId',
    );
  });
});
