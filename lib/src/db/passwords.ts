import { argon2, randomBytes, timingSafeEqual } from 'node:crypto';

/** OWASP's argon2id minimum (19 MiB, 2 passes, 1 lane); stored in the hash, so raising it later is safe. */
export const ARGON2_DEFAULTS = { memory: 19_456, passes: 2, parallelism: 1, tagLength: 32 } as const;

const b64 = (b: Buffer) => b.toString('base64').replace(/=+$/, '');

function derive(
  password: string,
  salt: Buffer,
  p: { memory: number; passes: number; parallelism: number; tagLength: number },
) {
  return new Promise<Buffer>((resolve, reject) =>
    argon2('argon2id', { message: password, nonce: salt, ...p }, (err, key) => (err ? reject(err) : resolve(key))),
  );
}

/** An argon2id hash in PHC string form (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`), with Node's built-in argon2. */
export async function hashPassword(password: string, params = ARGON2_DEFAULTS): Promise<string> {
  const salt = randomBytes(16);
  const key = await derive(password, salt, params);
  return `$argon2id$v=19$m=${params.memory},t=${params.passes},p=${params.parallelism}$${b64(salt)}$${b64(key)}`;
}

const PHC = /^\$argon2id\$v=19\$m=(\d+),t=(\d+),p=(\d+)\$([A-Za-z0-9+/]+)\$([A-Za-z0-9+/]+)$/;

/** True when `password` matches `hash`; false for a wrong password or a hash this code did not produce. */
export async function verifyPassword(password: string, hash: string): Promise<boolean> {
  const m = PHC.exec(hash);
  if (!m) return false;
  const expected = Buffer.from(m[5]!, 'base64');
  const params = { memory: Number(m[1]), passes: Number(m[2]), parallelism: Number(m[3]), tagLength: expected.length };
  const key = await derive(password, Buffer.from(m[4]!, 'base64'), params);
  return key.length === expected.length && timingSafeEqual(key, expected);
}
