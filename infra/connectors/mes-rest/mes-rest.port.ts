import type {
  CreateOptions,
  MesHoldRequest,
  MesLot,
  MesPort,
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
  MesLotResponse,
  MesQualityEventCreatedResponse,
  MesQualityEventList,
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

  return { system, getLot, holdLot, recordQualityEvent, releaseHold };
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
