/**
 * What Holdfast knows of the SAP S/4HANA services it speaks to: every entity set, key, property, type and length, each
 * with where it was confirmed (README.md). The connector may use only what is listed here (a test scans every request
 * it sends), and the simulator accepts only what is listed here, refusing the rest as SAP refuses an unknown property.
 *
 * Material documents and stock: generated from the service descriptions SAP publishes in its Cloud SDK virtual data
 * model packages (the `*-csn.json` of each), all properties. Quality notifications (OData V4): the properties of the
 * released transactional CDS views the service is built on; lengths there are recalled DDIC lengths, not confirmed.
 */

export type SapEdmType =
  | 'Edm.String'
  | 'Edm.Decimal'
  | 'Edm.Boolean'
  | 'Edm.DateTime'
  | 'Edm.Time'
  | 'Edm.Date'
  | 'Edm.TimeOfDay'
  | 'Edm.DateTimeOffset';

/** Where a fact was confirmed; README.md describes each source. */
export type SapMetadataSource =
  | 'vdm-material-document'
  | 'vdm-material-stock'
  | 'cds-quality-notification-tp'
  | 'catalog-quality-notification'
  | 'sdk-outbound-delivery'
  | 'sdk-production-order-confirmation'
  | 'client-production-order-confirmation-v2'
  | 'sdk-product-valuation'
  | 'unconfirmed';

export interface SapProperty {
  type: SapEdmType;
  maxLength?: number;
  precision?: number;
  scale?: number;
  key?: true;
  source: SapMetadataSource;
  /** Set when the length comes from elsewhere than `source` (a recalled DDIC length is not a confirmed one). */
  lengthSource?: 'ddic-recall' | 'third-party-schema';
}

export interface SapNavigation {
  target: string;
  many: boolean;
  source: SapMetadataSource;
}

export interface SapEntitySet {
  /** Where the entity set's own name was confirmed (it can differ from where its properties were). */
  nameSource: SapMetadataSource;
  properties: Readonly<Record<string, SapProperty>>;
  navigations: Readonly<Record<string, SapNavigation>>;
}

/** A bound action (OData V4): `POST {entity}/{namespace}.{name}`. */
export interface SapBoundAction {
  boundTo: string;
  source: SapMetadataSource;
}

export interface SapService {
  odataVersion: 'V2' | 'V4';
  /** V4 only: the schema namespace that qualifies bound actions. */
  namespace?: string;
  actions?: Readonly<Record<string, SapBoundAction>>;
  /** The path below the host, without the trailing slash. */
  path: string;
  pathSource: SapMetadataSource;
  entitySets: Readonly<Record<string, SapEntitySet>>;
}

export const MATERIAL_DOCUMENT_SERVICE = 'API_MATERIAL_DOCUMENT_SRV';
export const MATERIAL_STOCK_SERVICE = 'API_MATERIAL_STOCK_SRV';
export const QUALITY_NOTIFICATION_SERVICE = 'CE_QUALITYNOTIFICATION_0001';
export const OUTBOUND_DELIVERY_SERVICE = 'API_OUTBOUND_DELIVERY_SRV';
export const PRODUCTION_ORDER_CONFIRMATION_SERVICE = 'API_PROD_ORDER_CONFIRMATION_2_SRV';
export const PRODUCT_SERVICE = 'API_PRODUCT_SRV';
/**
 * Not an SAP service: SAP posts journal entries over SOAP (JournalEntryCreateRequestConfirmation_In), not OData.
 * The simulator offers this stand-in in the customer namespace (Z…) with the journal entry's field names, so that the
 * connector keeps one transport; a real system needs such a service (or the SOAP call) before the feed can go live.
 */
export const JOURNAL_ENTRY_SERVICE = 'ZHFS_JOURNAL_ENTRY_SRV';

/** Confirmation properties: names of the V1 type from SAP's SDK where they carry over, the rest observed in a client. */
const conf = (type: SapEdmType, extra: Partial<SapProperty> = {}): SapProperty => ({
  type,
  source: 'sdk-production-order-confirmation',
  ...extra,
});
const jeProp = (type: SapEdmType, extra: Partial<SapProperty> = {}): SapProperty => ({
  type,
  source: 'unconfirmed',
  ...extra,
});
/** Purchase orders (API_PURCHASEORDER_PROCESS_SRV): the item's block for quality reasons. Unconfirmed (README.md). */
export const PURCHASE_ORDER_SERVICE = 'API_PURCHASEORDER_PROCESS_SRV';
/** Supplier evaluation scores from an external system: shaped after SAP_COM_0324; unconfirmed (README.md). */
export const SUPPLIER_EVALUATION_SERVICE = 'API_SUPLREVALSCORE_SRV';

/** Outbound delivery properties: names from SAP's SDK, lengths from a third-party schema (README.md). */
const od = (type: SapEdmType, extra: Partial<SapProperty> = {}): SapProperty => ({
  type,
  source: 'sdk-outbound-delivery',
  ...(extra.maxLength !== undefined ? { lengthSource: 'third-party-schema' as const } : {}),
  ...extra,
});

const unconfirmed = (type: SapEdmType, extra: Partial<SapProperty> = {}): SapProperty => ({
  type,
  source: 'unconfirmed',
  ...extra,
});

export const SAP_SERVICES: Readonly<Record<string, SapService>> = {
  [PURCHASE_ORDER_SERVICE]: {
    odataVersion: 'V2',
    path: '/sap/opu/odata/sap/API_PURCHASEORDER_PROCESS_SRV',
    pathSource: 'unconfirmed',
    entitySets: {
      A_PurchaseOrderItem: {
        nameSource: 'unconfirmed',
        properties: {
          PurchaseOrder: unconfirmed('Edm.String', { maxLength: 10, key: true }),
          PurchaseOrderItem: unconfirmed('Edm.String', { maxLength: 5, key: true }),
          Material: unconfirmed('Edm.String', { maxLength: 40 }),
          Plant: unconfirmed('Edm.String', { maxLength: 4 }),
          // EKPO-LOEKZ: blank, L (deleted) or S (blocked).
          PurchasingDocumentDeletionCode: unconfirmed('Edm.String', { maxLength: 1 }),
        },
        navigations: {},
      },
    },
  },
  [SUPPLIER_EVALUATION_SERVICE]: {
    odataVersion: 'V2',
    path: '/sap/opu/odata/sap/API_SUPLREVALSCORE_SRV',
    pathSource: 'unconfirmed',
    entitySets: {
      A_SuplrEvalExternalScore: {
        nameSource: 'unconfirmed',
        properties: {
          SuplrEvalExternalScoreUUID: unconfirmed('Edm.String', { maxLength: 36, key: true }),
          Supplier: unconfirmed('Edm.String', { maxLength: 10 }),
          Material: unconfirmed('Edm.String', { maxLength: 40 }),
          SuplrEvalCriterion: unconfirmed('Edm.String', { maxLength: 10 }),
          SuplrEvalPeriodStartDate: unconfirmed('Edm.DateTime'),
          SuplrEvalPeriodEndDate: unconfirmed('Edm.DateTime'),
          SuplrEvalScore: unconfirmed('Edm.Decimal', { precision: 5, scale: 2 }),
          SuplrEvalExternalReference: unconfirmed('Edm.String', { maxLength: 80 }),
        },
        navigations: {},
      },
    },
  },
  [MATERIAL_DOCUMENT_SERVICE]: {
    odataVersion: 'V2',
    path: '/sap/opu/odata/sap/API_MATERIAL_DOCUMENT_SRV',
    pathSource: 'vdm-material-document',
    entitySets: {
      A_MaterialDocumentHeader: {
        nameSource: 'vdm-material-document',
        properties: {
          MaterialDocumentYear: { type: 'Edm.String', maxLength: 4, key: true, source: 'vdm-material-document' },
          MaterialDocument: { type: 'Edm.String', maxLength: 10, key: true, source: 'vdm-material-document' },
          InventoryTransactionType: { type: 'Edm.String', maxLength: 2, source: 'vdm-material-document' },
          DocumentDate: { type: 'Edm.DateTime', source: 'vdm-material-document' },
          PostingDate: { type: 'Edm.DateTime', source: 'vdm-material-document' },
          CreationDate: { type: 'Edm.DateTime', source: 'vdm-material-document' },
          CreationTime: { type: 'Edm.Time', source: 'vdm-material-document' },
          CreatedByUser: { type: 'Edm.String', maxLength: 12, source: 'vdm-material-document' },
          MaterialDocumentHeaderText: { type: 'Edm.String', maxLength: 25, source: 'vdm-material-document' },
          ReferenceDocument: { type: 'Edm.String', maxLength: 16, source: 'vdm-material-document' },
          VersionForPrintingSlip: { type: 'Edm.String', maxLength: 1, source: 'vdm-material-document' },
          ManualPrintIsTriggered: { type: 'Edm.String', maxLength: 1, source: 'vdm-material-document' },
          CtrlPostgForExtWhseMgmtSyst: { type: 'Edm.String', maxLength: 1, source: 'vdm-material-document' },
          GoodsMovementCode: { type: 'Edm.String', maxLength: 2, source: 'vdm-material-document' },
        },
        navigations: {
          to_MaterialDocumentItem: { target: 'A_MaterialDocumentItem', many: true, source: 'vdm-material-document' },
        },
      },
      A_MaterialDocumentItem: {
        nameSource: 'vdm-material-document',
        properties: {
          MaterialDocumentYear: { type: 'Edm.String', maxLength: 4, key: true, source: 'vdm-material-document' },
          MaterialDocument: { type: 'Edm.String', maxLength: 10, key: true, source: 'vdm-material-document' },
          MaterialDocumentItem: { type: 'Edm.String', maxLength: 4, key: true, source: 'vdm-material-document' },
          Material: { type: 'Edm.String', maxLength: 40, source: 'vdm-material-document' },
          Plant: { type: 'Edm.String', maxLength: 4, source: 'vdm-material-document' },
          StorageLocation: { type: 'Edm.String', maxLength: 4, source: 'vdm-material-document' },
          Batch: { type: 'Edm.String', maxLength: 10, source: 'vdm-material-document' },
          GoodsMovementType: { type: 'Edm.String', maxLength: 3, source: 'vdm-material-document' },
          InventoryStockType: { type: 'Edm.String', maxLength: 2, source: 'vdm-material-document' },
          InventoryValuationType: { type: 'Edm.String', maxLength: 10, source: 'vdm-material-document' },
          InventorySpecialStockType: { type: 'Edm.String', maxLength: 1, source: 'vdm-material-document' },
          Supplier: { type: 'Edm.String', maxLength: 10, source: 'vdm-material-document' },
          Customer: { type: 'Edm.String', maxLength: 10, source: 'vdm-material-document' },
          SalesOrder: { type: 'Edm.String', maxLength: 10, source: 'vdm-material-document' },
          SalesOrderItem: { type: 'Edm.String', maxLength: 6, source: 'vdm-material-document' },
          SalesOrderScheduleLine: { type: 'Edm.String', maxLength: 4, source: 'vdm-material-document' },
          PurchaseOrder: { type: 'Edm.String', maxLength: 10, source: 'vdm-material-document' },
          PurchaseOrderItem: { type: 'Edm.String', maxLength: 5, source: 'vdm-material-document' },
          WBSElement: { type: 'Edm.String', maxLength: 24, source: 'vdm-material-document' },
          ManufacturingOrder: { type: 'Edm.String', maxLength: 12, source: 'vdm-material-document' },
          ManufacturingOrderItem: { type: 'Edm.String', maxLength: 4, source: 'vdm-material-document' },
          GoodsMovementRefDocType: { type: 'Edm.String', maxLength: 1, source: 'vdm-material-document' },
          GoodsMovementReasonCode: { type: 'Edm.String', maxLength: 4, source: 'vdm-material-document' },
          Delivery: { type: 'Edm.String', maxLength: 10, source: 'vdm-material-document' },
          DeliveryItem: { type: 'Edm.String', maxLength: 6, source: 'vdm-material-document' },
          AccountAssignmentCategory: { type: 'Edm.String', maxLength: 1, source: 'vdm-material-document' },
          CostCenter: { type: 'Edm.String', maxLength: 10, source: 'vdm-material-document' },
          ControllingArea: { type: 'Edm.String', maxLength: 4, source: 'vdm-material-document' },
          CostObject: { type: 'Edm.String', maxLength: 12, source: 'vdm-material-document' },
          ProfitabilitySegment: { type: 'Edm.String', maxLength: 10, source: 'vdm-material-document' },
          ProfitCenter: { type: 'Edm.String', maxLength: 10, source: 'vdm-material-document' },
          GLAccount: { type: 'Edm.String', maxLength: 10, source: 'vdm-material-document' },
          FunctionalArea: { type: 'Edm.String', maxLength: 16, source: 'vdm-material-document' },
          MaterialBaseUnit: { type: 'Edm.String', maxLength: 3, source: 'vdm-material-document' },
          QuantityInBaseUnit: { type: 'Edm.Decimal', precision: 13, scale: 3, source: 'vdm-material-document' },
          EntryUnit: { type: 'Edm.String', maxLength: 3, source: 'vdm-material-document' },
          QuantityInEntryUnit: { type: 'Edm.Decimal', precision: 13, scale: 3, source: 'vdm-material-document' },
          CompanyCodeCurrency: { type: 'Edm.String', maxLength: 5, source: 'vdm-material-document' },
          GdsMvtExtAmtInCoCodeCrcy: { type: 'Edm.Decimal', precision: 14, scale: 3, source: 'vdm-material-document' },
          SlsPrcAmtInclVATInCoCodeCrcy: {
            type: 'Edm.Decimal',
            precision: 14,
            scale: 3,
            source: 'vdm-material-document',
          },
          FiscalYear: { type: 'Edm.String', maxLength: 4, source: 'vdm-material-document' },
          FiscalYearPeriod: { type: 'Edm.String', maxLength: 7, source: 'vdm-material-document' },
          FiscalYearVariant: { type: 'Edm.String', maxLength: 2, source: 'vdm-material-document' },
          IssgOrRcvgMaterial: { type: 'Edm.String', maxLength: 40, source: 'vdm-material-document' },
          IssgOrRcvgBatch: { type: 'Edm.String', maxLength: 10, source: 'vdm-material-document' },
          IssuingOrReceivingPlant: { type: 'Edm.String', maxLength: 4, source: 'vdm-material-document' },
          IssuingOrReceivingStorageLoc: { type: 'Edm.String', maxLength: 4, source: 'vdm-material-document' },
          IssuingOrReceivingStockType: { type: 'Edm.String', maxLength: 2, source: 'vdm-material-document' },
          IssgOrRcvgSpclStockInd: { type: 'Edm.String', maxLength: 1, source: 'vdm-material-document' },
          IssuingOrReceivingValType: { type: 'Edm.String', maxLength: 10, source: 'vdm-material-document' },
          IsCompletelyDelivered: { type: 'Edm.Boolean', source: 'vdm-material-document' },
          MaterialDocumentItemText: { type: 'Edm.String', maxLength: 50, source: 'vdm-material-document' },
          UnloadingPointName: { type: 'Edm.String', maxLength: 25, source: 'vdm-material-document' },
          ShelfLifeExpirationDate: { type: 'Edm.DateTime', source: 'vdm-material-document' },
          ManufactureDate: { type: 'Edm.DateTime', source: 'vdm-material-document' },
          SerialNumbersAreCreatedAutomly: { type: 'Edm.Boolean', source: 'vdm-material-document' },
          Reservation: { type: 'Edm.String', maxLength: 10, source: 'vdm-material-document' },
          ReservationItem: { type: 'Edm.String', maxLength: 4, source: 'vdm-material-document' },
          ReservationIsFinallyIssued: { type: 'Edm.Boolean', source: 'vdm-material-document' },
          SpecialStockIdfgSalesOrder: { type: 'Edm.String', maxLength: 10, source: 'vdm-material-document' },
          SpecialStockIdfgSalesOrderItem: { type: 'Edm.String', maxLength: 6, source: 'vdm-material-document' },
          SpecialStockIdfgWBSElement: { type: 'Edm.String', maxLength: 24, source: 'vdm-material-document' },
          IsAutomaticallyCreated: { type: 'Edm.String', maxLength: 1, source: 'vdm-material-document' },
          MaterialDocumentLine: { type: 'Edm.String', maxLength: 6, source: 'vdm-material-document' },
          MaterialDocumentParentLine: { type: 'Edm.String', maxLength: 6, source: 'vdm-material-document' },
          HierarchyNodeLevel: { type: 'Edm.String', maxLength: 2, source: 'vdm-material-document' },
          GoodsMovementIsCancelled: { type: 'Edm.Boolean', source: 'vdm-material-document' },
          ReversedMaterialDocumentYear: { type: 'Edm.String', maxLength: 4, source: 'vdm-material-document' },
          ReversedMaterialDocument: { type: 'Edm.String', maxLength: 10, source: 'vdm-material-document' },
          ReversedMaterialDocumentItem: { type: 'Edm.String', maxLength: 4, source: 'vdm-material-document' },
          ReferenceDocumentFiscalYear: { type: 'Edm.String', maxLength: 4, source: 'vdm-material-document' },
          InvtryMgmtRefDocumentItem: { type: 'Edm.String', maxLength: 4, source: 'vdm-material-document' },
          InvtryMgmtReferenceDocument: { type: 'Edm.String', maxLength: 10, source: 'vdm-material-document' },
          MaterialDocumentPostingType: { type: 'Edm.String', maxLength: 1, source: 'vdm-material-document' },
          InventoryUsabilityCode: { type: 'Edm.String', maxLength: 1, source: 'vdm-material-document' },
          EWMWarehouse: { type: 'Edm.String', maxLength: 4, source: 'vdm-material-document' },
          EWMStorageBin: { type: 'Edm.String', maxLength: 18, source: 'vdm-material-document' },
          CrossPlantConfigurableProduct: { type: 'Edm.String', maxLength: 40, source: 'vdm-material-document' },
          ProductCharacteristic1: { type: 'Edm.String', maxLength: 18, source: 'vdm-material-document' },
          ProductCharacteristic2: { type: 'Edm.String', maxLength: 18, source: 'vdm-material-document' },
          ProductCharacteristic3: { type: 'Edm.String', maxLength: 18, source: 'vdm-material-document' },
          ProductSeasonYear: { type: 'Edm.String', maxLength: 4, source: 'vdm-material-document' },
          ProductSeason: { type: 'Edm.String', maxLength: 10, source: 'vdm-material-document' },
          ProductCollection: { type: 'Edm.String', maxLength: 10, source: 'vdm-material-document' },
          ProductTheme: { type: 'Edm.String', maxLength: 10, source: 'vdm-material-document' },
          StockSegment: { type: 'Edm.String', maxLength: 40, source: 'vdm-material-document' },
          IssgOrRcvgStockSegment: { type: 'Edm.String', maxLength: 40, source: 'vdm-material-document' },
        },
        navigations: {
          to_MaterialDocumentHeader: {
            target: 'A_MaterialDocumentHeader',
            many: false,
            source: 'vdm-material-document',
          },
        },
      },
    },
  },
  [MATERIAL_STOCK_SERVICE]: {
    odataVersion: 'V2',
    path: '/sap/opu/odata/sap/API_MATERIAL_STOCK_SRV',
    pathSource: 'vdm-material-stock',
    entitySets: {
      A_MatlStkInAcctMod: {
        nameSource: 'vdm-material-stock',
        properties: {
          Material: { type: 'Edm.String', maxLength: 40, key: true, source: 'vdm-material-stock' },
          Plant: { type: 'Edm.String', maxLength: 4, key: true, source: 'vdm-material-stock' },
          StorageLocation: { type: 'Edm.String', maxLength: 4, key: true, source: 'vdm-material-stock' },
          Batch: { type: 'Edm.String', maxLength: 10, key: true, source: 'vdm-material-stock' },
          Supplier: { type: 'Edm.String', maxLength: 10, key: true, source: 'vdm-material-stock' },
          Customer: { type: 'Edm.String', maxLength: 10, key: true, source: 'vdm-material-stock' },
          WBSElementInternalID: { type: 'Edm.String', maxLength: 24, key: true, source: 'vdm-material-stock' },
          SDDocument: { type: 'Edm.String', maxLength: 10, key: true, source: 'vdm-material-stock' },
          SDDocumentItem: { type: 'Edm.String', maxLength: 6, key: true, source: 'vdm-material-stock' },
          InventorySpecialStockType: { type: 'Edm.String', maxLength: 1, key: true, source: 'vdm-material-stock' },
          InventoryStockType: { type: 'Edm.String', maxLength: 2, key: true, source: 'vdm-material-stock' },
          MaterialBaseUnit: { type: 'Edm.String', maxLength: 3, source: 'vdm-material-stock' },
          MatlWrhsStkQtyInMatlBaseUnit: { type: 'Edm.Decimal', precision: 31, scale: 14, source: 'vdm-material-stock' },
        },
        navigations: {},
      },
    },
  },
  [OUTBOUND_DELIVERY_SERVICE]: {
    odataVersion: 'V2',
    path: '/sap/opu/odata/sap/API_OUTBOUND_DELIVERY_SRV',
    pathSource: 'sdk-outbound-delivery',
    entitySets: {
      A_OutbDeliveryHeader: {
        nameSource: 'sdk-outbound-delivery',
        properties: {
          DeliveryDocument: od('Edm.String', { maxLength: 10, key: true }),
          DeliveryDocumentType: od('Edm.String', { maxLength: 4 }),
          SoldToParty: od('Edm.String', { maxLength: 10 }),
          ShipToParty: od('Edm.String', { maxLength: 10 }),
          ShippingPoint: od('Edm.String', { maxLength: 4 }),
          DeliveryDate: od('Edm.DateTime'),
          PlannedGoodsIssueDate: od('Edm.DateTime'),
          ActualGoodsMovementDate: od('Edm.DateTime'),
          ActualGoodsMovementTime: od('Edm.Time'),
          DocumentDate: od('Edm.DateTime'),
          CreationDate: od('Edm.DateTime'),
          CreationTime: od('Edm.Time'),
          CreatedByUser: od('Edm.String', { maxLength: 12 }),
          LastChangeDate: od('Edm.DateTime'),
          OverallGoodsMovementStatus: od('Edm.String', { maxLength: 1 }),
        },
        navigations: {
          to_DeliveryDocumentItem: { target: 'A_OutbDeliveryItem', many: true, source: 'sdk-outbound-delivery' },
        },
      },
      A_OutbDeliveryItem: {
        nameSource: 'sdk-outbound-delivery',
        properties: {
          DeliveryDocument: od('Edm.String', { maxLength: 10, key: true }),
          DeliveryDocumentItem: od('Edm.String', { maxLength: 6, key: true }),
          Material: od('Edm.String', { maxLength: 40 }),
          MaterialByCustomer: od('Edm.String', { maxLength: 35 }),
          Plant: od('Edm.String', { maxLength: 4 }),
          StorageLocation: od('Edm.String', { maxLength: 4 }),
          Batch: od('Edm.String', { maxLength: 10 }),
          ActualDeliveryQuantity: od('Edm.Decimal', { precision: 13, scale: 3 }),
          DeliveryQuantityUnit: od('Edm.String', { maxLength: 3 }),
          ActualDeliveredQtyInBaseUnit: od('Edm.Decimal', { precision: 13, scale: 3 }),
          BaseUnit: od('Edm.String', { maxLength: 3 }),
          ReferenceSDDocument: od('Edm.String', { maxLength: 10 }),
          ReferenceSDDocumentItem: od('Edm.String', { maxLength: 6 }),
          DeliveryDocumentItemText: od('Edm.String', { maxLength: 40 }),
        },
        navigations: {},
      },
    },
  },
  [QUALITY_NOTIFICATION_SERVICE]: {
    odataVersion: 'V4',
    path: '/sap/opu/odata4/sap/api_qualitynotification/srvd_a2x/sap/qualitynotification/0001',
    pathSource: 'catalog-quality-notification',
    namespace: 'com.sap.gateway.srvd_a2x.api_qualitynotification.v0001',
    // The phase is a field of the root view, but RAP services change status through actions (the sibling maintenance
    // notification API has `Complete…` operations); neither this name nor whether the service offers it is confirmed.
    actions: { Complete: { boundTo: 'QualityNotification', source: 'unconfirmed' } },
    entitySets: {
      QualityNotification: {
        nameSource: 'unconfirmed',
        properties: {
          QualityNotification: {
            type: 'Edm.String',
            maxLength: 12,
            lengthSource: 'ddic-recall',
            key: true,
            source: 'cds-quality-notification-tp',
          },
          MasterLanguage: { type: 'Edm.String', source: 'cds-quality-notification-tp' },
          NotificationOrigin: { type: 'Edm.String', source: 'cds-quality-notification-tp' },
          NotificationType: {
            type: 'Edm.String',
            maxLength: 2,
            lengthSource: 'ddic-recall',
            source: 'cds-quality-notification-tp',
          },
          NotifProcessingPhase: {
            type: 'Edm.String',
            maxLength: 1,
            lengthSource: 'ddic-recall',
            source: 'cds-quality-notification-tp',
          },
          NotificationText: {
            type: 'Edm.String',
            maxLength: 40,
            lengthSource: 'ddic-recall',
            source: 'cds-quality-notification-tp',
          },
          NotificationPriorityType: { type: 'Edm.String', source: 'cds-quality-notification-tp' },
          NotificationPriority: { type: 'Edm.String', source: 'cds-quality-notification-tp' },
          NotificationStatusObject: { type: 'Edm.String', source: 'cds-quality-notification-tp' },
          IsBusinessPurposeCompleted: { type: 'Edm.Boolean', source: 'cds-quality-notification-tp' },
          IsDeleted: { type: 'Edm.Boolean', source: 'cds-quality-notification-tp' },
          CreatedByUser: { type: 'Edm.String', source: 'cds-quality-notification-tp' },
          LastChangedByUser: { type: 'Edm.String', source: 'cds-quality-notification-tp' },
          NotificationCatalog: { type: 'Edm.String', source: 'cds-quality-notification-tp' },
          NotificationCodeGroup: { type: 'Edm.String', source: 'cds-quality-notification-tp' },
          NotificationCodeID: { type: 'Edm.String', source: 'cds-quality-notification-tp' },
          CreationDate: { type: 'Edm.Date', source: 'cds-quality-notification-tp' },
          LastChangedDate: { type: 'Edm.Date', source: 'cds-quality-notification-tp' },
          NotificationReportingDate: { type: 'Edm.Date', source: 'cds-quality-notification-tp' },
          NotificationCompletionDate: { type: 'Edm.Date', source: 'cds-quality-notification-tp' },
          NotificationRequiredStartDate: { type: 'Edm.Date', source: 'cds-quality-notification-tp' },
          NotificationRequiredStartTime: { type: 'Edm.TimeOfDay', source: 'cds-quality-notification-tp' },
          NotificationRequiredEndDate: { type: 'Edm.Date', source: 'cds-quality-notification-tp' },
          NotificationRequiredEndTime: { type: 'Edm.TimeOfDay', source: 'cds-quality-notification-tp' },
          NotificationTimeZone: { type: 'Edm.String', source: 'cds-quality-notification-tp' },
          Supplier: {
            type: 'Edm.String',
            maxLength: 10,
            lengthSource: 'ddic-recall',
            source: 'cds-quality-notification-tp',
          },
          Customer: { type: 'Edm.String', source: 'cds-quality-notification-tp' },
          Material: {
            type: 'Edm.String',
            maxLength: 40,
            lengthSource: 'ddic-recall',
            source: 'cds-quality-notification-tp',
          },
          MaterialGroup: { type: 'Edm.String', source: 'cds-quality-notification-tp' },
          Plant: {
            type: 'Edm.String',
            maxLength: 4,
            lengthSource: 'ddic-recall',
            source: 'cds-quality-notification-tp',
          },
          PurchasingDocument: {
            type: 'Edm.String',
            maxLength: 10,
            lengthSource: 'ddic-recall',
            source: 'cds-quality-notification-tp',
          },
          PurchasingDocumentItem: {
            type: 'Edm.String',
            maxLength: 5,
            lengthSource: 'ddic-recall',
            source: 'cds-quality-notification-tp',
          },
          PurchasingOrganization: { type: 'Edm.String', source: 'cds-quality-notification-tp' },
          PurchasingGroup: { type: 'Edm.String', source: 'cds-quality-notification-tp' },
          ActiveDivision: { type: 'Edm.String', source: 'cds-quality-notification-tp' },
          SalesOrganization: { type: 'Edm.String', source: 'cds-quality-notification-tp' },
          DistributionChannel: { type: 'Edm.String', source: 'cds-quality-notification-tp' },
          WBSElementInternalID: { type: 'Edm.String', source: 'cds-quality-notification-tp' },
          WorkCenterTypeCode: { type: 'Edm.String', source: 'cds-quality-notification-tp' },
          MainWorkCenterInternalID: { type: 'Edm.String', source: 'cds-quality-notification-tp' },
          MainWorkCenterPlant: { type: 'Edm.String', source: 'cds-quality-notification-tp' },
          InspectionLot: { type: 'Edm.String', source: 'cds-quality-notification-tp' },
          Batch: {
            type: 'Edm.String',
            maxLength: 10,
            lengthSource: 'ddic-recall',
            source: 'cds-quality-notification-tp',
          },
          MaterialDocumentYear: {
            type: 'Edm.String',
            maxLength: 4,
            lengthSource: 'ddic-recall',
            source: 'cds-quality-notification-tp',
          },
          MaterialDocument: {
            type: 'Edm.String',
            maxLength: 10,
            lengthSource: 'ddic-recall',
            source: 'cds-quality-notification-tp',
          },
          MaterialDocumentItem: {
            type: 'Edm.String',
            maxLength: 4,
            lengthSource: 'ddic-recall',
            source: 'cds-quality-notification-tp',
          },
          ChangedDateTime: { type: 'Edm.DateTimeOffset', source: 'cds-quality-notification-tp' },
        },
        navigations: {
          _QualityNotificationItem: {
            target: 'QualityNotificationItem',
            many: true,
            source: 'cds-quality-notification-tp',
          },
        },
      },
      QualityNotificationItem: {
        nameSource: 'unconfirmed',
        properties: {
          QualityNotification: {
            type: 'Edm.String',
            maxLength: 12,
            lengthSource: 'ddic-recall',
            key: true,
            source: 'cds-quality-notification-tp',
          },
          NotificationItem: {
            type: 'Edm.String',
            maxLength: 4,
            lengthSource: 'ddic-recall',
            key: true,
            source: 'cds-quality-notification-tp',
          },
          NotificationItemExternalID: { type: 'Edm.String', source: 'cds-quality-notification-tp' },
          NotificationItemText: {
            type: 'Edm.String',
            maxLength: 40,
            lengthSource: 'ddic-recall',
            source: 'cds-quality-notification-tp',
          },
          MasterLanguage: { type: 'Edm.String', source: 'cds-quality-notification-tp' },
          Assembly: { type: 'Edm.String', source: 'cds-quality-notification-tp' },
          DefectClass: { type: 'Edm.String', source: 'cds-quality-notification-tp' },
          NumberOfDefects: { type: 'Edm.Decimal', source: 'cds-quality-notification-tp' },
          InspPlanOperationInternalID: { type: 'Edm.String', source: 'cds-quality-notification-tp' },
          InspectionCharacteristic: { type: 'Edm.String', source: 'cds-quality-notification-tp' },
          InspectionSubsetInternalID: { type: 'Edm.String', source: 'cds-quality-notification-tp' },
          MaterialSample: { type: 'Edm.String', source: 'cds-quality-notification-tp' },
          DefectiveSingleUnit: { type: 'Edm.String', source: 'cds-quality-notification-tp' },
          WorkCenterTypeCode: { type: 'Edm.String', source: 'cds-quality-notification-tp' },
          MainWorkCenterInternalID: { type: 'Edm.String', source: 'cds-quality-notification-tp' },
          MainWorkCenter: { type: 'Edm.String', source: 'cds-quality-notification-tp' },
          MainWorkCenterPlant: { type: 'Edm.String', source: 'cds-quality-notification-tp' },
          DefectOrigin: { type: 'Edm.String', source: 'cds-quality-notification-tp' },
          ReferencedDefect: { type: 'Edm.String', source: 'cds-quality-notification-tp' },
          IsDeleted: { type: 'Edm.Boolean', source: 'cds-quality-notification-tp' },
          DefectCodeCatalog: {
            type: 'Edm.String',
            maxLength: 1,
            lengthSource: 'ddic-recall',
            source: 'cds-quality-notification-tp',
          },
          DefectCodeGroup: {
            type: 'Edm.String',
            maxLength: 8,
            lengthSource: 'ddic-recall',
            source: 'cds-quality-notification-tp',
          },
          DefectCode: {
            type: 'Edm.String',
            maxLength: 4,
            lengthSource: 'ddic-recall',
            source: 'cds-quality-notification-tp',
          },
          NotifItmObjectPartCodeCtlg: { type: 'Edm.String', source: 'cds-quality-notification-tp' },
          NotifItmObjectPartCodeGroup: { type: 'Edm.String', source: 'cds-quality-notification-tp' },
          NotifItmObjectPartCode: { type: 'Edm.String', source: 'cds-quality-notification-tp' },
          ExternalDefectiveQuantity: { type: 'Edm.Decimal', source: 'cds-quality-notification-tp' },
          InternalDefectiveQuantity: { type: 'Edm.Decimal', source: 'cds-quality-notification-tp' },
          DefectiveQuantityUnit: {
            type: 'Edm.String',
            maxLength: 3,
            lengthSource: 'ddic-recall',
            source: 'cds-quality-notification-tp',
          },
          CreatedByUser: { type: 'Edm.String', source: 'cds-quality-notification-tp' },
          CreationDate: { type: 'Edm.Date', source: 'cds-quality-notification-tp' },
          CreationTime: { type: 'Edm.TimeOfDay', source: 'cds-quality-notification-tp' },
          LastChangedByUser: { type: 'Edm.String', source: 'cds-quality-notification-tp' },
          LastChangeDate: { type: 'Edm.Date', source: 'cds-quality-notification-tp' },
          LastChangeTime: { type: 'Edm.TimeOfDay', source: 'cds-quality-notification-tp' },
        },
        navigations: {
          _QltyNotification: { target: 'QualityNotification', many: false, source: 'cds-quality-notification-tp' },
        },
      },
    },
  },
  [PRODUCTION_ORDER_CONFIRMATION_SERVICE]: {
    odataVersion: 'V2',
    path: '/sap/opu/odata/sap/API_PROD_ORDER_CONFIRMATION_2_SRV',
    pathSource: 'sdk-production-order-confirmation',
    entitySets: {
      ProdnOrdConf2: {
        nameSource: 'sdk-production-order-confirmation',
        properties: {
          ConfirmationGroup: conf('Edm.String', { maxLength: 10, key: true }),
          ConfirmationCount: conf('Edm.String', { maxLength: 8, key: true }),
          OrderID: conf('Edm.String', { maxLength: 12, source: 'client-production-order-confirmation-v2' }),
          OrderOperation: conf('Edm.String', { maxLength: 4, source: 'client-production-order-confirmation-v2' }),
          Sequence: conf('Edm.String', { maxLength: 6, source: 'client-production-order-confirmation-v2' }),
          ConfirmationUnit: conf('Edm.String', { maxLength: 3 }),
          ConfirmationYieldQuantity: conf('Edm.Decimal', { precision: 13, scale: 3 }),
          ConfirmationScrapQuantity: conf('Edm.Decimal', { precision: 13, scale: 3 }),
          ConfirmationReworkQuantity: conf('Edm.Decimal', { precision: 13, scale: 3 }),
          ConfirmationText: conf('Edm.String', { maxLength: 40 }),
          PostingDate: conf('Edm.DateTime'),
          IsFinalConfirmation: conf('Edm.Boolean'),
          Material: conf('Edm.String', { maxLength: 40 }),
          EnteredByUser: conf('Edm.String', { maxLength: 12 }),
          MfgOrderConfirmationEntryDate: conf('Edm.DateTime'),
        },
        navigations: {},
      },
    },
  },
  [PRODUCT_SERVICE]: {
    odataVersion: 'V2',
    path: '/sap/opu/odata/sap/API_PRODUCT_SRV',
    pathSource: 'sdk-product-valuation',
    entitySets: {
      A_ProductValuation: {
        nameSource: 'sdk-product-valuation',
        properties: {
          Product: { type: 'Edm.String', maxLength: 40, key: true, source: 'sdk-product-valuation' },
          ValuationArea: { type: 'Edm.String', maxLength: 4, key: true, source: 'sdk-product-valuation' },
          ValuationType: { type: 'Edm.String', maxLength: 10, key: true, source: 'sdk-product-valuation' },
          StandardPrice: { type: 'Edm.Decimal', precision: 11, scale: 2, source: 'sdk-product-valuation' },
          PriceUnitQty: { type: 'Edm.Decimal', precision: 5, scale: 0, source: 'sdk-product-valuation' },
          Currency: { type: 'Edm.String', maxLength: 5, source: 'unconfirmed' },
          InventoryValuationProcedure: { type: 'Edm.String', maxLength: 1, source: 'sdk-product-valuation' },
        },
        navigations: {},
      },
    },
  },
  [JOURNAL_ENTRY_SERVICE]: {
    odataVersion: 'V2',
    path: '/sap/opu/odata/sap/ZHFS_JOURNAL_ENTRY_SRV',
    pathSource: 'unconfirmed',
    entitySets: {
      JournalEntry: {
        nameSource: 'unconfirmed',
        properties: {
          CompanyCode: jeProp('Edm.String', { maxLength: 4, key: true }),
          FiscalYear: jeProp('Edm.String', { maxLength: 4, key: true }),
          AccountingDocument: jeProp('Edm.String', { maxLength: 10, key: true }),
          AccountingDocumentType: jeProp('Edm.String', { maxLength: 2 }),
          DocumentReferenceID: jeProp('Edm.String', { maxLength: 16 }),
          DocumentHeaderText: jeProp('Edm.String', { maxLength: 25 }),
          DocumentDate: jeProp('Edm.DateTime'),
          PostingDate: jeProp('Edm.DateTime'),
          CreatedByUser: jeProp('Edm.String', { maxLength: 12 }),
        },
        navigations: { to_JournalEntryItem: { target: 'JournalEntryItem', many: true, source: 'unconfirmed' } },
      },
      JournalEntryItem: {
        nameSource: 'unconfirmed',
        properties: {
          CompanyCode: jeProp('Edm.String', { maxLength: 4, key: true }),
          FiscalYear: jeProp('Edm.String', { maxLength: 4, key: true }),
          AccountingDocument: jeProp('Edm.String', { maxLength: 10, key: true }),
          AccountingDocumentItem: jeProp('Edm.String', { maxLength: 3, key: true }),
          GLAccount: jeProp('Edm.String', { maxLength: 10 }),
          CostCenter: jeProp('Edm.String', { maxLength: 10 }),
          DebitCreditCode: jeProp('Edm.String', { maxLength: 1 }),
          AmountInTransactionCurrency: jeProp('Edm.Decimal', { precision: 23, scale: 2 }),
          TransactionCurrency: jeProp('Edm.String', { maxLength: 5 }),
          DocumentItemText: jeProp('Edm.String', { maxLength: 50 }),
        },
        navigations: {},
      },
    },
  },
};

/** The entity set, or a message naming what is not in the metadata. */
export function entitySetOf(service: string, entitySet: string): SapEntitySet {
  const set = SAP_SERVICES[service]?.entitySets[entitySet];
  if (!set) throw new Error(`SAP metadata: ${service}/${entitySet} is not in infra/vendor-apis/sap-s4/metadata.ts`);
  return set;
}
