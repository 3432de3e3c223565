import { API_SCOPES, type ApiScope, ApiToken, Membership, Organization, type Role, User } from '@ppc/lib/db';
import { type Caller, type GatewayContext, ROLE_SCOPES, requireCaller, tenantOf } from '../context.ts';
import { BadUserInputError, ClientError, ForbiddenError, NotFoundError } from '../graphql/errors.ts';
import type { Context, GraphQLModule } from '../graphql/module.ts';
import { login } from './login.ts';
import { API_TOKEN_PREFIX, newSecret, SESSION_COOKIE, tokenPrefix } from './secrets.ts';

const typeDefs = /* GraphQL */ `
  enum MemberRole { owner member viewer }
  enum ApiScope { read write run admin }
  enum AuthMethod { session token }

  "The caller: a signed-in user acting in one organization, through a session or an API token."
  type Me {
    "The user's id."
    id: ID!
    email: String!
    name: String!
    organization: Organization!
    role: MemberRole!
    "What this caller may do: the role's scopes (narrowed to the token's for an API token)."
    scopes: [ApiScope!]!
    via: AuthMethod!
    "When the session or token stops working (null: a token without expiry)."
    expiresAt: DateTime
  }

  "An organization the caller belongs to, with the caller's role in it."
  type Organization {
    id: ID!
    name: String!
    role: MemberRole!
  }

  type UserSummary {
    id: ID!
    name: String!
    email: String!
  }

  "An API token's record; the secret itself is shown only once, by createApiToken."
  type ApiToken {
    id: ID!
    name: String!
    scopes: [ApiScope!]!
    "The secret's first characters, to tell tokens apart."
    prefix: String!
    createdAt: DateTime!
    expiresAt: DateTime
    lastUsedAt: DateTime
    revokedAt: DateTime
    "The user the token acts as (null once they are no longer a member)."
    owner: UserSummary
  }

  type CreatedApiToken {
    "Send as 'Authorization: Bearer <secret>'. Shown this once: only its hash is stored."
    secret: String!
    token: ApiToken!
  }

  extend type Query {
    "The caller; null when signed out (or the session or token has expired or been revoked)."
    me: Me
    "The organizations the caller belongs to."
    organizations: [Organization!]!
    "The API tokens of the caller's organization, newest first."
    apiTokens: [ApiToken!]!
  }

  extend type Mutation {
    "Signs in: sets the session cookie and returns the caller."
    login(email: String!, password: String!): Me!
    "Ends the session and clears its cookie (true when there was a session to end)."
    logout: Boolean!
    "Moves the caller's session to another organization they belong to."
    switchOrganization(id: ID!): Me!
    "A new API token with the given scopes (within the caller's role). Sessions only: a token cannot mint tokens."
    createApiToken(name: String!, scopes: [ApiScope!]!, expiresInDays: Int): CreatedApiToken!
    "Revokes a token of the caller's organization: one's own, or anyone's with the admin scope."
    revokeApiToken(id: ID!): ApiToken!
  }
`;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;

function requireId(field: string, id: string): string {
  if (!UUID.test(id)) throw new BadUserInputError(field, 'not a valid id');
  return id.toLowerCase();
}

function validEmail(email: string): string {
  const e = email.trim();
  if (e.length === 0) throw new BadUserInputError('email', 'required');
  if (e.length > 320) throw new BadUserInputError('email', 'at most 320 characters');
  if (!EMAIL.test(e)) throw new BadUserInputError('email', 'not an email address (name@example.com)');
  return e;
}

function validPassword(password: string): string {
  if (password.length === 0) throw new BadUserInputError('password', 'required');
  // argon2id's cost grows with the input: bound it.
  if (password.length > 1024) throw new BadUserInputError('password', 'at most 1024 characters');
  return password;
}

function validTokenName(name: string): string {
  const n = name.trim();
  if (n.length < 1 || n.length > 200) throw new BadUserInputError('name', 'between 1 and 200 characters');
  return n;
}

function validScopes(scopes: readonly ApiScope[], role: Role): ApiScope[] {
  if (scopes.length === 0) throw new BadUserInputError('scopes', 'at least one scope');
  const allowed = ROLE_SCOPES[role];
  const beyond = scopes.filter((s) => !allowed.includes(s));
  if (beyond.length > 0) {
    throw new ClientError(
      'FORBIDDEN',
      `scopes: your role (${role}) cannot grant ${[...new Set(beyond)].join(', ')}; it allows ${allowed.join(', ')}`,
      { field: 'scopes' },
    );
  }
  return API_SCOPES.filter((s) => scopes.includes(s));
}

function validExpiry(days: number | null | undefined): Date | null {
  if (days === null || days === undefined) return null;
  if (!Number.isInteger(days) || days < 1 || days > 3650)
    throw new BadUserInputError('expiresInDays', 'between 1 and 3650 days (or null for no expiry)');
  return new Date(Date.now() + days * 86_400_000);
}

interface MeView {
  id: string;
  email: string;
  name: string;
  organization: { id: string; name: string; role: Role };
  role: Role;
  scopes: ApiScope[];
  via: Caller['via'];
  expiresAt: Date | null;
}

async function meOf(ctx: GatewayContext, caller: Caller): Promise<MeView> {
  const em = tenantOf({ ...ctx, caller });
  const [user, org] = await Promise.all([
    em.findOneOrFail(User, { id: caller.userId }),
    em.findOneOrFail(Organization, { id: caller.organizationId }),
  ]);
  return {
    id: user.id,
    email: user.email,
    name: user.name,
    organization: { id: org.id, name: org.name, role: caller.role },
    role: caller.role,
    scopes: API_SCOPES.filter((s) => caller.scopes.has(s)),
    via: caller.via,
    expiresAt: caller.expiresAt,
  };
}

interface TokenView {
  id: string;
  name: string;
  scopes: ApiScope[];
  prefix: string;
  createdAt: Date;
  expiresAt: Date | null;
  lastUsedAt: Date | null;
  revokedAt: Date | null;
  owner: { id: string; name: string; email: string } | null;
}

function tokenView(t: ApiToken, owners: ReadonlyMap<string, User>): TokenView {
  const owner = owners.get(t.user.id);
  return {
    id: t.id,
    name: t.name,
    scopes: t.scopes,
    prefix: t.prefix,
    createdAt: t.createdAt,
    expiresAt: t.expiresAt ?? null,
    lastUsedAt: t.lastUsedAt ?? null,
    revokedAt: t.revokedAt ?? null,
    owner: owner ? { id: owner.id, name: owner.name, email: owner.email } : null,
  };
}

async function ownersOf(ctx: Context, tokens: readonly ApiToken[]): Promise<Map<string, User>> {
  const ids = [...new Set(tokens.map((t) => t.user.id))];
  // Row-level security shows the members of the caller's organization: a former member's tokens have no owner.
  const users = ids.length ? await tenantOf(ctx).find(User, { id: { $in: ids } }) : [];
  return new Map(users.map((u) => [u.id, u]));
}

function clearSessionCookie(ctx: Context): void {
  ctx.reply?.clearCookie(SESSION_COOKIE, { path: '/' });
}

export const authModule: GraphQLModule = {
  typeDefs,
  resolvers: {
    Query: {
      me: async (_root: unknown, _args: unknown, ctx: Context) => (ctx.caller ? meOf(ctx, ctx.caller) : null),
      organizations: async (_root: unknown, _args: unknown, ctx: Context) => {
        const caller = requireCaller(ctx);
        const memberships = await tenantOf(ctx).find(
          Membership,
          { user: caller.userId },
          { populate: ['organization'], orderBy: { createdAt: 'asc' } },
        );
        return memberships.map((m) => ({ id: m.organization.id, name: m.organization.name, role: m.role }));
      },
      apiTokens: async (_root: unknown, _args: unknown, ctx: Context) => {
        const caller = requireCaller(ctx, 'read');
        const tokens = await tenantOf(ctx).find(
          ApiToken,
          { organization: caller.organizationId },
          { orderBy: { createdAt: 'desc', id: 'desc' } },
        );
        const owners = await ownersOf(ctx, tokens);
        return tokens.map((t) => tokenView(t, owners));
      },
    },
    Mutation: {
      login: async (_root: unknown, args: { email: string; password: string }, ctx: Context) => {
        const email = validEmail(args.email);
        const password = validPassword(args.password);
        const result = await login(ctx.deps, { email, password, userAgent: ctx.request?.headers['user-agent'] });
        ctx.reply?.setCookie(SESSION_COOKIE, result.secret, {
          httpOnly: true,
          sameSite: 'lax',
          path: '/',
          secure: ctx.deps.config.secureCookies,
          maxAge: result.maxAgeSeconds,
        });
        // The rest of this operation (and `me` in the result) acts as the new session.
        ctx.caller = result.caller;
        return meOf(ctx, result.caller);
      },
      logout: async (_root: unknown, _args: unknown, ctx: Context) => {
        const caller = ctx.caller;
        clearSessionCookie(ctx);
        if (!caller) return false;
        if (caller.via !== 'session') throw new ForbiddenError('an API token cannot log out: revoke it instead');
        const revoked = await ctx.deps.orm.em
          .fork()
          .execute<{ id: string }[]>(
            'update sessions set revoked_at = now() where id = ? and revoked_at is null returning id',
            [caller.sessionId],
          );
        ctx.caller = null;
        return revoked.length > 0;
      },
      switchOrganization: async (_root: unknown, args: { id: string }, ctx: Context) => {
        const caller = requireCaller(ctx);
        if (caller.via !== 'session') throw new ForbiddenError('an API token belongs to one organization');
        const id = requireId('id', args.id);
        const membership = await tenantOf(ctx).findOne(Membership, { user: caller.userId, organization: id });
        if (!membership) throw new NotFoundError('organization', args.id);
        // The owner role: row-level security would refuse moving the row out of the current organization.
        await ctx.deps.orm.em
          .fork()
          .execute('update sessions set organization_id = ? where id = ? and revoked_at is null', [
            id,
            caller.sessionId,
          ]);
        const moved: Caller = {
          ...caller,
          organizationId: id,
          role: membership.role,
          scopes: new Set(ROLE_SCOPES[membership.role]),
        };
        ctx.caller = moved;
        return meOf(ctx, moved);
      },
      createApiToken: async (
        _root: unknown,
        args: { name: string; scopes: ApiScope[]; expiresInDays?: number | null },
        ctx: Context,
      ) => {
        const caller = requireCaller(ctx, 'read');
        if (caller.via !== 'session')
          throw new ForbiddenError('an API token cannot create API tokens: sign in with a session');
        const name = validTokenName(args.name);
        const scopes = validScopes(args.scopes, caller.role);
        const expiresAt = validExpiry(args.expiresInDays);
        const { secret, hash } = newSecret(API_TOKEN_PREFIX);
        const em = tenantOf(ctx);
        const token = em.create(ApiToken, {
          organization: caller.organizationId,
          user: caller.userId,
          name,
          scopes,
          tokenHash: hash,
          prefix: tokenPrefix(secret),
          expiresAt,
        });
        await em.flush();
        const owners = await ownersOf(ctx, [token]);
        return { secret, token: tokenView(token, owners) };
      },
      revokeApiToken: async (_root: unknown, args: { id: string }, ctx: Context) => {
        const caller = requireCaller(ctx);
        const id = requireId('id', args.id);
        const em = tenantOf(ctx);
        const token = await em.findOne(ApiToken, { id, organization: caller.organizationId });
        if (!token) throw new NotFoundError('API token', args.id);
        const own = token.user.id === caller.userId;
        if (!(own && caller.via === 'session')) {
          requireCaller(ctx, 'admin');
        }
        if (!token.revokedAt) {
          token.revokedAt = new Date();
          await em.flush();
        }
        return tokenView(token, await ownersOf(ctx, [token]));
      },
    },
  },
};
