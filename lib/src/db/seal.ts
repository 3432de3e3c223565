import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { ConfigError } from '../errors/index.ts';

/**
 * Secrets at rest (OAuth refresh tokens): AES-256-GCM under a keyring so keys can rotate. The sealed form
 * is `v1.<keyId>.<iv>.<ciphertext>.<tag>` (base64url parts); the key id and version are authenticated as
 * associated data, so a sealed value cannot be moved to another key id. New seals always use the current
 * (first) key; any key in the ring opens. Errors never include the plaintext or the key material.
 */

export interface Keyring {
  /** The key new seals use. */
  currentKeyId: string;
  keys: ReadonlyMap<string, Buffer>;
}

/** Bad `PPC_SECRET_KEY` configuration: names the variable, never the key material. */
export class KeyringConfigError extends Error {
  constructor(message: string) {
    super(`PPC_SECRET_KEY: ${message}`);
    this.name = 'KeyringConfigError';
  }
}

/** A sealed value that cannot be opened: unknown key id, malformed, or tampered with. */
export class SealedSecretError extends Error {
  readonly code: 'malformed' | 'unknown-key' | 'tampered';
  constructor(code: SealedSecretError['code'], message: string) {
    super(message);
    this.name = 'SealedSecretError';
    this.code = code;
  }
}

const KEY_ID = /^[A-Za-z0-9_-]{1,64}$/;
const VERSION = 'v1';

/** `PPC_SECRET_KEY` read at start: the keyring, or a ConfigError naming the variable (never echoing the keys). */
export function keyringFromEnv(value: string, variable = 'PPC_SECRET_KEY'): Keyring {
  try {
    return parseKeyring(value);
  } catch (err) {
    if (!(err instanceof KeyringConfigError)) throw err;
    throw new ConfigError(variable, '(hidden)', err.message.replace(/^PPC_SECRET_KEY: /, ''));
  }
}

/** Parses `kid1:base64key[,kid0:base64oldkey…]` (first is current); each key is 32 bytes. */
export function parseKeyring(value: string | undefined): Keyring {
  if (!value?.trim()) throw new KeyringConfigError('required: `keyId:base64key[,oldKeyId:base64key]` (32-byte keys)');
  const keys = new Map<string, Buffer>();
  let currentKeyId: string | undefined;
  for (const [i, entry] of value.split(',').entries()) {
    const sep = entry.indexOf(':');
    const kid = entry.slice(0, sep).trim();
    if (sep < 0 || !KEY_ID.test(kid)) {
      throw new KeyringConfigError(
        `entry ${i + 1}: expected \`keyId:base64key\` with a key id of letters, digits, _ or -`,
      );
    }
    const key = Buffer.from(entry.slice(sep + 1).trim(), 'base64');
    if (key.length !== 32) throw new KeyringConfigError(`key ${kid}: expected 32 bytes of base64, got ${key.length}`);
    if (keys.has(kid)) throw new KeyringConfigError(`key id ${kid} appears twice`);
    keys.set(kid, key);
    currentKeyId ??= kid;
  }
  return { currentKeyId: currentKeyId!, keys };
}

/** A fresh random 32-byte key as base64, for `PPC_SECRET_KEY`. */
export const generateKey = (): string => randomBytes(32).toString('base64');

const aad = (kid: string) => Buffer.from(`${VERSION}.${kid}`);

export function sealSecret(plaintext: string, keyring: Keyring): string {
  const kid = keyring.currentKeyId;
  const key = keyring.keys.get(kid);
  if (!key) throw new KeyringConfigError(`current key ${kid} is missing from the keyring`);
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(aad(kid));
  const ct = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
  return [
    VERSION,
    kid,
    iv.toString('base64url'),
    ct.toString('base64url'),
    cipher.getAuthTag().toString('base64url'),
  ].join('.');
}

/** The key id a sealed value was sealed with (for finding values to re-seal after a rotation). */
export function sealedKeyId(sealed: string): string {
  const parts = sealed.split('.');
  if (parts.length !== 5 || parts[0] !== VERSION || !KEY_ID.test(parts[1]!)) {
    throw new SealedSecretError('malformed', 'sealed secret is malformed');
  }
  return parts[1]!;
}

export function openSecret(sealed: string, keyring: Keyring): string {
  const kid = sealedKeyId(sealed);
  const [, , iv, ct, tag] = sealed.split('.') as [string, string, string, string, string];
  const key = keyring.keys.get(kid);
  if (!key) throw new SealedSecretError('unknown-key', `sealed with key ${kid}, which is not in the keyring`);
  const ivBuf = Buffer.from(iv, 'base64url');
  const tagBuf = Buffer.from(tag, 'base64url');
  if (ivBuf.length !== 12 || tagBuf.length !== 16)
    throw new SealedSecretError('malformed', 'sealed secret is malformed');
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, ivBuf);
    decipher.setAAD(aad(kid));
    decipher.setAuthTag(tagBuf);
    return Buffer.concat([decipher.update(Buffer.from(ct, 'base64url')), decipher.final()]).toString('utf8');
  } catch {
    // The cipher's own message is generic, but do not pass it through: nothing of the input leaks.
    throw new SealedSecretError('tampered', `sealed secret (key ${kid}) failed authentication: altered or wrong key`);
  }
}

/** True when the value was sealed with an older key and should be re-sealed with the current one. */
export const needsReseal = (sealed: string, keyring: Keyring): boolean => sealedKeyId(sealed) !== keyring.currentKeyId;
