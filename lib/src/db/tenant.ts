import type { EntityManager, MikroORM } from '@mikro-orm/postgresql';
import { APP_ROLE, SESSION_ORG, SESSION_USER } from './entities.ts';

export interface TenantScope {
  organizationId: string;
  userId: string;
}

/**
 * An entity manager whose every statement runs as the application role with the caller's organization and user in
 * transaction-local settings, so row-level security scopes it even where a query forgets its own `organization`
 * condition. MikroORM wraps work outside an explicit transaction in a short one to carry the settings.
 */
export function tenantEm(orm: MikroORM, scope: TenantScope): EntityManager {
  return orm.em.fork({
    session: { role: APP_ROLE, variables: { [SESSION_ORG]: scope.organizationId, [SESSION_USER]: scope.userId } },
  }) as EntityManager;
}
