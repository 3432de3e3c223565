import type { MikroORM } from '@mikro-orm/postgresql';

/** A connection went from usable to `revoked`: its owner must reconnect it. */
export interface ConnectionRevokedEvent {
  orgId: string;
  connectionId: string;
  /** Who connected it; null when that user is gone. */
  ownerUserId: string | null;
  label: string;
  reason: string;
  /** When it was marked; with `connectionId`, a dedupe key for the notification. */
  revokedAt: Date;
}

export type OnConnectionRevoked = (event: ConnectionRevokedEvent) => void | Promise<void>;

interface RevokedRow {
  organization_id: string;
  owner_id: string | null;
  label: string;
}

// Conditional on the current status, and the row lock serialises concurrent callers: of any number of replicas
// (brokers, sync-accounts) seeing the same refusal, exactly one gets the row back and reports the transition.
const REVOKE_SQL = `
update connections set status = 'revoked', last_error = ?, last_error_at = ?, updated_at = now()
 where id = ? and status <> 'revoked'
returning organization_id, owner_id, label`;

/**
 * Marks the connection revoked with the reason. Returns the transition, or null when it was already revoked (or
 * does not exist): only the caller that made the transition gets it.
 */
export async function markConnectionRevoked(
  orm: MikroORM,
  connectionId: string,
  reason: string,
  at: Date,
): Promise<ConnectionRevokedEvent | null> {
  const rows = await orm.em.fork().execute<RevokedRow[]>(REVOKE_SQL, [reason, at, connectionId]);
  const row = rows[0];
  if (!row) return null;
  return {
    orgId: row.organization_id,
    connectionId,
    ownerUserId: row.owner_id,
    label: row.label,
    reason,
    revokedAt: at,
  };
}
