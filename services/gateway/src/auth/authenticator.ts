import { type ApiScope, ROLES, type Role } from '@ppc/lib/db';
import type { FastifyRequest } from 'fastify';
import { type Authenticator, type Caller, type GatewayDeps, ROLE_SCOPES } from '../context.ts';
import { API_TOKEN_PREFIX, hashSecret, SESSION_COOKIE } from './secrets.ts';

interface SessionRow {
  id: string;
  user_id: string;
  organization_id: string;
  expires_at: Date;
  role: Role;
}
interface TokenRow extends Omit<SessionRow, 'expires_at'> {
  expires_at: Date | null;
  scopes: ApiScope[];
}

// Lookups by secret hash run as the owner role: the organization is what they find out. Each joins the membership,
// so a user removed from the organization loses access at once.
const SESSION_SQL = `
select s.id, s.user_id, s.organization_id, s.expires_at, m.role
  from sessions s join memberships m on m.user_id = s.user_id and m.organization_id = s.organization_id
 where s.token_hash = ? and s.revoked_at is null and s.expires_at > now()`;
const TOKEN_SQL = `
select t.id, t.user_id, t.organization_id, t.expires_at, t.scopes, m.role
  from api_tokens t join memberships m on m.user_id = t.user_id and m.organization_id = t.organization_id
 where t.token_hash = ? and t.revoked_at is null and (t.expires_at is null or t.expires_at > now())`;

/** The bearer token of `Authorization: Bearer ppct_…`, if any. */
function bearerOf(header: string | undefined): string | undefined {
  const m = /^Bearer\s+(\S+)$/i.exec(header ?? '');
  return m?.[1];
}

function cookieOf(req: FastifyRequest): string | undefined {
  return (req as FastifyRequest & { cookies?: Record<string, string | undefined> }).cookies?.[SESSION_COOKIE];
}

export function createAuthenticator(deps: GatewayDeps): Authenticator {
  const em = () => deps.orm.em.fork();

  async function bySession(secret: string): Promise<Caller | null> {
    const [row] = await em().execute<SessionRow[]>(SESSION_SQL, [hashSecret(secret)]);
    if (!row || !ROLES.includes(row.role)) return null;
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
    const [row] = await em().execute<TokenRow[]>(TOKEN_SQL, [hashSecret(secret)]);
    if (!row || !ROLES.includes(row.role)) return null;
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

  return {
    async fromRequest(req) {
      const bearer = bearerOf(req.headers.authorization);
      if (bearer) return byToken(bearer);
      const cookie = cookieOf(req);
      return cookie ? bySession(cookie) : null;
    },
    async fromConnectionInit(payload, req) {
      const auth = typeof payload?.authorization === 'string' ? payload.authorization : undefined;
      const bearer = bearerOf(auth) ?? (typeof payload?.token === 'string' ? payload.token : undefined);
      if (bearer) return byToken(bearer);
      // A browser's WebSocket carries the session cookie on the upgrade request.
      const cookie = cookieOf(req);
      return cookie ? bySession(cookie) : null;
    },
    async stillValid(caller) {
      const [row] = await em().execute<{ ok: boolean }[]>(
        caller.via === 'session'
          ? `select true as ok from sessions s join memberships m on m.user_id = s.user_id and m.organization_id = s.organization_id
              where s.id = ? and s.revoked_at is null and s.expires_at > now()`
          : `select true as ok from api_tokens t join memberships m on m.user_id = t.user_id and m.organization_id = t.organization_id
              where t.id = ? and t.revoked_at is null and (t.expires_at is null or t.expires_at > now())`,
        [caller.sessionId ?? caller.tokenId],
      );
      return row?.ok === true;
    },
  };
}
