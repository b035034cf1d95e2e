import { SapODataError, type SapMessageDetail } from './odata';

/**
 * The business errors the simulator answers, in SAP Gateway's shape (HTTP 400 with an ABAP message as `code`).
 * M7/021 and M3/305 are standard messages (recalled); codes in the customer namespace ZHFS_SIM are the simulator's
 * own where the real message number is not known, so nobody mistakes them for SAP's (README lists them). Message texts
 * are the simulator's wording.
 */

const MATERIAL_DOCUMENT_FAILED = 'MM_IM_ODATA_API_MDOC/014';
const PROPERTY_NOT_FOR_MOVEMENT = 'MM_IM_ODATA_API_MDOC/011';

const asError = (code: string, message: string, propertyref?: string): SapMessageDetail => ({
  code,
  message,
  severity: 'error',
  ...(propertyref ? { propertyref } : {}),
});

/** A refusal whose own message is also its only detail, as Gateway lists a raised message in `errordetails`. */
const refusal = (status: number, code: string, message: string, propertyref?: string) =>
  new SapODataError(status, code, message, [asError(code, message, propertyref)]);

export const SapMessages = {
  materialUnknown: (material: string) =>
    new SapODataError(400, 'M3/305', `The material ${material} does not exist or is not activated`),
  materialNotInPlant: (material: string, plant: string) =>
    new SapODataError(400, 'ZHFS_SIM/001', `Material ${material} is not maintained in plant ${plant}`),
  batchUnknown: (material: string, plant: string, batch: string) =>
    new SapODataError(400, 'ZHFS_SIM/002', `Batch ${batch} does not exist for material ${material} in plant ${plant}`),
  unitNotAllowed: (unit: string, material: string, baseUnit: string) =>
    new SapODataError(
      400,
      'ZHFS_SIM/003',
      `Unit ${unit} is not defined for material ${material} (base unit ${baseUnit})`,
    ),
  movementNotSupported: (movementType: string, goodsMovementCode: string) =>
    new SapODataError(
      400,
      'ZHFS_SIM/004',
      `Movement type ${movementType} is not allowed with goods movement code ${goodsMovementCode}`,
    ),
  /** M7/021: "Deficit of &1 &2 &3 : &4 &5 &6 &7"; SL is unrestricted-use stock, BL blocked stock. */
  stockDeficit: (
    stockLabel: string,
    deficit: string,
    unit: string,
    item: { material: string; plant: string; storageLocation: string; batch: string },
  ) =>
    new SapODataError(
      400,
      'M7/021',
      `Deficit of ${stockLabel} ${deficit} ${unit} : ${item.material} ${item.plant} ${item.storageLocation} ${item.batch}`,
    ),
  batchNotFromPurchaseOrder: (batch: string, material: string, purchaseOrder: string, item: string) =>
    new SapODataError(
      400,
      'ZHFS_SIM/005',
      `Batch ${batch} of material ${material} was not received on purchase order ${purchaseOrder} item ${item}`,
    ),
  supplierNotOfPurchaseOrder: (supplier: string, purchaseOrder: string) =>
    new SapODataError(400, 'ZHFS_SIM/006', `Supplier ${supplier} is not the vendor of purchase order ${purchaseOrder}`),

  /**
   * The material document API answers every refusal of the posting itself with one generic message and puts the
   * reason (a deficit, an unknown batch) in `errordetails`, after it an info entry naming Gateway's exception class.
   */
  materialDocumentFailed: (cause: SapODataError) =>
    new SapODataError(400, MATERIAL_DOCUMENT_FAILED, 'Processing of the material document failed', [
      asError(cause.code, cause.message),
      {
        code: '/IWBEP/CX_MGW_BUSI_EXCEPTION',
        message: 'Processing of the material document failed',
        severity: 'info',
      },
    ]),
  /** Checked by the API before it posts: a reference the movement type has no use for, or one it cannot do without. */
  propertyNotForMovement: (property: string, movementType: string) =>
    refusal(
      400,
      PROPERTY_NOT_FOR_MOVEMENT,
      `Property ${property} is not allowed for movement type ${movementType}`,
      property,
    ),
  propertyRequiredForMovement: (property: string, movementType: string, expected?: string) =>
    refusal(
      400,
      PROPERTY_NOT_FOR_MOVEMENT,
      `Movement type ${movementType} needs property ${property}${expected ? ` = ${expected}` : ''}`,
      property,
    ),

  /** Gateway's answer for a service that is not registered or not active (HTTP 403, not 404). */
  serviceNotFound: (name: string, version: string) =>
    refusal(403, '/IWFND/MED/170', `No service found for namespace '/SAP/', name '${name}', version '${version}'`),

  notificationCompleted: (notification: string) =>
    new SapODataError(400, 'ZHFS_SIM/010', `Notification ${notification} is completed; changes are not possible`),
  notificationTypeUnknown: (type: string) =>
    new SapODataError(400, 'ZHFS_SIM/011', `Notification type ${type} is not defined`),
  notificationUnknown: (notification: string) =>
    new SapODataError(404, 'ZHFS_SIM/012', `Notification ${notification} does not exist`),
} as const;
