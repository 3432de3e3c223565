import { describe, expect, it } from 'vitest';
import {
  generateKey,
  KeyringConfigError,
  needsReseal,
  openSecret,
  parseKeyring,
  SealedSecretError,
  sealedKeyId,
  sealSecret,
} from './seal.ts';

const k1 = generateKey();
const k0 = generateKey();
const SECRET = '1//0refresh-token-PLAINTEXT-ünïcode';

/** Every way the secret could show up in text: as is, and in the encodings a sealed form uses. */
const forms = (s: string) => [
  s,
  Buffer.from(s).toString('base64'),
  Buffer.from(s).toString('base64url'),
  Buffer.from(s).toString('hex'),
];

describe('sealing secrets', () => {
  it('round-trips with the current key and never shows the plaintext in the sealed form', () => {
    const ring = parseKeyring(`kid1:${k1}`);
    const sealed = sealSecret(SECRET, ring);
    expect(sealed).toMatch(/^v1\.kid1\.[\w-]+\.[\w-]+\.[\w-]+$/);
    for (const f of forms(SECRET)) expect(sealed).not.toContain(f);
    expect(openSecret(sealed, ring)).toBe(SECRET);
    // A fresh IV each time: sealing twice never gives the same text.
    expect(sealSecret(SECRET, ring)).not.toBe(sealed);
  });

  it('detects tampering with the ciphertext, the tag, the IV or the key id, without echoing the secret', () => {
    const ring = parseKeyring(`kid1:${k1},kid0:${k0}`);
    const sealed = sealSecret(SECRET, ring);
    const parts = sealed.split('.');
    const flip = (s: string) => {
      const b = Buffer.from(s, 'base64url');
      b[0] = b[0]! ^ 1;
      return b.toString('base64url');
    };
    const tampered = [
      [parts[0], parts[1], parts[2], flip(parts[3]!), parts[4]],
      [parts[0], parts[1], parts[2], parts[3], flip(parts[4]!)],
      [parts[0], parts[1], flip(parts[2]!), parts[3], parts[4]],
      [parts[0], 'kid0', parts[2], parts[3], parts[4]],
    ].map((p) => p.join('.'));
    for (const t of tampered) {
      let caught: unknown;
      try {
        openSecret(t, ring);
      } catch (err) {
        caught = err;
      }
      expect(caught).toBeInstanceOf(SealedSecretError);
      expect((caught as SealedSecretError).code).toBe('tampered');
      const text = `${(caught as Error).message} ${(caught as Error).stack} ${JSON.stringify(caught)}`;
      for (const f of forms(SECRET)) expect(text).not.toContain(f);
      expect(text).not.toContain(k1);
    }
    expect(() => openSecret('not-a-sealed-value', ring)).toThrow(expect.objectContaining({ code: 'malformed' }));
  });

  it('rotates: the old key still opens, new seals use the current key, an unknown key id is refused', () => {
    const old = parseKeyring(`kid0:${k0}`);
    const sealedOld = sealSecret(SECRET, old);
    const rotated = parseKeyring(`kid1:${k1},kid0:${k0}`);
    expect(openSecret(sealedOld, rotated)).toBe(SECRET);
    expect(needsReseal(sealedOld, rotated)).toBe(true);
    const resealed = sealSecret(openSecret(sealedOld, rotated), rotated);
    expect(sealedKeyId(resealed)).toBe('kid1');
    expect(needsReseal(resealed, rotated)).toBe(false);
    // Once the old key is dropped, what it sealed no longer opens, with a reason naming the key id.
    const dropped = parseKeyring(`kid1:${k1}`);
    expect(openSecret(resealed, dropped)).toBe(SECRET);
    expect(() => openSecret(sealedOld, dropped)).toThrow(/sealed with key kid0, which is not in the keyring/);
  });

  it('rejects bad PPC_SECRET_KEY values naming the variable and never the key', () => {
    const short = Buffer.alloc(16, 7).toString('base64');
    const cases = [undefined, '', 'nokey', `bad id!:${k1}`, `k:${short}`, `k:${k1},k:${k0}`];
    for (const c of cases) {
      let caught: unknown;
      try {
        parseKeyring(c);
      } catch (err) {
        caught = err;
      }
      expect(caught).toBeInstanceOf(KeyringConfigError);
      expect((caught as Error).message).toMatch(/^PPC_SECRET_KEY: /);
      expect((caught as Error).message).not.toContain(short);
      expect((caught as Error).message).not.toContain(k1);
    }
    expect(parseKeyring(` a:${k1} , b:${k0}`).currentKeyId).toBe('a');
  });
});
