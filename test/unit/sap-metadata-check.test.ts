import { sapRequestViolations } from '../support/sap-metadata-check';

const MDOC = '/sap/opu/odata/sap/API_MATERIAL_DOCUMENT_SRV';
const QN = '/sap/opu/odata4/sap/api_qualitynotification/srvd_a2x/sap/qualitynotification/0001';
const ACTION = 'com.sap.gateway.srvd_a2x.api_qualitynotification.v0001';

test('a deep insert whose header and items use listed properties passes', () => {
  expect(
    sapRequestViolations({
      method: 'POST',
      url: `${MDOC}/A_MaterialDocumentHeader?sap-client=100`,
      body: {
        GoodsMovementCode: '01',
        MaterialDocumentHeaderText: 'HFABC',
        to_MaterialDocumentItem: [{ Material: 'M', GoodsMovementType: '122', PurchaseOrder: '4500000001' }],
      },
    }),
  ).toEqual([]);
});

test('a property an item does not have is named, with its entity set', () => {
  expect(
    sapRequestViolations({
      method: 'POST',
      url: `${MDOC};v=0002/A_MaterialDocumentHeader`,
      body: { to_MaterialDocumentItem: { results: [{ Material: 'M', ComplaintQuantity: '1' }] } },
    }),
  ).toEqual([
    'POST API_MATERIAL_DOCUMENT_SRV/A_MaterialDocumentHeader: body names ComplaintQuantity, not in A_MaterialDocumentItem',
  ]);
});

test('query options are checked against the addressed entity set', () => {
  const violations = sapRequestViolations({
    method: 'GET',
    url: `${QN}/QualityNotification?$filter=${encodeURIComponent("Material eq 'M' and ExternalReferenceNumber eq 'x'")}&$expand=_QualityNotificationItem,to_Item&$select=QualityNotification`,
  });
  expect(violations).toEqual([
    'GET CE_QUALITYNOTIFICATION_0001/QualityNotification: $expand names to_Item, not in QualityNotification',
    'GET CE_QUALITYNOTIFICATION_0001/QualityNotification: $filter names ExternalReferenceNumber, not in QualityNotification',
  ]);
});

test('keys, navigations and bound actions are resolved segment by segment', () => {
  expect(
    sapRequestViolations({ method: 'POST', url: `${QN}/QualityNotification('200000001')/${ACTION}.Complete` }),
  ).toEqual([]);
  expect(
    sapRequestViolations({
      method: 'POST',
      url: `${QN}/QualityNotification('200000001')/_QualityNotificationItem`,
      body: { NotificationItemText: 't' },
    }),
  ).toEqual([]);
  expect(sapRequestViolations({ method: 'POST', url: `${QN}/QualityNotification('1')/${ACTION}.Release` })).toEqual([
    `POST CE_QUALITYNOTIFICATION_0001/QualityNotification('1')/${ACTION}.Release: action Release bound to QualityNotification is not in the metadata`,
  ]);
  expect(
    sapRequestViolations({
      method: 'GET',
      url: `${MDOC}/A_MaterialDocumentHeader(MaterialDocumentYear='2026',Document='1')`,
    }),
  ).toEqual([
    `GET API_MATERIAL_DOCUMENT_SRV/A_MaterialDocumentHeader(MaterialDocumentYear='2026',Document='1'): Document is not a key of A_MaterialDocumentHeader`,
  ]);
});

test('an unknown service or entity set is reported, the service root is not', () => {
  expect(sapRequestViolations({ method: 'HEAD', url: `${MDOC}/` })).toEqual([]);
  expect(
    sapRequestViolations({ method: 'GET', url: '/sap/opu/odata/sap/API_QUALITYNOTIFICATION/QualityNotification' }),
  ).toEqual(['service of /sap/opu/odata/sap/API_QUALITYNOTIFICATION/QualityNotification is not in the metadata']);
  expect(sapRequestViolations({ method: 'GET', url: `${MDOC}/A_MaterialDocumentHeaders` })).toEqual([
    'GET API_MATERIAL_DOCUMENT_SRV/A_MaterialDocumentHeaders: entity set A_MaterialDocumentHeaders is not in the metadata',
  ]);
});
