import { loadConfig } from '@ppc/lib/config';
import { generateKey } from '@ppc/lib/db';
import { ConfigError } from '@ppc/lib/errors';
import { describe, expect, it } from 'vitest';
import { credentialsConfig, credentialsEnv } from './config.ts';

const key = generateKey();
const load = (env: Record<string, string>) => credentialsConfig(loadConfig(credentialsEnv, env));

describe('credentials config', () => {
  it('configures the demo platform by default and Google Ads only with a full OAuth client', () => {
    const demoOnly = load({ PPC_SECRET_KEY: `k1:${key}` });
    expect(demoOnly.keyring.currentKeyId).toBe('k1');
    expect(demoOnly.platforms.demo).toMatchObject({
      tokenUrl: 'http://127.0.0.1:9200/token',
      apiBaseUrl: 'http://127.0.0.1:9200',
      developerToken: 'demo',
    });
    expect(demoOnly.platforms['google-ads']).toBeUndefined();

    const both = load({
      PPC_SECRET_KEY: `k1:${key}`,
      PPC_GOOGLE_CLIENT_ID: 'id',
      PPC_GOOGLE_CLIENT_SECRET: 'secret',
      PPC_GOOGLE_DEVELOPER_TOKEN: 'dev',
      PPC_DEMO_PLATFORM_URL: 'http://demo.internal:9200/',
    });
    expect(both.platforms['google-ads']).toEqual({
      platform: 'google-ads',
      tokenUrl: 'https://oauth2.googleapis.com/token',
      clientId: 'id',
      clientSecret: 'secret',
      developerToken: 'dev',
      apiBaseUrl: 'https://googleads.googleapis.com',
    });
    expect(both.platforms.demo?.tokenUrl).toBe('http://demo.internal:9200/token');
  });

  it('names the missing variable of a Google OAuth client given in part', () => {
    const err = (() => {
      try {
        load({ PPC_SECRET_KEY: `k1:${key}`, PPC_GOOGLE_CLIENT_ID: 'id', PPC_GOOGLE_DEVELOPER_TOKEN: 'dev' });
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).variable).toBe('PPC_GOOGLE_CLIENT_SECRET');
  });

  it('requires PPC_SECRET_KEY and refuses a malformed one without echoing it', () => {
    expect(() => load({})).toThrow(/PPC_SECRET_KEY/);
    const bad = `k1:${Buffer.alloc(16).toString('base64')}`;
    try {
      load({ PPC_SECRET_KEY: bad });
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(ConfigError);
      expect((e as Error).message).toMatch(/PPC_SECRET_KEY.*32 bytes/);
      expect((e as Error).message).not.toContain(bad);
    }
  });
});
