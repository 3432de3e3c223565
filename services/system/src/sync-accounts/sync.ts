import type { MikroORM } from '@mikro-orm/postgresql';
import { type AdPlatformConnector, AdsErrorCode } from '@ppc/lib/ads';
import type { RunConnectorTuning } from '@ppc/lib/credentials';
import { PermanentError } from '@ppc/lib/errors';
import type { Logger } from '@ppc/lib/log';
import {
  type AccessTokens,
  type ConnectionSnapshot,
  connectorForConnection,
  OAuthClientRejectedError,
  type Platform,
} from '../credentials/index.ts';
import { type AccountChanges, upsertAccounts } from '@ppc/lib/db';

export interface SyncAccountsDeps {
  /**
   * The broker's token cache: one refresh per connection serves both. A connection found revoked is marked through
   * it, so its `onConnectionRevoked` hears of each transition exactly once, whichever of broker and sync saw it.
   */
  tokens: AccessTokens;
  log?: Logger;
  /** Timeouts, retries and breaker of the connectors. */
  connector?: RunConnectorTuning;
}

export interface SyncAccountsOptions {
  /** Stamped as `last_synced_at` (and on recorded errors); default now. */
  now?: Date;
  /** Stops between batches and aborts the connections in progress; the result is then `truncated`. */
  signal?: AbortSignal;
  /** Connections read per query; default 100. */
  batchSize?: number;
  /** Connections listed at once; default 4. */
  concurrency?: number;
  /** Deadline of each platform call; default the connector's. */
  timeoutMs?: number;
}

export interface SyncAccountsResult extends AccountChanges {
  /** Active connections looked at. */
  connections: number;
  synced: number;
  /** Failed for another reason (platform down, no OAuth client, unreadable secret): tried again next time. */
  failed: number;
  /** Found revoked (the grant was refused): marked `revoked`, owner told once. */
  revoked: number;
  truncated: boolean;
}

interface ConnectionRow {
  id: string;
  organization_id: string;
  platform: Platform;
  sealed_refresh_token: string;
  last_error: string | null;
}

// Keyset pagination on the primary key: a connection revoked or added meanwhile never shifts a page.
const BATCH_SQL = `
select id, organization_id, platform, sealed_refresh_token, last_error
  from connections
 where status = 'active' and id > ?
 order by id
 limit ?`;
const FAILED_SQL = `update connections set last_error = ?, last_error_at = ? where id = ? and status <> 'revoked'`;
const CLEARED_SQL = `update connections set last_error = null, last_error_at = null
 where id = ? and status = 'active' and last_error is not null`;

type Outcome = { kind: 'synced'; changes: AccountChanges } | { kind: 'failed' } | { kind: 'revoked' };

const isRevocation = (err: unknown): boolean =>
  err instanceof PermanentError && err.code === AdsErrorCode.Auth && !(err instanceof OAuthClientRejectedError);

async function syncConnection(
  orm: MikroORM,
  deps: SyncAccountsDeps,
  row: ConnectionRow,
  opts: SyncAccountsOptions & { now: Date },
): Promise<Outcome> {
  const conn: ConnectionSnapshot = {
    id: row.id,
    platform: row.platform,
    status: 'active',
    sealedRefreshToken: row.sealed_refresh_token,
    lastError: row.last_error,
  };
  const log = deps.log?.child({ connectionId: row.id, orgId: row.organization_id, platform: row.platform });
  let connector: AdPlatformConnector | undefined;
  try {
    connector = connectorForConnection(deps.tokens, conn, deps.connector);
    const listed = await connector.listAccounts({
      ...(opts.signal && { signal: opts.signal }),
      ...(opts.timeoutMs !== undefined && { timeoutMs: opts.timeoutMs }),
    });
    const changes = await orm.em.fork().transactional(async (em) => {
      const c = await upsertAccounts(
        em,
        { id: row.id, organizationId: row.organization_id, platform: row.platform },
        listed,
        opts.now,
      );
      if (row.last_error !== null) await em.execute(CLEARED_SQL, [row.id]);
      return c;
    });
    log?.debug({ ...changes }, 'accounts synced');
    return { kind: 'synced', changes };
  } catch (err) {
    if (opts.signal?.aborted) throw err;
    const message = (err as Error).message;
    try {
      if (isRevocation(err)) {
        // Already marked when the refresh itself was refused; then this finds it revoked and reports nothing twice.
        await deps.tokens.revoke(row.id, message);
        return { kind: 'revoked' };
      }
      log?.warn({ err: message, code: (err as PermanentError).code }, 'account sync failed');
      await orm.em.fork().execute(FAILED_SQL, [`account sync: ${message}`, opts.now, row.id]);
    } catch (recordErr) {
      log?.error({ err: (recordErr as Error).message, cause: message }, 'could not record the failed account sync');
    }
    return { kind: 'failed' };
  } finally {
    await connector?.close().catch(() => {});
  }
}

/** Runs `fn` over `items` with at most `limit` at once. */
async function eachLimited<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const lane = async () => {
    while (next < items.length) await fn(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
}

/**
 * `sync-accounts`: for each active connection, lists its accounts through the platform's connector (tokens from the
 * shared {@link AccessTokens} cache) and makes `ad_accounts` match (see `upsertAccounts`; manager accounts are not
 * stored). Connections are read in batches and synced a few at a time, each on its own: one that fails is recorded
 * in its `last_error` and the others go on; one whose grant is refused (`ADS_AUTH`) is marked revoked with the
 * reason. Returns counts over every connection.
 */
export async function syncAccounts(
  orm: MikroORM,
  deps: SyncAccountsDeps,
  opts: SyncAccountsOptions = {},
): Promise<SyncAccountsResult> {
  const batchSize = opts.batchSize ?? 100;
  const concurrency = opts.concurrency ?? 4;
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new RangeError(`batchSize: expected >= 1, got ${batchSize}`);
  if (!Number.isInteger(concurrency) || concurrency < 1) {
    throw new RangeError(`concurrency: expected >= 1, got ${concurrency}`);
  }
  const now = opts.now ?? new Date();
  const result: SyncAccountsResult = {
    connections: 0,
    synced: 0,
    failed: 0,
    revoked: 0,
    created: 0,
    updated: 0,
    unchanged: 0,
    removed: 0,
    managersSkipped: 0,
    truncated: false,
  };
  let after = '00000000-0000-0000-0000-000000000000';
  for (;;) {
    if (opts.signal?.aborted) {
      result.truncated = true;
      break;
    }
    const rows = await orm.em.fork().execute<ConnectionRow[]>(BATCH_SQL, [after, batchSize]);
    if (rows.length === 0) break;
    after = rows[rows.length - 1]!.id;
    result.connections += rows.length;
    try {
      await eachLimited(rows, concurrency, async (row) => {
        const outcome = await syncConnection(orm, deps, row, { ...opts, now });
        result[outcome.kind] += 1;
        if (outcome.kind !== 'synced') return;
        for (const k of ['created', 'updated', 'unchanged', 'removed', 'managersSkipped'] as const) {
          result[k] += outcome.changes[k];
        }
      });
    } catch (err) {
      if (!opts.signal?.aborted) throw err;
      result.truncated = true;
      break;
    }
    if (rows.length < batchSize) break;
  }
  return result;
}
