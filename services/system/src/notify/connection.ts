/**
 * Mail when an ad-platform connection is revoked (account sync finds the grant withdrawn): to whoever
 * connected it while they are a member of the organization, else to the organization's owners.
 *
 * One mail per revocation: the key is `connection-revoked.<connectionId>.<revokedAt ms>.<recipient>`, where
 * `revokedAt` is when the connection was marked revoked (by default its `last_error_at`). Calling again for
 * the same revocation sends nothing, so account sync may call it on every run that finds the connection
 * revoked, which also covers a crash between marking the connection and mailing; a connection that is
 * reconnected and revoked again is a new revocation (a new `revokedAt`).
 */
import type { Delivery } from './ledger.ts';
import { deliver, keys, settle } from './ledger.ts';
import { type NotifyDeps, resolveNotifierConfig } from './config.ts';
import { memberAddress, ownerAddresses } from './recipients.ts';
import { renderConnectionRevoked } from './templates.ts';

export interface ConnectionRevoked {
  orgId: string;
  connectionId: string;
  /** Who connected it (`connections.owner_id`); null or a former member: the organization's owners instead. */
  ownerUserId: string | null;
  /** The platform's name for the identity (`connections.label`). */
  label: string;
  /** What the platform said (e.g. `invalid_grant: Token has been expired or revoked.`). */
  reason: string;
  /** When it was marked revoked; default the connection's `last_error_at`, else its `updated_at`. */
  revokedAt?: Date;
}

export interface ConnectionRevokedOptions {
  signal?: AbortSignal;
  /** The caller's delivery, when it runs inside a consumer (for the retry delay and the last attempt). */
  deliveryCount?: number;
  isLastAttempt?: boolean;
}

export interface ConnectionRevokedOutcome {
  action: 'notified' | 'skipped';
  reason?: string;
  deliveries: Delivery[];
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const JOBS_LISTED = 10;

/**
 * Sends the revocation mail once per revocation (see the module comment). Resolves when every recipient's
 * mail is settled (sent, refused for good, or sent before); rejects with `RetryableError` (with
 * `retryAfterMs`) when the SMTP server or the database is unavailable or another sender is on it: call
 * again later.
 */
export async function notifyConnectionRevoked(
  deps: NotifyDeps,
  event: ConnectionRevoked,
  opts: ConnectionRevokedOptions = {},
): Promise<ConnectionRevokedOutcome> {
  const config = resolveNotifierConfig(deps.config);
  const em = deps.orm.em.fork();
  if (!UUID.test(event.connectionId) || !UUID.test(event.orgId)) {
    return { action: 'skipped', reason: 'unknown connection', deliveries: [] };
  }
  const [conn] = await em.execute<
    {
      platform: string;
      owner_id: string | null;
      revoked_ms: string;
      org_name: string;
    }[]
  >(
    `select c.platform, c.owner_id, o.name as org_name,
            floor(extract(epoch from coalesce(c.last_error_at, c.updated_at)) * 1000)::bigint as revoked_ms
       from connections c join organizations o on o.id = c.organization_id
      where c.id = ?::uuid and c.organization_id = ?::uuid`,
    [event.connectionId, event.orgId],
  );
  if (!conn) return { action: 'skipped', reason: 'unknown connection', deliveries: [] };
  const revokedAt = event.revokedAt ?? new Date(Number(conn.revoked_ms));

  const owner = event.ownerUserId ?? conn.owner_id;
  const ownerAddress = owner && UUID.test(owner) ? await memberAddress(em, event.orgId, owner) : undefined;
  const recipients = ownerAddress
    ? [ownerAddress.toLowerCase()]
    : (await ownerAddresses(em, event.orgId)).map((a) => a.toLowerCase());
  if (recipients.length === 0) {
    deps.log.warn({ connectionId: event.connectionId, orgId: event.orgId }, 'revoked connection: no one to notify');
    return { action: 'skipped', reason: 'no recipients', deliveries: [] };
  }

  const jobs = await em.execute<{ name: string; total: number }[]>(
    `select j.name, count(*) over ()::int as total
       from jobs j join ad_accounts a on a.id = j.account_id
      where a.connection_id = ?::uuid and j.organization_id = ?::uuid and j.enabled
      order by j.name limit ?`,
    [event.connectionId, event.orgId, JOBS_LISTED],
  );
  const mail = renderConnectionRevoked({
    orgName: conn.org_name,
    platform: conn.platform,
    label: event.label,
    reason: event.reason,
    revokedAt,
    affectedJobs: jobs.map((j) => j.name),
    moreJobs: Math.max(0, (jobs[0]?.total ?? 0) - jobs.length),
    connectionsUrl: `${config.publicUrl}/connections`,
  });
  const deliveries: Delivery[] = [];
  for (const recipient of recipients) {
    deliveries.push(
      await deliver(
        deps,
        config,
        {
          key: keys.connectionRevoked(event.connectionId, revokedAt.getTime(), recipient),
          kind: 'connection-revoked',
          orgId: event.orgId,
          recipient,
        },
        () => mail,
        { signal: opts.signal, giveUp: opts.isLastAttempt },
      ),
    );
  }
  settle(deps, deliveries, config, { deliveryCount: opts.deliveryCount ?? 1, isLastAttempt: opts.isLastAttempt });
  return { action: 'notified', deliveries };
}
