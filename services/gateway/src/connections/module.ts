import type { EntityManager } from '@mikro-orm/postgresql';
import { AdAccount, Connection } from '@ppc/lib/db';
import { requireCaller, tenantOf } from '../context.ts';
import { ConflictError, NotFoundError } from '../graphql/errors.ts';
import type { Context, GraphQLModule } from '../graphql/module.ts';
import { afterCursor, isUuid, type Page, pageSize, toPage } from '../jobs/pagination.ts';
import { connectDemo, DemoPlatformError } from './demo.ts';
import { authorizationUrl, googleConfigured, sealState } from './google.ts';

const typeDefs = /* GraphQL */ `
  """
  A sign-in to an ad platform (platform: demo or google-ads) through which ad accounts are reached. status: active;
  error (lastError says what failed, e.g. listing accounts); revoked (the platform refused the grant, or a user
  removed it: its accounts are removed and their jobs disabled; connect again to get a new one).
  """
  type Connection {
    id: ID!
    platform: String!
    "The signed-in identity (the Google account's e-mail) or the demo platform's name."
    label: String!
    status: String!
    lastError: String
    lastErrorAt: DateTime
    createdAt: DateTime!
    "Ad accounts reached through it (removed ones not counted)."
    accountCount: Int!
  }

  enum AccountStatus {
    enabled
    disabled
    removed
  }

  "An ad account jobs can read. disabled: the platform reports it closed or suspended."
  type Account {
    id: ID!
    connectionId: ID!
    platform: String!
    "The platform's own id (Google Ads customer id)."
    platformAccountId: String!
    name: String!
    currency: String!
    timeZone: String!
    status: AccountStatus!
    lastSyncedAt: DateTime
  }

  input AccountFilter {
    connectionId: ID
    "Default: enabled and disabled accounts (not removed ones)."
    status: AccountStatus
    "Part of the name or of the platform's account id, case-insensitive."
    search: String
  }

  "A page of accounts, by name: pass nextCursor as after for the next page (null: this is the last)."
  type AccountPage {
    items: [Account!]!
    nextCursor: String
  }

  type GoogleAuthorization {
    "Send the browser here; Google returns it to /oauth/google/callback, which stores the connection."
    authorizationUrl: String!
  }

  extend type Query {
    "Your organization's connections, newest first."
    connections: [Connection!]!
    "first: 1-200 (default 50)."
    accounts(filter: AccountFilter, first: Int = 50, after: String): AccountPage!
  }

  extend type Mutation {
    "Connects the built-in demo ad platform (no OAuth) and lists its accounts, so jobs can be created at once."
    createDemoConnection: Connection!
    "Starts connecting Google Ads. CONFLICT when this server has no Google OAuth client configured."
    startGoogleConnection: GoogleAuthorization!
    "Revokes the connection: its accounts are removed and their jobs disabled with a reason."
    removeConnection(id: ID!): Connection!
  }
`;

interface ConnectionView {
  id: string;
  platform: string;
  label: string;
  status: string;
  lastError: string | null;
  lastErrorAt: Date | null;
  createdAt: Date;
  accountCount: number;
}

const viewOf = (c: Connection, accountCount: number): ConnectionView => ({
  id: c.id,
  platform: c.platform,
  label: c.label,
  status: c.status,
  lastError: c.lastError ?? null,
  lastErrorAt: c.lastErrorAt ?? null,
  createdAt: c.createdAt,
  accountCount,
});

async function accountCounts(em: EntityManager, orgId: string, ids: string[]): Promise<Map<string, number>> {
  if (ids.length === 0) return new Map();
  const rows = await em.execute<{ connection_id: string; n: number }[]>(
    `select connection_id, count(*)::int as n from ad_accounts
      where organization_id = ? and status <> 'removed' and connection_id = any(?::uuid[])
      group by connection_id`,
    [orgId, `{${ids.join(',')}}`],
  );
  return new Map(rows.map((r) => [r.connection_id, r.n]));
}

/** LIKE pattern matching `s` literally anywhere. */
const containing = (s: string) => `%${s.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;

export const connectionsModule: GraphQLModule = {
  typeDefs,
  resolvers: {
    Account: {
      connectionId: (a: unknown) => (a as AdAccount).connection.id,
    },
    Query: {
      connections: async (_root: unknown, _args: unknown, ctx: Context): Promise<ConnectionView[]> => {
        const caller = requireCaller(ctx, 'read');
        const em = tenantOf(ctx, 'read');
        const list = await em.find(
          Connection,
          { organization: caller.organizationId },
          { orderBy: { createdAt: 'desc', id: 'desc' } },
        );
        const counts = await accountCounts(
          em,
          caller.organizationId,
          list.map((c) => c.id),
        );
        return list.map((c) => viewOf(c, counts.get(c.id) ?? 0));
      },
      accounts: async (
        _root: unknown,
        args: {
          filter?: { connectionId?: string | null; status?: string | null; search?: string | null } | null;
          first?: number | null;
          after?: string | null;
        },
        ctx: Context,
      ): Promise<Page<AdAccount>> => {
        const caller = requireCaller(ctx, 'read');
        const em = tenantOf(ctx, 'read');
        const size = pageSize(args.first);
        const f = args.filter ?? {};
        const where: Record<string, unknown>[] = [{ organization: caller.organizationId }, afterCursor(args.after)];
        if (f.connectionId) {
          const known =
            isUuid(f.connectionId) &&
            (await em.count(Connection, { id: f.connectionId, organization: caller.organizationId }));
          if (!known) throw new NotFoundError('connection', f.connectionId);
          where.push({ connection: f.connectionId });
        }
        where.push({ status: f.status ?? { $ne: 'removed' } });
        const search = f.search?.trim();
        if (search) {
          const pattern = containing(search.slice(0, 200));
          where.push({ $or: [{ name: { $ilike: pattern } }, { platformAccountId: { $ilike: pattern } }] });
        }
        const rows = await em.find(
          AdAccount,
          { $and: where },
          { orderBy: { name: 'asc', id: 'asc' }, limit: size + 1 },
        );
        return toPage(rows, size);
      },
    },
    Mutation: {
      createDemoConnection: async (_root: unknown, _args: unknown, ctx: Context): Promise<ConnectionView> => {
        const caller = requireCaller(ctx, 'write');
        try {
          const made = await connectDemo(ctx.deps, { orgId: caller.organizationId, userId: caller.userId });
          return viewOf(made!.connection, made!.accounts);
        } catch (err) {
          if (err instanceof DemoPlatformError) throw new ConflictError(`${err.message}; try again later`);
          throw err;
        }
      },
      startGoogleConnection: (_root: unknown, _args: unknown, ctx: Context) => {
        const caller = requireCaller(ctx, 'write');
        const config = ctx.deps.config;
        if (!googleConfigured(config)) {
          throw new ConflictError(
            'Google Ads connections are not set up on this server (PPC_GOOGLE_CLIENT_ID and PPC_GOOGLE_CLIENT_SECRET); use the demo platform',
          );
        }
        const state = sealState(config, { org: caller.organizationId, user: caller.userId });
        return { authorizationUrl: authorizationUrl(config, state) };
      },
      removeConnection: async (_root: unknown, { id }: { id: string }, ctx: Context): Promise<ConnectionView> => {
        const caller = requireCaller(ctx, 'write');
        const em = tenantOf(ctx, 'write');
        if (!isUuid(id)) throw new NotFoundError('connection', id);
        const org = caller.organizationId;
        await em.transactional(async (tx) => {
          const [conn] = await tx.execute<{ label: string }[]>(
            'select label from connections where id = ? and organization_id = ? for update',
            [id, org],
          );
          if (!conn) throw new NotFoundError('connection', id);
          await tx.execute(
            // The grant is destroyed with the connection: a removed connection keeps no refresh token, sealed or not.
            `update connections set status = 'revoked', sealed_refresh_token = '', last_error = ?, last_error_at = now(),
                    updated_at = now()
              where id = ? and organization_id = ?`,
            ['removed by a member of the organization', id, org],
          );
          await tx.execute(
            `update ad_accounts set status = 'removed', updated_at = now()
              where connection_id = ? and organization_id = ? and status <> 'removed'`,
            [id, org],
          );
          await tx.execute(
            `update jobs set enabled = false, next_run_at = null, updated_at = now(),
                    disabled_reason = ?
              where organization_id = ? and enabled
                and account_id in (select a.id from ad_accounts a where a.connection_id = ? and a.organization_id = ?)`,
            [`its connection "${conn.label}" was removed; connect the account again and re-enable`, org, id, org],
          );
        });
        const conn = await em.findOneOrFail(Connection, { id, organization: org }, { refresh: true });
        return viewOf(conn, 0);
      },
    },
  },
};
