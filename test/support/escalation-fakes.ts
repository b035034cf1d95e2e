import { ExternalSystemError } from '../../activities/errors';
import type {
  CreateOptions,
  MesProductionHold,
  MesProductionHoldRelease,
  MesProductionHoldRequest,
} from '../../activities/ports';
import { FakeMes } from './fake-ports';

/**
 * A MES with line and work-order holds (statistical escalation), in memory: like the simulator it does not
 * de-duplicate a create asked with `lookupFirst: false`, so a test sees every hold the activities asked for.
 */
export class ProductionHoldMes extends FakeMes {
  readonly productionHolds: MesProductionHold[] = [];
  readonly releaseRequests: MesProductionHoldRelease[] = [];
  /** The next hold is made, then its answer lost (a transient error), as a dropped response would. */
  loseNextHoldAnswer = false;

  async holdProduction(req: MesProductionHoldRequest, opts?: CreateOptions): Promise<MesProductionHold> {
    this.calls.push(`holdProduction ${req.scope} ${req.line}`);
    if (opts?.lookupFirst !== false) {
      const found = this.productionHolds.find((h) => h.externalReference === req.idempotencyKey);
      if (found) return found;
    }
    const hold: MesProductionHold = {
      holdId: `PH-${this.productionHolds.length + 1}`,
      scope: req.scope,
      line: req.line,
      ...(req.workOrder !== undefined ? { workOrder: req.workOrder } : {}),
      ...(req.station !== undefined ? { station: req.station } : {}),
      status: 'ACTIVE',
      reason: req.reason,
      externalReference: req.idempotencyKey,
      createdAt: '2026-04-01T08:00:00.000Z',
    };
    this.productionHolds.push(hold);
    if (this.loseNextHoldAnswer) {
      this.loseNextHoldAnswer = false;
      throw new ExternalSystemError(this.system, 'transient', 'answer lost after the hold was made');
    }
    return hold;
  }

  async getProductionHold(holdId: string): Promise<MesProductionHold> {
    const found = this.productionHolds.find((h) => h.holdId === holdId);
    if (!found) throw new ExternalSystemError(this.system, 'not-found', `hold ${holdId} not found`, 404);
    return found;
  }

  async releaseProductionHold(req: MesProductionHoldRelease): Promise<MesProductionHold> {
    this.releaseRequests.push(req);
    const hold = await this.getProductionHold(req.holdId);
    if (hold.status === 'RELEASED' && hold.releaseReference !== req.idempotencyKey) {
      throw new ExternalSystemError(this.system, 'rejected', `hold ${req.holdId} released before`, 409);
    }
    Object.assign(hold, {
      status: 'RELEASED',
      releaseReference: req.idempotencyKey,
      releaseComment: req.comment,
      releasedAt: '2026-04-01T09:00:00.000Z',
    });
    return hold;
  }
}
