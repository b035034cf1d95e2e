import type {
  CreateOptions,
  MesHoldRequest,
  MesLineOrder,
  MesLot,
  MesPort,
  MesProductionRelease,
  MesProductionReleaseRequest,
  MesProductionHold,
  MesProductionHoldRelease,
  MesProductionHoldRequest,
  MesResequencing,
  MesResequencingRequest,
  MesQualityEventRequest,
  MesReleaseRequest,
  MesWorkOrderQuality,
} from '../../../activities/ports';
import { ExternalSystemError } from '../../../activities/errors';
import type { MesRestClient } from './mes-rest.client';
import {
  MesHoldList,
  MesHoldReleasedResponse,
  MesHoldResponse,
  MesLineOrdersResponse,
  MesLotResponse,
  MesProductionReleaseResponse,
  MesQualityEventCreatedResponse,
  MesQualityEventList,
  MesProductionHoldList,
  MesProductionHoldResponse,
  MesResequencingList,
  MesResequencingResponse,
  MesWorkOrderResponse,
} from './mes-rest.schemas';

const API = '/api/v1';
const seg = encodeURIComponent;

const LOOKUP_FIRST: CreateOptions = { lookupFirst: true };

/**
 * MesPort over holdfast-mes-rest. The MES does not de-duplicate POSTs, so a create that may be a retry first looks up
 * its idempotencyKey (sent as `externalReference`) and posts only when nothing carries it: a retry after a lost
 * response finds the document the first attempt made (docs/reliability.md#lookup-before-create). With
 * `lookupFirst: false` (the intent ledger knows of no earlier attempt) it posts at once.
 */
export function createMesRestPort(client: MesRestClient, system: string): MesPort {
  const keyReused = (operation: string, key: string, what: string) =>
    new ExternalSystemError(
      system,
      'validation',
      `${system} ${operation}: idempotency key ${key} already used for ${what}`,
    );

  async function getLot(lotId: string): Promise<MesLot> {
    const lot = await client.request({
      operation: 'getLot',
      method: 'GET',
      path: `${API}/lots/${seg(lotId)}`,
      response: MesLotResponse,
    });
    return {
      lotId: lot.lotId,
      sku: lot.sku,
      workOrder: lot.workOrder,
      quantity: lot.quantity,
      unit: lot.unit,
      status: lot.status,
      ...(lot.supplier ? { supplier: lot.supplier } : {}),
      ...(lot.purchaseOrder ? { purchaseOrder: lot.purchaseOrder } : {}),
      ...(lot.purchaseOrderItem ? { purchaseOrderItem: lot.purchaseOrderItem } : {}),
      erpPlant: lot.erpPlant,
      storageLocation: lot.storageLocation,
      batch: lot.batch,
    };
  }

  async function holdLot(req: MesHoldRequest, { lookupFirst } = LOOKUP_FIRST): Promise<{ holdId: string }> {
    const operation = 'holdLot';
    if (lookupFirst) {
      const { items } = await client.request({
        operation,
        method: 'GET',
        path: `${API}/holds`,
        query: { externalReference: req.idempotencyKey },
        response: MesHoldList,
      });
      const existing = items.find((h) => h.externalReference === req.idempotencyKey);
      if (existing) {
        if (existing.lotId !== req.lotId) throw keyReused(operation, req.idempotencyKey, `lot ${existing.lotId}`);
        return { holdId: existing.holdId };
      }
    }
    const created = await client.request({
      operation,
      method: 'POST',
      path: `${API}/lots/${seg(req.lotId)}/holds`,
      body: {
        reason: req.reason,
        defectClass: req.defectClass,
        line: req.line,
        station: req.station,
        externalReference: req.idempotencyKey,
        workOrder: req.workOrder,
      },
      response: MesHoldResponse,
    });
    return { holdId: created.holdId };
  }

  async function recordQualityEvent(
    req: MesQualityEventRequest,
    { lookupFirst } = LOOKUP_FIRST,
  ): Promise<MesWorkOrderQuality> {
    const operation = 'recordQualityEvent';
    const eventsPath = `${API}/work-orders/${seg(req.workOrder)}/quality-events`;
    if (lookupFirst) {
      const { items } = await client.request({
        operation,
        method: 'GET',
        path: eventsPath,
        query: { externalReference: req.idempotencyKey },
        response: MesQualityEventList,
      });
      const existing = items.find((e) => e.externalReference === req.idempotencyKey);
      if (existing) {
        if (existing.partId !== req.partId || existing.lotId !== req.lotId) {
          throw keyReused(operation, req.idempotencyKey, `part ${existing.partId} of lot ${existing.lotId}`);
        }
        // The snapshot is read now rather than at creation: callers want the order's current quality status.
        const wo = await client.request({
          operation,
          method: 'GET',
          path: `${API}/work-orders/${seg(req.workOrder)}`,
          response: MesWorkOrderResponse,
        });
        return { qualityEventId: existing.qualityEventId, ...workOrderQuality(wo) };
      }
    }
    const created = await client.request({
      operation,
      method: 'POST',
      path: eventsPath,
      body: {
        externalReference: req.idempotencyKey,
        lotId: req.lotId,
        partId: req.partId,
        defectClass: req.defectClass,
        nonconformingQuantity: req.nonconformingQuantity,
      },
      response: MesQualityEventCreatedResponse,
    });
    return { qualityEventId: created.qualityEventId, ...workOrderQuality(created.workOrderQuality) };
  }

  async function releaseHold(req: MesReleaseRequest): Promise<{ lotStatus: string }> {
    const operation = 'releaseHold';
    const holdPath = `${API}/holds/${seg(req.holdId)}`;
    const hold = await client.request({ operation, method: 'GET', path: holdPath, response: MesHoldResponse });
    if (hold.lotId !== req.lotId) {
      throw new ExternalSystemError(
        system,
        'validation',
        `${system} ${operation}: hold ${req.holdId} belongs to lot ${hold.lotId}, not ${req.lotId}`,
      );
    }
    if (hold.status !== 'ACTIVE') {
      if (hold.disposition !== req.disposition) {
        throw new ExternalSystemError(
          system,
          'rejected',
          `${system} ${operation}: hold ${req.holdId} is already ${hold.status} with disposition ${hold.disposition ?? 'none'}, not ${req.disposition}`,
        );
      }
      return { lotStatus: (await getLot(req.lotId)).status };
    }
    const released = await client.request({
      operation,
      method: 'POST',
      path: `${holdPath}/release`,
      body: { disposition: req.disposition, comment: req.comment, externalReference: req.idempotencyKey },
      response: MesHoldReleasedResponse,
    });
    return { lotStatus: released.lotStatus };
  }

  async function getProductionRelease(workOrder: string): Promise<MesProductionRelease | undefined> {
    try {
      const release = await client.request({
        operation: 'getProductionRelease',
        method: 'GET',
        path: `${API}/work-orders/${seg(workOrder)}/production-release`,
        response: MesProductionReleaseResponse,
      });
      return {
        workOrder: release.workOrder,
        line: release.line,
        releasedAt: release.releasedAt,
        externalReference: release.externalReference,
      };
    } catch (err) {
      // 404 is the answer "not released" (an unknown order too: releasing it will say which).
      if (err instanceof ExternalSystemError && err.kind === 'not-found') return undefined;
      throw err;
    }
  }

  /**
   * An order already released answers its release, whoever released it (the caller compares externalReference): the
   * MES keeps a second release as another row, and an order is released once.
   */
  async function releaseForProduction(
    req: MesProductionReleaseRequest,
    { lookupFirst } = LOOKUP_FIRST,
  ): Promise<MesProductionRelease> {
    const operation = 'releaseForProduction';
    if (lookupFirst) {
      const existing = await getProductionRelease(req.workOrder);
      if (existing) {
        if (existing.line !== req.line) {
          throw keyReused(operation, req.idempotencyKey, `a release on line ${existing.line}`);
        }
        return existing;
      }
    }
    const created = await client.request({
      operation,
      method: 'POST',
      path: `${API}/work-orders/${seg(req.workOrder)}/production-release`,
      body: { line: req.line, externalReference: req.idempotencyKey, releasedBy: req.releasedBy, comment: req.comment },
      response: MesProductionReleaseResponse,
    });
    return {
      workOrder: created.workOrder,
      line: created.line,
      releasedAt: created.releasedAt,
      externalReference: created.externalReference,
    };
  }

  async function lineOrders(line: string): Promise<MesLineOrder[]> {
    const { items } = await client.request({
      operation: 'lineOrders',
      method: 'GET',
      path: `${API}/lines/${seg(line)}/orders`,
      response: MesLineOrdersResponse,
    });
    return items.map((o) => ({
      workOrder: o.workOrder,
      sku: o.sku,
      line: o.line,
      status: o.status,
      sequence: o.sequence,
      customerCriticality: o.customerCriticality,
      plannedQuantity: o.plannedQuantity,
    }));
  }

  async function requestResequencing(
    req: MesResequencingRequest,
    { lookupFirst } = LOOKUP_FIRST,
  ): Promise<MesResequencing> {
    const operation = 'requestResequencing';
    if (lookupFirst) {
      const { items } = await client.request({
        operation,
        method: 'GET',
        path: `${API}/resequencing-requests`,
        query: { externalReference: req.idempotencyKey },
        response: MesResequencingList,
      });
      const existing = items.find((r) => r.externalReference === req.idempotencyKey);
      if (existing) {
        if (existing.componentLot !== req.componentLot || existing.line !== req.line) {
          throw keyReused(operation, req.idempotencyKey, `lot ${existing.componentLot} on line ${existing.line}`);
        }
        return resequencing(existing);
      }
    }
    const created = await client.request({
      operation,
      method: 'POST',
      path: `${API}/resequencing-requests`,
      body: {
        line: req.line,
        componentLot: req.componentLot,
        action: req.action,
        ...(req.orders !== undefined ? { orders: req.orders } : {}),
        reason: req.reason,
        externalReference: req.idempotencyKey,
      },
      response: MesResequencingResponse,
    });
    return resequencing(created);
  }

  async function getResequencing(requestId: string): Promise<MesResequencing> {
    return resequencing(
      await client.request({
        operation: 'getResequencing',
        method: 'GET',
        path: `${API}/resequencing-requests/${seg(requestId)}`,
        response: MesResequencingResponse,
      }),
    );
  }

  return {
    system,
    getLot,
    holdLot,
    recordQualityEvent,
    releaseHold,
    releaseForProduction,
    getProductionRelease,
    lineOrders,
    requestResequencing,
    getResequencing,
    holdProduction,
    getProductionHold,
    releaseProductionHold,
  };

  async function holdProduction(
    req: MesProductionHoldRequest,
    { lookupFirst } = LOOKUP_FIRST,
  ): Promise<MesProductionHold> {
    const operation = 'holdProduction';
    if (lookupFirst) {
      const { items } = await client.request({
        operation,
        method: 'GET',
        path: `${API}/production-holds`,
        query: { externalReference: req.idempotencyKey },
        response: MesProductionHoldList,
      });
      const existing = items.find((h) => h.externalReference === req.idempotencyKey);
      if (existing) {
        const held = productionHold(existing);
        if (held.scope !== req.scope || held.line !== req.line) {
          throw keyReused(operation, req.idempotencyKey, `a ${held.scope} hold on line ${held.line}`);
        }
        return held;
      }
    }
    const common = {
      reason: req.reason,
      externalReference: req.idempotencyKey,
      ...(req.station !== undefined ? { station: req.station } : {}),
    };
    if (req.scope === 'work-order' && req.workOrder === undefined) {
      throw new ExternalSystemError(system, 'validation', `${system} ${operation}: a work-order hold needs its order`);
    }
    const created = await client.request({
      operation,
      method: 'POST',
      ...(req.scope === 'line'
        ? {
            path: `${API}/lines/${seg(req.line)}/holds`,
            body: { ...common, ...(req.workOrder !== undefined ? { workOrder: req.workOrder } : {}) },
          }
        : { path: `${API}/work-orders/${seg(req.workOrder!)}/holds`, body: common }),
      response: MesProductionHoldResponse,
    });
    return productionHold(created);
  }

  async function getProductionHold(holdId: string): Promise<MesProductionHold> {
    return productionHold(
      await client.request({
        operation: 'getProductionHold',
        method: 'GET',
        path: `${API}/production-holds/${seg(holdId)}`,
        response: MesProductionHoldResponse,
      }),
    );
  }

  async function releaseProductionHold(req: MesProductionHoldRelease): Promise<MesProductionHold> {
    // The MES answers a repeat with the same reference with the release it made: a retry needs no look-up.
    return productionHold(
      await client.request({
        operation: 'releaseProductionHold',
        method: 'POST',
        path: `${API}/production-holds/${seg(req.holdId)}/release`,
        body: { comment: req.comment, externalReference: req.idempotencyKey },
        response: MesProductionHoldResponse,
      }),
    );
  }
}

function productionHold(h: MesProductionHoldResponse): MesProductionHold {
  return {
    holdId: h.holdId,
    scope: h.scope === 'LINE' ? 'line' : 'work-order',
    line: h.line,
    ...(h.workOrder ? { workOrder: h.workOrder } : {}),
    ...(h.station ? { station: h.station } : {}),
    status: h.status,
    reason: h.reason,
    externalReference: h.externalReference,
    createdAt: h.createdAt,
    ...(h.releaseReference ? { releaseReference: h.releaseReference } : {}),
    ...(h.releaseComment ? { releaseComment: h.releaseComment } : {}),
    ...(h.releasedAt ? { releasedAt: h.releasedAt } : {}),
  };
}

function resequencing(r: MesResequencingResponse): MesResequencing {
  return {
    requestId: r.requestId,
    externalReference: r.externalReference,
    line: r.line,
    componentLot: r.componentLot,
    action: r.action,
    ...(r.orders ? { orders: r.orders } : {}),
    reason: r.reason,
    status: r.status,
    ...(r.statusReason ? { statusReason: r.statusReason } : {}),
    createdAt: r.createdAt,
  };
}

function workOrderQuality(wo: {
  workOrder: string;
  qualityStatus: string;
  nonconformingQuantity: number;
  goodQuantity: number;
}): Omit<MesWorkOrderQuality, 'qualityEventId'> {
  return {
    workOrder: wo.workOrder,
    qualityStatus: wo.qualityStatus,
    nonconformingQuantity: wo.nonconformingQuantity,
    goodQuantity: wo.goodQuantity,
  };
}
