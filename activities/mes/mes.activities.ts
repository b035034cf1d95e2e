import type {
  IntentLedger,
  MesHoldRequest,
  MesLot,
  MesPort,
  MesQualityEventRequest,
  MesReleaseRequest,
  MesWorkOrderQuality,
} from '../ports';
import { atBoundary, crashPoint } from '../boundary';
import { createOnce } from '../intents';

export interface MesDeps {
  /** The MES serving a site, as configured in temporal.yaml. */
  mesFor: (site: string) => MesPort;
  /** Where every create's intent is recorded before the call (docs/reliability.md#intent-ledger). */
  ledger: IntentLedger;
}

type Sited<T> = T & { site: string };

export const createMesActivities = ({ mesFor, ledger }: MesDeps) => ({
  async fetchLot({ site, lotId }: { site: string; lotId: string }): Promise<MesLot> {
    return atBoundary(`MES get lot ${lotId}`, () => mesFor(site).getLot(lotId));
  },

  async holdLot({ site, ...req }: Sited<MesHoldRequest>): Promise<{ holdId: string }> {
    const hold = await atBoundary(`MES hold lot ${req.lotId}`, () => {
      const mes = mesFor(site);
      const intent = { key: req.idempotencyKey, step: 'mes-hold', system: mes.system, request: req };
      return createOnce(ledger, intent, (opts) => mes.holdLot(req, opts));
    });
    crashPoint('after-mes-hold');
    return hold;
  },

  async recordWorkOrderQuality({ site, ...req }: Sited<MesQualityEventRequest>): Promise<MesWorkOrderQuality> {
    return atBoundary(`MES quality event for work order ${req.workOrder}`, () => {
      const mes = mesFor(site);
      const intent = { key: req.idempotencyKey, step: 'mes-quality-event', system: mes.system, request: req };
      // The answer carries the work order's counts as they are now, so a recorded one is not returned as it is.
      return createOnce(ledger, intent, (opts) => mes.recordQualityEvent(req, opts), { reuseOutcome: false });
    });
  },

  async releaseLotHold({ site, ...req }: Sited<MesReleaseRequest>): Promise<{ lotStatus: string }> {
    return atBoundary(`MES release hold ${req.holdId}`, () => mesFor(site).releaseHold(req));
  },
});

export type MesActivities = ReturnType<typeof createMesActivities>;
