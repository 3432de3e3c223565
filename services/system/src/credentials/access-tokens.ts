import type { MikroORM } from '@mikro-orm/postgresql';
import { AdsErrorCode } from '@ppc/lib/ads';
import { CredentialErrorCode } from '@ppc/lib/credentials';
import { openSecret, SealedSecretError, sealSecret } from '@ppc/lib/db';
import { PermanentError, PpcError, RetryableError } from '@ppc/lib/errors';
import type { Logger } from '@ppc/lib/log';
import type { CredentialsConfig, Platform, TokenEndpoint } from './config.ts';
import { GrantRevokedError, refreshAccessToken } from './oauth.ts';
import { type ConnectionRevokedEvent, markConnectionRevoked, type OnConnectionRevoked } from './revocation.ts';

/** What a caller knows of the connection (from its own query): enough to serve a cached token without a read. */
export interface ConnectionSnapshot {
  id: string;
  platform: Platform;
  status: 'active' | 'revoked' | 'error';
  sealedRefreshToken: string;
  lastError?: string | null;
}

export interface AccessGrant {
  accessToken: string;
  /** Epoch ms. */
  expiresAt: number;
  endpoint: TokenEndpoint;
}

export interface AccessTokensOptions {
  orm: MikroORM;
  config: CredentialsConfig;
  log?: Logger;
  /** Called once per transition to `revoked` (an `invalid_grant` at refresh, or `revoke()`); errors are logged. */
  onConnectionRevoked?: OnConnectionRevoked;
  /** A cached token is handed out while it has at least this long left (or half its lifetime, if shorter); 5 min. */
  minValidityMs?: number;
  /** A forced refresh reuses a token obtained less than this long ago (a burst of 401s refreshes once); 10 s. */
  forceMinIntervalMs?: number;
  /** Connections whose tokens are kept; the least recently used goes first. 10,000. */
  maxEntries?: number;
  /** Refreshes running at once (each holds a database connection for its lock); 4. */
  maxConcurrentRefreshes?: number;
  /** Per attempt at the token endpoint; 10 s. */
  tokenTimeoutMs?: number;
  /** Retries of a failed token request inside one refresh; 1. */
  tokenRetries?: number;
  /** The clock; default `Date.now`. */
  now?: () => number;
}

export interface AccessTokensStats {
  cached: number;
  /** Served from the cache. */
  hits: number;
  /** Waited for a refresh another caller had started (single-flight). */
  joined: number;
  /** Token requests made at a token endpoint. */
  refreshes: number;
  refreshFailures: number;
  rotations: number;
  revocations: number;
}

interface Entry {
  accessToken: string;
  expiresAt: number;
  obtainedAt: number;
  /** The connection's sealed refresh token now: a reconnected (re-sealed) connection never gets an old token. */
  sealed: string;
  /** The sealed token it was refreshed from, when the refresh rotated it: snapshots read before still match. */
  rotatedFrom?: string;
}

class Semaphore {
  #free: number;
  #waiting: Array<() => void> = [];
  constructor(n: number) {
    this.#free = n;
  }
  async acquire(): Promise<void> {
    if (this.#free > 0) {
      this.#free -= 1;
      return;
    }
    await new Promise<void>((r) => this.#waiting.push(r));
  }
  release(): void {
    const next = this.#waiting.shift();
    if (next) next();
    else this.#free += 1;
  }
}

// Serialises refreshes of one connection across every system replica (a transaction-scoped advisory lock): a
// provider that rotates refresh tokens revokes the grant when two refreshes with the same token race.
const LOCK_SQL = 'select pg_advisory_xact_lock(hashtextextended(?, 0))';
const READ_SQL = 'select status, sealed_refresh_token, last_error from connections where id = ?';
const ROTATE_SQL = 'update connections set sealed_refresh_token = ?, key_id = ?, updated_at = now() where id = ?';

/** Retry delay when our own side (database, keyring) failed. */
const INTERNAL_RETRY_MS = 5_000;

/**
 * Short-lived access tokens per connection, refreshed from the sealed refresh token through the platform's OAuth2
 * token endpoint. Shared by the credential broker and sync-accounts, so a replica refreshes a connection once for
 * both. A token is cached until shortly before it expires; refreshes are single-flight per connection within the
 * process (concurrent callers share one) and serialised across processes by an advisory lock, after which the
 * connection is read again (another replica may have rotated its refresh token meanwhile).
 *
 * `invalid_grant` marks the connection revoked (with the reason) and reports the transition once. Failures are typed:
 * PermanentError with `ADS_AUTH` (revoked, or our OAuth client refused), `PLATFORM_NOT_CONFIGURED`,
 * `CREDENTIALS_UNREADABLE`; RetryableError (with `retryAfterMs`) for an unavailable or rate-limited endpoint and for
 * our own database. No error carries a refresh token.
 */
export class AccessTokens {
  readonly #orm: MikroORM;
  readonly #config: CredentialsConfig;
  readonly #log: Logger | undefined;
  readonly #onRevoked: OnConnectionRevoked | undefined;
  readonly #minValidityMs: number;
  readonly #forceMinIntervalMs: number;
  readonly #maxEntries: number;
  readonly #tokenTimeoutMs: number;
  readonly #tokenRetries: number;
  readonly #now: () => number;
  readonly #slots: Semaphore;
  readonly #entries = new Map<string, Entry>();
  readonly #inflight = new Map<string, Promise<Entry>>();
  readonly #stats = { hits: 0, joined: 0, refreshes: 0, refreshFailures: 0, rotations: 0, revocations: 0 };

  constructor(opts: AccessTokensOptions) {
    this.#orm = opts.orm;
    this.#config = opts.config;
    this.#log = opts.log;
    this.#onRevoked = opts.onConnectionRevoked;
    this.#minValidityMs = opts.minValidityMs ?? 5 * 60_000;
    this.#forceMinIntervalMs = opts.forceMinIntervalMs ?? 10_000;
    this.#maxEntries = opts.maxEntries ?? 10_000;
    this.#tokenTimeoutMs = opts.tokenTimeoutMs ?? 10_000;
    this.#tokenRetries = opts.tokenRetries ?? 1;
    this.#now = opts.now ?? Date.now;
    this.#slots = new Semaphore(opts.maxConcurrentRefreshes ?? 4);
  }

  /** The platform's endpoint, or a PermanentError when this deployment has no OAuth client for it. */
  endpointFor(platform: Platform): TokenEndpoint {
    const endpoint = this.#config.platforms[platform];
    if (!endpoint) {
      throw new PermanentError(`${platform}: this deployment has no OAuth client for the platform`, {
        code: CredentialErrorCode.PlatformNotConfigured,
      });
    }
    return endpoint;
  }

  /** A token valid for a while yet; `force` replaces the cached one unless it is only seconds old. */
  async get(conn: ConnectionSnapshot, opts: { force?: boolean } = {}): Promise<AccessGrant> {
    const endpoint = this.endpointFor(conn.platform);
    if (conn.status === 'revoked') throw revokedError(conn.id, conn.lastError);
    const cached = this.#entries.get(conn.id);
    const current =
      cached && (cached.sealed === conn.sealedRefreshToken || cached.rotatedFrom === conn.sealedRefreshToken);
    if (cached && current && this.#usable(cached, opts.force === true)) {
      this.#stats.hits += 1;
      // Re-inserted: the map's order is least recently used first.
      this.#entries.delete(conn.id);
      this.#entries.set(conn.id, cached);
      return { accessToken: cached.accessToken, expiresAt: cached.expiresAt, endpoint };
    }
    let pending = this.#inflight.get(conn.id);
    if (pending) this.#stats.joined += 1;
    else {
      pending = this.#refresh(conn, endpoint).finally(() => this.#inflight.delete(conn.id));
      this.#inflight.set(conn.id, pending);
    }
    const entry = await pending;
    return { accessToken: entry.accessToken, expiresAt: entry.expiresAt, endpoint };
  }

  /**
   * Marks the connection revoked (e.g. the platform's API refused a fresh token) and drops its token. Reports the
   * transition to `onConnectionRevoked` only when this call made it; returns it then, else null.
   */
  async revoke(connectionId: string, reason: string): Promise<ConnectionRevokedEvent | null> {
    this.forget(connectionId);
    const event = await markConnectionRevoked(this.#orm, connectionId, reason, new Date(this.#now()));
    if (!event) return null;
    this.#stats.revocations += 1;
    this.#log?.warn({ connectionId, orgId: event.orgId, reason }, 'connection revoked');
    try {
      await this.#onRevoked?.(event);
    } catch (err) {
      this.#log?.error({ err: (err as Error).message, connectionId }, 'onConnectionRevoked failed');
    }
    return event;
  }

  forget(connectionId: string): void {
    this.#entries.delete(connectionId);
  }

  stats(): AccessTokensStats {
    return { cached: this.#entries.size, ...this.#stats };
  }

  #usable(e: Entry, force: boolean): boolean {
    const now = this.#now();
    if (force && now - e.obtainedAt >= this.#forceMinIntervalMs) return false;
    const lifetime = e.expiresAt - e.obtainedAt;
    return e.expiresAt - now > Math.min(this.#minValidityMs, lifetime / 2);
  }

  async #refresh(conn: ConnectionSnapshot, endpoint: TokenEndpoint): Promise<Entry> {
    await this.#slots.acquire();
    try {
      const entry = await this.#orm.em.fork().transactional(async (em) => {
        await em.execute(LOCK_SQL, [`ppc.oauth-refresh.${conn.id}`]);
        const [row] = await em.execute<{ status: string; sealed_refresh_token: string; last_error: string | null }[]>(
          READ_SQL,
          [conn.id],
        );
        if (!row) {
          throw new PermanentError(`connection ${conn.id} no longer exists`, {
            code: CredentialErrorCode.ConnectionMismatch,
          });
        }
        if (row.status === 'revoked') throw revokedError(conn.id, row.last_error);
        const refreshToken = this.#open(conn.id, row.sealed_refresh_token);
        this.#stats.refreshes += 1;
        const token = await refreshAccessToken(endpoint, refreshToken, {
          timeoutMs: this.#tokenTimeoutMs,
          retries: this.#tokenRetries,
          now: this.#now,
        });
        const entry: Entry = {
          accessToken: token.accessToken,
          expiresAt: token.expiresAt,
          obtainedAt: this.#now(),
          sealed: row.sealed_refresh_token,
        };
        if (token.rotatedRefreshToken) {
          entry.rotatedFrom = row.sealed_refresh_token;
          entry.sealed = sealSecret(token.rotatedRefreshToken, this.#config.keyring);
          await em.execute(ROTATE_SQL, [entry.sealed, this.#config.keyring.currentKeyId, conn.id]);
          this.#stats.rotations += 1;
        }
        return entry;
      });
      this.#entries.delete(conn.id);
      this.#entries.set(conn.id, entry);
      while (this.#entries.size > this.#maxEntries) this.#entries.delete(this.#entries.keys().next().value!);
      return entry;
    } catch (err) {
      this.#stats.refreshFailures += 1;
      this.forget(conn.id);
      if (err instanceof GrantRevokedError) {
        await this.revoke(conn.id, err.message).catch((e: unknown) => {
          this.#log?.error({ err: (e as Error).message, connectionId: conn.id }, 'could not mark connection revoked');
        });
      }
      if (err instanceof PpcError) throw err;
      throw new RetryableError(`credential broker: ${(err as Error).message}`, {
        code: CredentialErrorCode.Internal,
        retryAfterMs: INTERNAL_RETRY_MS,
      });
    } finally {
      this.#slots.release();
    }
  }

  #open(connectionId: string, sealed: string): string {
    try {
      return openSecret(sealed, this.#config.keyring);
    } catch (err) {
      if (err instanceof SealedSecretError && err.code === 'unknown-key') {
        // A keyring without the key is our deployment's fault: a redeploy with the right PPC_SECRET_KEY fixes it.
        throw new RetryableError(`connection ${connectionId}: ${err.message} (PPC_SECRET_KEY)`, {
          code: CredentialErrorCode.Internal,
          retryAfterMs: INTERNAL_RETRY_MS,
        });
      }
      if (err instanceof SealedSecretError) {
        throw new PermanentError(`connection ${connectionId}: ${err.message}; reconnect the account`, {
          code: CredentialErrorCode.SecretUnreadable,
        });
      }
      throw err;
    }
  }
}

function revokedError(connectionId: string, lastError: string | null | undefined): PermanentError {
  return new PermanentError(
    `connection ${connectionId} was revoked${lastError ? ` (${lastError})` : ''}; reconnect the account`,
    { code: AdsErrorCode.Auth },
  );
}
