import { randomBytes } from 'node:crypto';
import type { EntityManager } from '@mikro-orm/postgresql';
import { type AdAccount as ListedAccount, createDemoConnector } from '@ppc/lib/ads';
import { Connection, sealSecret, tenantEm, upsertAccounts } from '@ppc/lib/db';
import type { GatewayDeps } from '../context.ts';

export const DEMO_LABEL = 'Demo ad platform';

/** The demo platform could not be reached or refused the new credentials. */
export class DemoPlatformError extends Error {
  override name = 'DemoPlatformError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/**
 * A fresh demo refresh token, proven at the platform: its token endpoint speaks only the refresh-token grant and
 * takes any refresh token but `revoked`, so a connection's credential is a random one that the listing below
 * exchanges for an access token before anything is stored.
 */
async function listWithNewToken(deps: GatewayDeps): Promise<{ refreshToken: string; listed: ListedAccount[] }> {
  const refreshToken = `demo-${randomBytes(24).toString('base64url')}`;
  const connector = createDemoConnector({
    url: deps.config.demoPlatformUrl,
    refreshToken,
    timeoutMs: 15_000,
    retry: { maxAttempts: 2 },
  });
  try {
    return { refreshToken, listed: await connector.listAccounts() };
  } catch (err) {
    throw new DemoPlatformError(
      `the demo ad platform at ${deps.config.demoPlatformUrl} did not list accounts: ${(err as Error).message}`,
      { cause: err },
    );
  } finally {
    await connector.close().catch(() => {});
  }
}

// Serialises demo connects of one organization (two gateway replicas starting the demo login at once).
const LOCK_SQL = `select pg_advisory_xact_lock(hashtextextended('ppc.demo-connection.' || ?::text, 0))`;

async function activeDemo(em: EntityManager, orgId: string): Promise<Connection | null> {
  return em.findOne(Connection, { organization: orgId, platform: 'demo', status: { $ne: 'revoked' } });
}

/**
 * Creates a demo connection for the organization with its accounts listed, so jobs can be created at once. With
 * `onlyIfMissing`, an organization that already has a usable demo connection gets nothing new (and null).
 */
export async function connectDemo(
  deps: GatewayDeps,
  scope: { orgId: string; userId: string },
  opts: { onlyIfMissing?: boolean } = {},
): Promise<{ connection: Connection; accounts: number } | null> {
  const { refreshToken, listed } = await listWithNewToken(deps);
  const em = tenantEm(deps.orm, { organizationId: scope.orgId, userId: scope.userId });
  return em.transactional(async (tx) => {
    await tx.execute(LOCK_SQL, [scope.orgId]);
    if (opts.onlyIfMissing && (await activeDemo(tx, scope.orgId))) return null;
    const connection = tx.create(Connection, {
      organization: scope.orgId,
      owner: scope.userId,
      platform: 'demo',
      label: DEMO_LABEL,
      sealedRefreshToken: sealSecret(refreshToken, deps.config.keyring),
      keyId: deps.config.keyring.currentKeyId,
      status: 'active',
    });
    await tx.flush();
    const changes = await upsertAccounts(
      tx,
      { id: connection.id, organizationId: scope.orgId, platform: 'demo' },
      listed,
      new Date(),
    );
    return { connection, accounts: changes.created };
  });
}

/**
 * The demo login's connection: created with its accounts unless the organization already has a usable demo
 * connection. Idempotent, also across replicas starting together. Throws DemoPlatformError when the platform is
 * unreachable.
 */
export async function ensureDemoConnection(deps: GatewayDeps, orgId: string, userId: string): Promise<void> {
  const em = tenantEm(deps.orm, { organizationId: orgId, userId });
  if (await activeDemo(em, orgId)) return;
  await connectDemo(deps, { orgId, userId }, { onlyIfMissing: true });
}
