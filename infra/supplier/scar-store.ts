import type { Pool, PoolClient } from 'pg';
import { openScar, type OpenedScar, type ScarInputShape } from '../../activities/supplier/supplier.activities';
import type { HoldfastConfig } from '../config/schema';
import type { ScarSettings } from '../../workflows/contracts';
import { scarSettings } from './receipt-relay';

/** Opens an engineer's SCAR in the caller's transaction (the API audits it there); see openScar. */
export function openScarRow(db: Pick<Pool | PoolClient, 'query'>, req: ScarInputShape): Promise<OpenedScar> {
  return openScar(db, req);
}

export function scarSettingsOf(config: HoldfastConfig): ScarSettings {
  return scarSettings(config);
}
