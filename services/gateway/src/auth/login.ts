import { hashPassword, type Role, ROLES, Session, verifyPassword } from '@ppc/lib/db';
import { type Caller, type GatewayDeps, ROLE_SCOPES } from '../context.ts';
import { ForbiddenError, UnauthenticatedError } from '../graphql/errors.ts';
import { newSecret } from './secrets.ts';

/** Consecutive failures before the account locks; each failure after that doubles the lock, up to the cap. */
export const LOCK_AFTER_FAILURES = 5;
export const FIRST_LOCK_SECONDS = 30;
export const MAX_LOCK_SECONDS = 3600;

/** One message for every refusal: it must not tell an unknown email from a wrong password or a locked account. */
export const LOGIN_REFUSED = 'wrong email or password, or too many failed attempts: wait a little and try again';

interface UserRow {
  id: string;
  password_hash: string | null;
}

const FIND_USER_SQL = 'select id, password_hash from users where lower(email) = ?';

/**
 * Counts the attempt as failed BEFORE the password is checked, in one statement every replica shares: parallel
 * guesses cannot slip past the lock while the first ones are still being verified. A success resets the count.
 * No row: the account is locked.
 */
const CLAIM_ATTEMPT_SQL = `
update users
   set failed_logins = failed_logins + 1,
       locked_until = case when failed_logins + 1 >= ${LOCK_AFTER_FAILURES}
         then now() + make_interval(secs => least(${FIRST_LOCK_SECONDS} * power(2, failed_logins + 1 - ${LOCK_AFTER_FAILURES}), ${MAX_LOCK_SECONDS}))
         else locked_until end
 where id = ? and (locked_until is null or locked_until <= now())
returning failed_logins`;
const RESET_SQL = 'update users set failed_logins = 0, locked_until = null where id = ?';

// The organization a session starts in: the user's own (sign-up) one when still a member, else the oldest membership.
const HOME_ORG_SQL = `
select m.organization_id, m.role
  from memberships m join users u on u.id = m.user_id
 where m.user_id = ?
 order by (m.organization_id = u.organization_id) desc, m.created_at asc
 limit 1`;

let dummyHash: Promise<string> | undefined;
/** Verified against when there is no real hash to check, so every refusal costs one argon2id run. */
function dummy(): Promise<string> {
  dummyHash ??= hashPassword('not a password: timing equaliser');
  return dummyHash;
}

export interface LoginResult {
  caller: Caller;
  /** The session cookie's value; the database keeps only its hash. */
  secret: string;
  maxAgeSeconds: number;
}

/** Checks the password under the shared lockout and opens a session; UNAUTHENTICATED with LOGIN_REFUSED otherwise. */
export async function login(
  deps: GatewayDeps,
  input: { email: string; password: string; userAgent?: string },
): Promise<LoginResult> {
  const em = deps.orm.em.fork();
  const [user] = await em.execute<UserRow[]>(FIND_USER_SQL, [input.email.toLowerCase()]);
  if (!user?.password_hash) {
    await verifyPassword(input.password, await dummy());
    throw new UnauthenticatedError(LOGIN_REFUSED);
  }
  const claimed = await em.execute<{ failed_logins: number }[]>(CLAIM_ATTEMPT_SQL, [user.id]);
  if (claimed.length === 0) {
    await verifyPassword(input.password, await dummy());
    throw new UnauthenticatedError(LOGIN_REFUSED);
  }
  if (!(await verifyPassword(input.password, user.password_hash))) throw new UnauthenticatedError(LOGIN_REFUSED);
  await em.execute(RESET_SQL, [user.id]);

  const [home] = await em.execute<{ organization_id: string; role: Role }[]>(HOME_ORG_SQL, [user.id]);
  if (!home || !ROLES.includes(home.role)) throw new ForbiddenError('you are not a member of any organization');
  const { secret, hash } = newSecret();
  const maxAgeSeconds = deps.config.sessionTtlHours * 3600;
  const session = em.create(Session, {
    organization: home.organization_id,
    user: user.id,
    tokenHash: hash,
    expiresAt: new Date(Date.now() + maxAgeSeconds * 1000),
    userAgent: input.userAgent?.slice(0, 300) ?? null,
  });
  await em.flush();
  return {
    secret,
    maxAgeSeconds,
    caller: {
      userId: user.id,
      organizationId: home.organization_id,
      role: home.role,
      via: 'session',
      sessionId: session.id,
      tokenId: null,
      scopes: new Set(ROLE_SCOPES[home.role]),
      expiresAt: session.expiresAt,
    },
  };
}
