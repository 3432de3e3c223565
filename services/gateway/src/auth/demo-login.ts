import { hashPassword, Membership, Organization, User, verifyPassword } from '@ppc/lib/db';
import { ensureDemoConnection } from '../connections/demo.ts';
import type { GatewayDeps } from '../context.ts';

export const DEMO_ORGANIZATION = 'Demo agency';
/** Serialises replicas that start together (any constant both agree on). */
const DEMO_LOCK_KEY = 7_301_984;
const CONNECTION_RETRIES = 10;
const CONNECTION_RETRY_MS = 5_000;

export interface DemoLogin {
  orgId: string;
  userId: string;
}

/**
 * The demo user of PPC_DEMO_LOGIN (`email:password`): organization "Demo agency", the user (argon2id hash) and an
 * owner membership, created when missing; an existing user gets the configured password back. Then the demo
 * connection; when the demo platform is not up yet that is retried in the background, so the gateway still starts.
 */
export async function ensureDemoLogin(deps: GatewayDeps, login: string): Promise<DemoLogin> {
  const at = login.indexOf(':');
  const email = login.slice(0, at).trim().toLowerCase();
  const password = login.slice(at + 1);
  const demo = await deps.orm.em.fork().transactional(async (em) => {
    await em.execute('select pg_advisory_xact_lock(?)', [DEMO_LOCK_KEY]);
    const [existing] = await em.execute<{ id: string; organization_id: string; password_hash: string | null }[]>(
      'select id, organization_id, password_hash from users where lower(email) = ?',
      [email],
    );
    if (existing) {
      const membership = await em.findOne(Membership, { user: existing.id }, { orderBy: { createdAt: 'asc' } });
      const orgId = membership?.organization.id ?? existing.organization_id;
      if (!membership) em.create(Membership, { organization: orgId, user: existing.id, role: 'owner' });
      if (!existing.password_hash || !(await verifyPassword(password, existing.password_hash))) {
        await em.execute('update users set password_hash = ?, failed_logins = 0, locked_until = null where id = ?', [
          await hashPassword(password),
          existing.id,
        ]);
      }
      await em.flush();
      return { orgId, userId: existing.id };
    }
    const org = em.create(Organization, { name: DEMO_ORGANIZATION });
    const user = em.create(User, {
      organization: org,
      email,
      name: 'Demo user',
      passwordHash: await hashPassword(password),
    });
    em.create(Membership, { organization: org, user, role: 'owner' });
    await em.flush();
    deps.log.info({ email, orgId: org.id }, 'demo login created');
    return { orgId: org.id, userId: user.id };
  });
  await connectDemoWithRetries(deps, demo);
  return demo;
}

async function connectDemoWithRetries(deps: GatewayDeps, demo: DemoLogin, attempt = 1): Promise<void> {
  try {
    await ensureDemoConnection(deps, demo.orgId, demo.userId);
  } catch (err) {
    if (attempt >= CONNECTION_RETRIES) {
      deps.log.error({ err }, 'demo connection not created: the demo ad platform did not answer');
      return;
    }
    deps.log.warn({ err: (err as Error).message, attempt }, 'demo connection not created yet; retrying');
    setTimeout(() => void connectDemoWithRetries(deps, demo, attempt + 1), CONNECTION_RETRY_MS * attempt).unref();
  }
}
