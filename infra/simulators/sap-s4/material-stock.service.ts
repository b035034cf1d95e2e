import { MATERIAL_STOCK_SERVICE } from '../../vendor-apis/sap-s4/metadata';
import { keyPredicateText, toODataDecimal } from './odata';
import {
  checkExpand,
  filterSql,
  pagingSql,
  type Entity,
  type ODataService,
  type ServiceContext,
} from './odata-service';

/**
 * API_MATERIAL_STOCK_SRV, entity set A_MatlStkInAcctMod: stock per material, plant, storage location, batch and stock
 * type (key fields verified, cdsee.me A_MatlStkInAcctMod). No special stocks are simulated, so the supplier, customer,
 * WBS and sales-document keys are always blank; rows with zero quantity are not returned.
 */
const BLANK_KEYS = {
  Supplier: '',
  Customer: '',
  WBSElementInternalID: '00000000',
  SDDocument: '',
  SDDocumentItem: '000000',
  InventorySpecialStockType: '',
} as const;

const COLUMNS: Record<string, string> = {
  Material: 'material',
  Plant: 'plant',
  StorageLocation: 'storage_location',
  Batch: 'batch',
  InventoryStockType: 'stock_type',
  MaterialBaseUnit: 'unit',
};

interface StockRow {
  material: string;
  plant: string;
  storage_location: string;
  batch: string;
  stock_type: string;
  quantity: string;
  unit: string;
}

function stockEntity(ctx: ServiceContext, r: StockRow): Entity {
  const keys = {
    Material: r.material,
    Plant: r.plant,
    StorageLocation: r.storage_location,
    Batch: r.batch,
    ...BLANK_KEYS,
    InventoryStockType: r.stock_type,
  };
  const uri = `${ctx.serviceUrl}/A_MatlStkInAcctMod${keyPredicateText(keys)}`;
  return {
    __metadata: { id: uri, uri, type: `${MATERIAL_STOCK_SERVICE}.A_MatlStkInAcctModType` },
    ...keys,
    MatlWrhsStkQtyInMatlBaseUnit: toODataDecimal(r.quantity),
    MaterialBaseUnit: r.unit,
  };
}

export const materialStockService: ODataService = {
  name: MATERIAL_STOCK_SERVICE,
  entitySets: {
    A_MatlStkInAcctMod: {
      async list(ctx, q) {
        checkExpand(q, []);
        const params: unknown[] = [];
        const where = filterSql(q.filter, COLUMNS, params, BLANK_KEYS);
        const { rows } = await ctx.pool.query<StockRow>(
          `SELECT * FROM ${ctx.s}.stock WHERE quantity > 0 AND ${where}
            ORDER BY material, plant, storage_location, batch, stock_type${pagingSql(q, params)}`,
          params,
        );
        return rows.map((r) => stockEntity(ctx, r));
      },
    },
  },
};
