import { type ApiScope, ROLES, type Role } from '@ppc/lib/db';
import type { FastifyRequest } from 'fastify';
import { type Authenticator, type Caller, type GatewayDeps, ROLE_SCOPES, type UpgradeRequest } from '../context.ts';
import { API_TOKEN_PREFIX, hashSecret, SESSION_COOKIE } from './secrets.ts';

interface SessionRow {
  id: string;
  user_id: string;
  organization_id: string;
  expires_at: Date;
  role: Role;
  /** `last_seen_at`/`last_used_at` is more than a minute old (or never set): worth writing. */
  stale: boolean;
}
interface TokenRow extends Omit<SessionRow, 'expires_at'> {
  expires_at: Date | null;
  scopes: ApiScope[];
}

// Lookups by secret hash run as the owner role: the organization is what they find out. Each joins the membership,
// so a user removed from the organization loses access at once.
const SESSION_SQL = `
select s.id, s.user_id, s.organization_id, s.expires_at, m.role, s.last_seen_at < now() - interval '1 minute' as stale
  from sessions s join memberships m on m.user_id = s.user_id and m.organization_id = s.organization_id
 where s.token_hash = ? and s.revoked_at is null and s.expires_at > now()`;
const TOKEN_SQL = `
select t.id, t.user_id, t.organization_id, t.expires_at, t.scopes, m.role,
       coalesce(t.last_used_at < now() - interval '1 minute', true) as stale
  from api_tokens t join memberships m on m.user_id = t.user_id and m.organization_id = t.organization_id
 where t.token_hash = ? and t.revoked_at is null and (t.expires_at is null or t.expires_at > now())`;
// The condition repeats the staleness test, so replicas racing on one session write it once.
const TOUCH_SESSION_SQL = `update sessions set last_seen_at = now() where id = ? and last_seen_at < now() - interval '1 minute'`;
const TOUCH_TOKEN_SQL = `update api_tokens set last_used_at = now()
  where id = ? and (last_used_at is null or last_used_at < now() - interval '1 minute')`;

/** The bearer token of `Authorization: Bearer ppct_…`, if any. */
function bearerOf(header: string | undefined): string | undefined {
  const m = /^Bearer\s+(\S+)$/i.exec(header ?? '');
  return m?.[1];
}

export function cookieOf(req: FastifyRequest | UpgradeRequest): string | undefined {
  return (req as UpgradeRequest).cookies?.[SESSION_COOKIE];
}

/** The credential a request presents, before any lookup: what rate limits and the login hook key on. */
export function presentedSecret(req: FastifyRequest): string | undefined {
  return bearerOf(req.headers.authorization) ?? cookieOf(req);
}

/**
 * A cookie on a WebSocket upgrade counts only from our own pages: browsers attach cookies to cross-site WebSocket
 * handshakes from same-site origins, and the Origin header is the only sign of who opened the socket.
 */
function sameOrigin(req: UpgradeRequest, publicUrl: string): boolean {
  const origin = req.headers.origin;
  if (origin === undefined) return true;
  const host = req.headers.host;
  const allowed = [new URL(publicUrl).origin, ...(host ? [`http://${host}`, `https://${host}`] : [])];
  return allowed.includes(origin);
}

export function createAuthenticator(deps: GatewayDeps): Authenticator {
  // One lookup per HTTP request, shared by the rate limiter's key, the GraphQL context and the error handler.
  const perRequest = new WeakMap<FastifyRequest, Promise<Caller | null>>();

  function touch(sql: string, id: string) {
    deps.sql
      .query(sql, [id])
      .catch((err: Error) => deps.log.warn({ err: err.message }, 'could not record session/token use'));
  }

  async function bySession(secret: string): Promise<Caller | null> {
    const [row] = await deps.sql.query<SessionRow>(SESSION_SQL, [hashSecret(secret)]);
    if (!row || !ROLES.includes(row.role)) return null;
    if (row.stale) touch(TOUCH_SESSION_SQL, row.id);
    return {
      userId: row.user_id,
      organizationId: row.organization_id,
      role: row.role,
      via: 'session',
      sessionId: row.id,
      tokenId: null,
      scopes: new Set(ROLE_SCOPES[row.role]),
      expiresAt: new Date(row.expires_at),
    };
  }

  async function byToken(secret: string): Promise<Caller | null> {
    if (!secret.startsWith(API_TOKEN_PREFIX)) return null;
    const [row] = await deps.sql.query<TokenRow>(TOKEN_SQL, [hashSecret(secret)]);
    if (!row || !ROLES.includes(row.role)) return null;
    if (row.stale) touch(TOUCH_TOKEN_SQL, row.id);
    const allowed = ROLE_SCOPES[row.role];
    return {
      userId: row.user_id,
      organizationId: row.organization_id,
      role: row.role,
      via: 'token',
      sessionId: null,
      tokenId: row.id,
      scopes: new Set(row.scopes.filter((s) => allowed.includes(s))),
      expiresAt: row.expires_at ? new Date(row.expires_at) : null,
    };
  }

  async function lookup(req: FastifyRequest): Promise<Caller | null> {
    const bearer = bearerOf(req.headers.authorization);
    if (bearer) return byToken(bearer);
    const cookie = cookieOf(req);
    return cookie ? bySession(cookie) : null;
  }

  return {
    fromRequest(req) {
      let caller = perRequest.get(req);
      if (!caller) {
        caller = lookup(req);
        perRequest.set(req, caller);
      }
      return caller;
    },
    async fromConnectionInit(payload, req) {
      const auth = typeof payload?.authorization === 'string' ? payload.authorization : undefined;
      const bearer = bearerOf(auth) ?? (typeof payload?.token === 'string' ? payload.token : undefined);
      if (bearer) return byToken(bearer);
      // A browser's WebSocket carries the session cookie on the upgrade request.
      const cookie = cookieOf(req);
      return cookie && sameOrigin(req, deps.config.publicUrl) ? bySession(cookie) : null;
    },
    // Also false once the session moved to another organization or the role changed: the caller is someone else now.
    async stillValid(caller) {
      const [row] = await deps.sql.query<{ ok: boolean }>(
        caller.via === 'session'
          ? `select true as ok from sessions s join memberships m on m.user_id = s.user_id and m.organization_id = s.organization_id
              where s.id = ? and s.organization_id = ? and m.role = ? and s.revoked_at is null and s.expires_at > now()`
          : `select true as ok from api_tokens t join memberships m on m.user_id = t.user_id and m.organization_id = t.organization_id
              where t.id = ? and t.organization_id = ? and m.role = ? and t.revoked_at is null and (t.expires_at is null or t.expires_at > now())`,
        [caller.sessionId ?? caller.tokenId, caller.organizationId, caller.role],
      );
      return row?.ok === true;
    },
  };
}
