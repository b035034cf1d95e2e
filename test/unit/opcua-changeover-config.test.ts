import lineControlConnector from '../../infra/connectors/opcua/line-control.connector';
import { LineControlError, openOpcUaLineControl } from '../../infra/connectors/opcua/line-control';
import machineVisionConnector from '../../infra/connectors/opcua/machine-vision.connector';
import { openOpcUaMachineVision, VisionSystemError } from '../../infra/connectors/opcua/machine-vision';
import { quietLog } from '../support/quiet-log';

describe('opcua-machine-vision and opcua-line-control config blocks', () => {
  test('the minimal vision block gets the documented defaults (pkiDir left to the data directory)', () => {
    expect(machineVisionConnector.configSchema.parse({ endpointUrl: 'opc.tcp://127.0.0.1:4840' })).toEqual({
      endpointUrl: 'opc.tcp://127.0.0.1:4840',
      securityMode: 'SignAndEncrypt',
      namespaceUri: 'urn:holdfast:line-plc',
      machineVisionNamespaceUri: 'http://opcfoundation.org/UA/MachineVision',
      visionSystemsPath: ['VisionSystems'],
      methodTimeoutMs: 10_000,
      prepareTimeoutMs: 30_000,
      statePollMs: 100,
      requestTimeoutMs: 1_000,
      connectTimeoutMs: 10_000,
      acceptUnknownServerCertificate: false,
      reconnect: { initialDelayMs: 250, maxDelayMs: 2_000, maxRetry: -1 },
      sessionTimeoutMs: 60_000,
    });
  });

  test('the minimal line-control block gets the documented defaults', () => {
    expect(lineControlConnector.configSchema.parse({ endpointUrl: 'opc.tcp://127.0.0.1:4840' })).toMatchObject({
      securityMode: 'SignAndEncrypt',
      namespaceUri: 'urn:holdfast:line-plc',
      methodTimeoutMs: 5_000,
    });
  });

  test.each([
    [{ endpointUrl: 'http://h:4840' }, 'endpointUrl'],
    [{ endpointUrl: 'opc.tcp://h:4840', securityMode: 'None', securityPolicy: 'Basic256Sha256' }, 'securityPolicy'],
    [{ endpointUrl: 'opc.tcp://h:4840', prepareTimeoutMs: 0 }, 'prepareTimeoutMs'],
    [{ endpointUrl: 'opc.tcp://h:4840', visionSystemsPath: [''] }, 'visionSystemsPath'],
    [{ endpointUrl: 'opc.tcp://h:4840', recipe: 'x' }, 'recipe'],
  ])('the vision block %j is refused at %s', (block, path) => {
    const parsed = machineVisionConnector.configSchema.safeParse(block);

    expect(parsed.success).toBe(false);
    // The path, or for an unknown key the message naming it.
    expect(parsed.error!.issues.map((i) => `${i.path.join('.')} ${i.message}`)).toContainEqual(
      expect.stringContaining(path),
    );
  });

  test('opening with an invalid block fails as validation before anything connects', async () => {
    const vision = openOpcUaMachineVision(
      { endpointUrl: 'opc.tcp://h:4840', pkiDir: '/tmp/x', statePollMs: -1 },
      quietLog(),
    );
    await expect(vision).rejects.toBeInstanceOf(VisionSystemError);
    await expect(vision).rejects.toMatchObject({ kind: 'validation', reason: 'config' });

    const line = openOpcUaLineControl(
      { endpointUrl: 'opc.tcp://h:4840', pkiDir: '/tmp/x', methodTimeoutMs: 0 },
      quietLog(),
    );
    await expect(line).rejects.toBeInstanceOf(LineControlError);
    await expect(line).rejects.toMatchObject({
      kind: 'validation',
      message: expect.stringContaining('methodTimeoutMs'),
    });
  });
});
