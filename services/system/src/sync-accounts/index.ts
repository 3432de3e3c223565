/**
 * `sync-accounts` (hourly clock tick `tasks.system.sync-accounts`): every active connection's ad accounts, listed
 * through its connector, upserted into `ad_accounts`; revoked connections marked and reported once.
 */
export {
  type SyncAccountsDeps,
  type SyncAccountsOptions,
  type SyncAccountsResult,
  syncAccounts,
} from './sync.ts';
export { type AccountChanges, upsertAccounts } from '@ppc/lib/db';
