/**
 * The connector kinds Holdfast runs and the role each plays: what a `kind:` under `connectors:` in temporal.yaml may
 * name. Plain data, so that validating the configuration (in every process, the API included) needs no driver.
 * workers/registry.ts maps each kind to its implementation; its type makes a kind listed here without one, or one
 * there that is not listed here, a compile error.
 */

/** What a connector is for, i.e. which port it implements (infra/connectors/define.ts `RolePorts`). */
export type ConnectorRole =
  | 'mes'
  | 'erp'
  | 'escalation'
  | 'reject-station'
  | 'vision-broker'
  | 'recall-notice'
  | 'vision-system'
  | 'line-control'
  | 'supplier-notice';

export const CONNECTOR_KINDS = {
  'holdfast-mes-rest': 'mes',
  'sap-s4-odata': 'erp',
  'escalation-log': 'escalation',
  'escalation-webhook': 'escalation',
  'opcua-reject-station': 'reject-station',
  mqtt: 'vision-broker',
  'recall-notice-webhook': 'recall-notice',
  'recall-notice-smtp': 'recall-notice',
  'recall-notice-file': 'recall-notice',
  'opcua-machine-vision': 'vision-system',
  'opcua-line-control': 'line-control',
  'supplier-notice-file': 'supplier-notice',
  'supplier-notice-webhook': 'supplier-notice',
} as const satisfies Record<string, ConnectorRole>;

export type ConnectorKind = keyof typeof CONNECTOR_KINDS;
export type RoleOf<K extends ConnectorKind> = (typeof CONNECTOR_KINDS)[K];

export function isConnectorKind(kind: string): kind is ConnectorKind {
  return Object.hasOwn(CONNECTOR_KINDS, kind);
}

/** Where temporal.yaml names a connector of each role (the references config validation checks). */
export const ROLE_REFERENCES: Record<ConnectorRole, string> = {
  mes: 'sites[].mes',
  erp: 'sites[].erp',
  escalation: 'sites[].escalation',
  'reject-station': 'vision.rejectStation',
  'vision-broker': 'vision.broker or traceability.mesEvents.broker',
  'recall-notice': 'sites[].recall.notify.target',
  'vision-system': 'sites[].lines[].stations[].vision.connector',
  'line-control': 'sites[].lineControl',
  'supplier-notice': 'supplierQuality.scar.channel',
};

/** "holdfast-mes-rest, sap-s4-odata, …": for messages naming what is registered. */
export const knownConnectorKinds = (): string => Object.keys(CONNECTOR_KINDS).join(', ');
