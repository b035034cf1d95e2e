import { z } from 'zod';
import type {
  CreateOptions,
  ErpCostPostingRequest,
  ErpFeedPort,
  ErpOrderConfirmationRequest,
} from '../../../activities/ports';
import { ExternalSystemError } from '../../../activities/errors';
import {
  entitySetOf,
  JOURNAL_ENTRY_SERVICE,
  PRODUCT_SERVICE,
  PRODUCTION_ORDER_CONFIRMATION_SERVICE,
} from '../../vendor-apis/sap-s4/metadata';
import type { SapODataClient } from './client';
import { idempotencyToken, textWithToken } from './idempotency-token';

const CONFIRMATION_TEXT_LENGTH = entitySetOf(PRODUCTION_ORDER_CONFIRMATION_SERVICE, 'ProdnOrdConf2').properties
  .ConfirmationText!.maxLength!;
const HEADER_TEXT_LENGTH = entitySetOf(JOURNAL_ENTRY_SERVICE, 'JournalEntry').properties.DocumentHeaderText!.maxLength!;
const ITEM_TEXT_LENGTH = entitySetOf(JOURNAL_ENTRY_SERVICE, 'JournalEntryItem').properties.DocumentItemText!.maxLength!;
const LOOKUP_FIRST: CreateOptions = { lookupFirst: true };

const ConfirmationRecord = z.looseObject({
  ConfirmationGroup: z.string().min(1),
  ConfirmationCount: z.string().min(1),
  ConfirmationText: z.string().default(''),
});
const ValuationRecord = z.looseObject({
  Product: z.string(),
  ValuationArea: z.string(),
  ValuationType: z.string().default(''),
  StandardPrice: z.string().regex(/^-?\d+(\.\d+)?$/),
  PriceUnitQty: z.string().regex(/^\d+(\.\d+)?$/),
  Currency: z.string().min(1),
  InventoryValuationProcedure: z.string().default(''),
});
const JournalEntryRecord = z.looseObject({
  CompanyCode: z.string().min(1),
  FiscalYear: z.string().min(1),
  AccountingDocument: z.string().min(1),
});

/** YYYY-MM-DD as V2's Edm.DateTime: midnight UTC of that day. */
function odataDate(day: string): string {
  return `/Date(${Date.parse(`${day}T00:00:00Z`)})/`;
}

/**
 * The ERP feed on SAP S/4HANA (docs/analytics.md#the-erp-feed): production order confirmations through
 * API_PROD_ORDER_CONFIRMATION_2_SRV, standard prices from API_PRODUCT_SRV's A_ProductValuation, and the cost of
 * quality as a journal entry. Exactly once as for quality notifications (docs/reliability.md#lookup-before-create):
 * a create that may be a retry first looks its token up, in the confirmation's ConfirmationText (the order's
 * confirmations are listed) and in the journal entry's DocumentReferenceID.
 */
export function createSapErpFeed(client: SapODataClient): ErpFeedPort {
  const { system } = client;
  const quantity = (value: number, name: string, operation: string) => {
    if (!Number.isInteger(value) || value < 0) {
      throw new ExternalSystemError(
        system,
        'validation',
        `SAP ${system} ${operation}: ${name} ${value} is not a count`,
      );
    }
    return value.toFixed(3);
  };

  return {
    async postOrderConfirmation(req: ErpOrderConfirmationRequest, { lookupFirst } = LOOKUP_FIRST) {
      const operation = `postOrderConfirmation ${req.order}`;
      const token = idempotencyToken(req.idempotencyKey);
      if (lookupFirst) {
        const existing = await client.list(
          PRODUCTION_ORDER_CONFIRMATION_SERVICE,
          'ProdnOrdConf2',
          { filter: { OrderID: req.order, OrderOperation: req.operation } },
          ConfirmationRecord,
          `${operation} (look-up)`,
        );
        const found = existing.find((c) => c.ConfirmationText.endsWith(token));
        if (found) return { confirmationGroup: found.ConfirmationGroup, confirmationCount: found.ConfirmationCount };
      }
      const created = await client.create(
        PRODUCTION_ORDER_CONFIRMATION_SERVICE,
        'ProdnOrdConf2',
        {
          OrderID: req.order,
          OrderOperation: req.operation,
          Sequence: '0',
          Material: req.material,
          ConfirmationUnit: req.unit,
          ConfirmationYieldQuantity: quantity(req.yieldQuantity, 'yield', operation),
          ConfirmationScrapQuantity: quantity(req.scrapQuantity, 'scrap', operation),
          ConfirmationReworkQuantity: quantity(req.reworkQuantity, 'rework', operation),
          PostingDate: odataDate(req.postingDate),
          // Partial confirmations: the MES, not the feed, knows when an order is finished.
          IsFinalConfirmation: false,
          ConfirmationText: textWithToken(req.text, token, CONFIRMATION_TEXT_LENGTH),
        },
        ConfirmationRecord,
        operation,
      );
      return { confirmationGroup: created.ConfirmationGroup, confirmationCount: created.ConfirmationCount };
    },

    async standardPrice(material: string, plant: string) {
      const [valuation] = await client.list(
        PRODUCT_SERVICE,
        'A_ProductValuation',
        { filter: { Product: material, ValuationArea: plant, ValuationType: '' } },
        ValuationRecord,
        `standardPrice ${material}`,
      );
      if (!valuation || valuation.InventoryValuationProcedure !== 'S') return undefined;
      const unitQty = Number(valuation.PriceUnitQty) || 1;
      return {
        material,
        plant,
        pricePerUnit: Number(valuation.StandardPrice) / unitQty,
        currency: valuation.Currency,
      };
    },

    async postCostOfQuality(req: ErpCostPostingRequest, { lookupFirst } = LOOKUP_FIRST) {
      const operation = `postCostOfQuality ${req.text}`;
      const token = idempotencyToken(req.idempotencyKey);
      if (lookupFirst) {
        const [found] = await client.list(
          JOURNAL_ENTRY_SERVICE,
          'JournalEntry',
          { filter: { CompanyCode: req.companyCode, DocumentReferenceID: token } },
          JournalEntryRecord,
          `${operation} (look-up)`,
        );
        if (found) return { document: `${found.CompanyCode}/${found.FiscalYear}/${found.AccountingDocument}` };
      }
      const cents = req.lines.map((l) => Math.round(l.amount * 100));
      const total = cents.reduce((a, b) => a + b, 0);
      const item = (account: string, code: 'S' | 'H', amountCents: number, text: string, costCentre?: string) => ({
        GLAccount: account,
        DebitCreditCode: code,
        AmountInTransactionCurrency: (amountCents / 100).toFixed(2),
        TransactionCurrency: req.currency,
        DocumentItemText: text.slice(0, ITEM_TEXT_LENGTH),
        ...(costCentre ? { CostCenter: costCentre } : {}),
      });
      const created = await client.create(
        JOURNAL_ENTRY_SERVICE,
        'JournalEntry',
        {
          CompanyCode: req.companyCode,
          // SA: G/L account document.
          AccountingDocumentType: 'SA',
          DocumentReferenceID: token,
          DocumentHeaderText: req.text.slice(0, HEADER_TEXT_LENGTH),
          DocumentDate: odataDate(req.postingDate),
          PostingDate: odataDate(req.postingDate),
          to_JournalEntryItem: [
            ...req.lines.map((l, i) => item(l.account, 'S', cents[i]!, l.text, req.costCentre)),
            item(req.offsetAccount, 'H', total, req.text),
          ],
        },
        JournalEntryRecord,
        operation,
      );
      return { document: `${created.CompanyCode}/${created.FiscalYear}/${created.AccountingDocument}` };
    },
  };
}
