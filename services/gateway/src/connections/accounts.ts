import type { EntityManager } from '@mikro-orm/postgresql';
import type { AdAccount as ListedAccount } from '@ppc/lib/ads';

/**
 * Stores what a platform listed for a new connection (the idea of system's sync-accounts upsert, which keeps them
 * current hourly afterwards): client accounts only (a manager has no ads or metrics of its own; its clients carry it
 * as login customer), enabled or disabled by the platform's status. Returns how many accounts the connection has.
 */
const UPSERT_SQL = `
with incoming as (
  select * from jsonb_to_recordset(?::jsonb)
    as r(platform_account_id text, login_customer_id text, name text, currency text, time_zone text, status text)
)
insert into ad_accounts (id, organization_id, connection_id, platform, platform_account_id, login_customer_id,
                         name, currency, time_zone, status, last_synced_at, created_at, updated_at)
select gen_random_uuid(), ?, ?, ?, i.platform_account_id, i.login_customer_id, i.name, i.currency, i.time_zone,
       i.status, now(), now(), now()
  from incoming i
on conflict (connection_id, platform_account_id) do update
   set login_customer_id = excluded.login_customer_id, name = excluded.name, currency = excluded.currency,
       time_zone = excluded.time_zone, status = excluded.status, last_synced_at = excluded.last_synced_at,
       updated_at = now()
returning 1`;

export async function upsertListedAccounts(
  em: EntityManager,
  conn: { id: string; organizationId: string; platform: string },
  listed: readonly ListedAccount[],
): Promise<number> {
  const records = listed
    .filter((a) => !a.manager)
    .map((a) => ({
      platform_account_id: a.id.slice(0, 100),
      login_customer_id: a.loginCustomerId?.slice(0, 20) ?? null,
      name: (a.name || a.id).slice(0, 300),
      currency: a.currency.slice(0, 3),
      time_zone: a.timeZone.slice(0, 64),
      status: a.status === 'ENABLED' ? 'enabled' : 'disabled',
    }));
  if (records.length === 0) return 0;
  const rows = await em.execute(UPSERT_SQL, [JSON.stringify(records), conn.organizationId, conn.id, conn.platform]);
  return rows.length;
}
