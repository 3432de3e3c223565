import type { EntityManager } from '@mikro-orm/postgresql';
import type { AdAccount as ListedAccount } from '../ads/types.ts';

/** Changes one sync made to a connection's `ad_accounts`. */
export interface AccountChanges {
  created: number;
  /** Name, currency, time zone or status changed (a removed account that is listed again counts here). */
  updated: number;
  unchanged: number;
  /** No longer listed: marked `removed` (rows stay, jobs and runs refer to them). */
  removed: number;
  /** Manager (MCC) accounts listed but not stored. */
  managersSkipped: number;
}

export interface ConnectionRef {
  id: string;
  organizationId: string;
  platform: string;
}

interface AccountRecord {
  platform_account_id: string;
  login_customer_id: string | null;
  name: string;
  currency: string;
  time_zone: string;
  status: 'enabled' | 'disabled';
}

// One statement: every CTE sees the table as it was before it, so `before` holds the old values to count changes
// against, and the upsert and the removal touch disjoint rows (listed vs not listed).
const SYNC_SQL = `
with incoming as (
  select * from jsonb_to_recordset(?::jsonb)
    as r(platform_account_id text, login_customer_id text, name text, currency text, time_zone text, status text)
), before as (
  select platform_account_id, name, currency, time_zone, status from ad_accounts where connection_id = ?
), upserted as (
  insert into ad_accounts (id, organization_id, connection_id, platform, platform_account_id, login_customer_id,
                           name, currency, time_zone, status, last_synced_at, created_at, updated_at)
  select gen_random_uuid(), ?, ?, ?, i.platform_account_id, i.login_customer_id, i.name, i.currency, i.time_zone,
         i.status, ?, now(), now()
    from incoming i
  on conflict (connection_id, platform_account_id) do update
     set login_customer_id = excluded.login_customer_id, name = excluded.name, currency = excluded.currency, time_zone = excluded.time_zone,
         status = excluded.status, last_synced_at = excluded.last_synced_at,
         updated_at = case
           when (ad_accounts.name, ad_accounts.currency, ad_accounts.time_zone, ad_accounts.status)
                is distinct from (excluded.name, excluded.currency, excluded.time_zone, excluded.status)
           then now() else ad_accounts.updated_at end
  returning 1
), removed as (
  update ad_accounts a set status = 'removed', updated_at = now()
   where a.connection_id = ? and a.status <> 'removed'
     and not exists (select 1 from incoming i where i.platform_account_id = a.platform_account_id)
  returning 1
)
select
  (select count(*) from incoming i
    where not exists (select 1 from before b where b.platform_account_id = i.platform_account_id))::int as created,
  (select count(*) from incoming i join before b using (platform_account_id)
    where (b.name, b.currency, b.time_zone, b.status) is distinct from (i.name, i.currency, i.time_zone, i.status))::int
    as updated,
  (select count(*) from upserted)::int as upserted,
  (select count(*) from removed)::int as removed`;

/**
 * What is stored of a listed account. Manager accounts are not stored: they have no ads or metrics of their own
 * (a report on one is refused with REQUESTED_METRICS_FOR_MANAGER, a URL check finds nothing), the table has no
 * way to tell them apart, and their clients are listed (with the manager as login customer) anyway.
 */
function recordOf(a: ListedAccount): AccountRecord {
  return {
    platform_account_id: a.id.slice(0, 100),
    login_customer_id: a.loginCustomerId?.slice(0, 20) ?? null,
    name: (a.name || a.id).slice(0, 300),
    currency: a.currency.slice(0, 3),
    time_zone: a.timeZone.slice(0, 64),
    // CANCELED, SUSPENDED, CLOSED: the account exists but cannot serve reports.
    status: a.status === 'ENABLED' ? 'enabled' : 'disabled',
  };
}

/**
 * Makes the connection's `ad_accounts` match what the platform listed: inserts new accounts, updates name,
 * currency, time zone and status, sets `last_synced_at`, and marks accounts no longer listed `removed`.
 * Idempotent: the same list again changes nothing but `last_synced_at`.
 */
export async function upsertAccounts(
  em: EntityManager,
  conn: ConnectionRef,
  listed: readonly ListedAccount[],
  syncedAt: Date,
): Promise<AccountChanges> {
  const byId = new Map<string, AccountRecord>();
  let managersSkipped = 0;
  for (const a of listed) {
    if (a.manager) managersSkipped += 1;
    else byId.set(a.id, recordOf(a));
  }
  const [row] = await em.execute<{ created: number; updated: number; upserted: number; removed: number }[]>(SYNC_SQL, [
    JSON.stringify([...byId.values()]),
    conn.id,
    conn.organizationId,
    conn.id,
    conn.platform,
    syncedAt,
    conn.id,
  ]);
  const { created, updated, upserted, removed } = row!;
  return { created, updated, unchanged: upserted - created - updated, removed, managersSkipped };
}
