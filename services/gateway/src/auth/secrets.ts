import { createHash, randomBytes } from 'node:crypto';

/** The session cookie: an opaque random value; the sessions table keeps only its SHA-256. */
export const SESSION_COOKIE = 'ppc_session';
/** API tokens look like `ppct_<43 base64url chars>`; the prefix lets secret scanners recognise them. */
export const API_TOKEN_PREFIX = 'ppct_';

export function hashSecret(secret: string): string {
  return createHash('sha256').update(secret).digest('hex');
}

/** A new random secret (256 bits) and the hash to store. */
export function newSecret(prefix = ''): { secret: string; hash: string } {
  const secret = `${prefix}${randomBytes(32).toString('base64url')}`;
  return { secret, hash: hashSecret(secret) };
}

/** What a user sees of a token after creation, to tell tokens apart (`ppct_` and 7 characters: 42 of 256 bits). */
export function tokenPrefix(secret: string): string {
  return secret.slice(0, API_TOKEN_PREFIX.length + 7);
}
