import { SapODataError } from './odata';

/**
 * The business errors the simulator answers, in SAP Gateway's shape (HTTP 400 with an ABAP message as `code`).
 * M7/021 and M3/305 are standard messages (recalled); codes in the customer namespace ZHFS_SIM are the simulator's
 * own where the real message number is not known, so nobody mistakes them for SAP's (README lists them).
 */
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
  notificationCompleted: (notification: string) =>
    new SapODataError(400, 'ZHFS_SIM/010', `Notification ${notification} is completed; changes are not possible`),
  notificationTypeUnknown: (type: string) =>
    new SapODataError(400, 'ZHFS_SIM/011', `Notification type ${type} is not defined`),
  notificationUnknown: (notification: string) =>
    new SapODataError(404, 'ZHFS_SIM/012', `Notification ${notification} does not exist`),
} as const;
