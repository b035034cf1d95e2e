import type { z } from 'zod';
import type { ConnectorKind, RoleOf } from '../infra/config/connector-kinds';
import type { ConnectorDefinition } from '../infra/connectors/define';
import escalationLogConnector from '../infra/connectors/escalation/escalation-log.connector';
import escalationWebhookConnector from '../infra/connectors/escalation/escalation-webhook.connector';
import mesRestConnector from '../infra/connectors/mes-rest/mes-rest.connector';
import mqttConnector from '../infra/connectors/mqtt/mqtt.connector';
import opcUaLineControlConnector from '../infra/connectors/opcua/line-control.connector';
import opcUaMachineVisionConnector from '../infra/connectors/opcua/machine-vision.connector';
import opcUaRejectStationConnector from '../infra/connectors/opcua/reject-station.connector';
import recallNoticeFileConnector from '../infra/connectors/recall-notice/recall-notice-file.connector';
import recallNoticeSmtpConnector from '../infra/connectors/recall-notice/recall-notice-smtp.connector';
import recallNoticeWebhookConnector from '../infra/connectors/recall-notice/recall-notice-webhook.connector';
import sapS4Connector from '../infra/connectors/sap-s4/sap-s4.connector';
import supplierNoticeFileConnector from '../infra/connectors/supplier-notice/supplier-notice-file.connector';
import supplierNoticeWebhookConnector from '../infra/connectors/supplier-notice/supplier-notice-webhook.connector';

/** One implementation per kind, declaring that kind and its role: missing, extra or mismatched entries do not compile. */
export type ConnectorRegistry = { readonly [K in ConnectorKind]: ConnectorDefinition<K, RoleOf<K>, z.ZodType> };

/**
 * Every connector kind Holdfast can run, by the `kind` used in temporal.yaml. Registration is explicit (no
 * discovery): an integrator adds a module under infra/connectors/<kind>/, its kind and role in
 * infra/config/connector-kinds.ts, and one line here.
 */
export const connectorRegistry: ConnectorRegistry = {
  'holdfast-mes-rest': mesRestConnector,
  'sap-s4-odata': sapS4Connector,
  'escalation-log': escalationLogConnector,
  'escalation-webhook': escalationWebhookConnector,
  'opcua-reject-station': opcUaRejectStationConnector,
  mqtt: mqttConnector,
  'recall-notice-webhook': recallNoticeWebhookConnector,
  'recall-notice-smtp': recallNoticeSmtpConnector,
  'recall-notice-file': recallNoticeFileConnector,
  'opcua-machine-vision': opcUaMachineVisionConnector,
  'opcua-line-control': opcUaLineControlConnector,
  'supplier-notice-file': supplierNoticeFileConnector,
  'supplier-notice-webhook': supplierNoticeWebhookConnector,
};
