/**
 * A reject-station thread for tests of the restart in threaded-reject-station.ts: it speaks the same messages as
 * reject-station.thread.ts, without OPC UA. The first thread started for a state directory (`config.pkiDir`) dies of
 * an uncaught exception on its first reject, as a thread whose driver threw outside any handler would; later threads
 * for that directory acknowledge every reject.
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parentPort, workerData } from 'node:worker_threads';
import type { RejectThreadReply, RejectThreadRequest } from '../../infra/connectors/opcua/reject-station.thread';

const port = parentPort!;
const { config } = workerData as { config: { pkiDir: string } };
const marker = join(config.pkiDir, 'crashed-once');
const crashNext = !existsSync(marker);
const reply = (msg: RejectThreadReply) => port.postMessage(msg);

port.on('message', (msg: RejectThreadRequest) => {
  if (msg.type === 'signal') {
    if (crashNext) {
      mkdirSync(config.pkiDir, { recursive: true });
      writeFileSync(marker, 'crashed');
      setImmediate(() => {
        throw new Error('driver fault outside any handler');
      });
      return;
    }
    reply({
      type: 'ack',
      id: msg.id,
      writtenAt: Date.now(),
      latencyMs: Number(process.hrtime.bigint() - msg.decidedAt) / 1e6,
    });
  } else {
    reply({ type: 'done', id: msg.id });
    if (msg.type === 'close') port.close();
  }
});
reply({ type: 'ready' });
