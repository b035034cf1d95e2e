import type { z } from 'zod';
import type { ErpPort, MesPort } from '../activities/ports';
import type { ConnectorDefinition } from '../infra/connectors/define';
import mesRestConnector from '../infra/connectors/mes-rest/mes-rest.connector';
import sapS4Connector from '../infra/connectors/sap-s4/sap-s4.connector';

/**
 * Every connector kind Holdfast can run, by the `kind` used in temporal.yaml. Registration is explicit (no
 * discovery): an integrator adds a module under infra/connectors/<kind>/ and one line here.
 */
export const mesConnectors: Record<string, ConnectorDefinition<z.ZodType, MesPort>> = {
  [mesRestConnector.kind]: mesRestConnector,
};

export const erpConnectors: Record<string, ConnectorDefinition<z.ZodType, ErpPort>> = {
  [sapS4Connector.kind]: sapS4Connector,
};
