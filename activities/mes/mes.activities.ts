import type {
  MesHoldRequest,
  MesLot,
  MesPort,
  MesQualityEventRequest,
  MesReleaseRequest,
  MesWorkOrderQuality,
} from '../ports';
import { atBoundary, crashPoint } from '../boundary';

export interface MesDeps {
  /** The MES serving a site, as configured in temporal.yaml. */
  mesFor: (site: string) => MesPort;
}

type Sited<T> = T & { site: string };

export const createMesActivities = ({ mesFor }: MesDeps) => ({
  async fetchLot({ site, lotId }: { site: string; lotId: string }): Promise<MesLot> {
    return atBoundary(`MES get lot ${lotId}`, () => mesFor(site).getLot(lotId));
  },

  async holdLot({ site, ...req }: Sited<MesHoldRequest>): Promise<{ holdId: string }> {
    const hold = await atBoundary(`MES hold lot ${req.lotId}`, () => mesFor(site).holdLot(req));
    crashPoint('after-mes-hold');
    return hold;
  },

  async recordWorkOrderQuality({ site, ...req }: Sited<MesQualityEventRequest>): Promise<MesWorkOrderQuality> {
    return atBoundary(`MES quality event for work order ${req.workOrder}`, () => mesFor(site).recordQualityEvent(req));
  },

  async releaseLotHold({ site, ...req }: Sited<MesReleaseRequest>): Promise<{ lotStatus: string }> {
    return atBoundary(`MES release hold ${req.holdId}`, () => mesFor(site).releaseHold(req));
  },
});

export type MesActivities = ReturnType<typeof createMesActivities>;
