import { Type } from '@sinclair/typebox';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../errors/index.ts';
import { baseEnv, databaseEnv, regionEnv } from '../service/env.ts';
import { envVar, loadConfig } from './index.ts';

const spec = { ...baseEnv({ port: 9101 }), ...regionEnv, ...databaseEnv };

function configErrorOf(env: Record<string, string>): ConfigError {
  try {
    loadConfig(spec, env);
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error('expected a ConfigError');
}

describe('loadConfig', () => {
  it('gives typed defaults and converts values', () => {
    const c = loadConfig(spec, { PORT: '7000', PPC_REGION: 'eu-west' });
    expect(c.port).toBe(7000);
    expect(c.region).toBe('eu-west');
    expect(c.natsUrl).toBe('nats://127.0.0.1:4222');
    expect(c.logLevel).toBe('info');
    expect(Object.isFrozen(c)).toBe(true);
  });

  it('stops on a malformed variable, naming it, its value and what was expected', () => {
    const err = configErrorOf({ PORT: 'eighty' });
    expect(err.variable).toBe('PORT');
    expect(err.message).toMatch(/^PORT="eighty": expected HTTP port .*an integer 0-65535/);
    expect(configErrorOf({ PPC_REGION: 'EU West' }).message).toMatch(
      /^PPC_REGION="EU West": expected the worker region/,
    );
    expect(configErrorOf({ LOG_LEVEL: 'loud' }).variable).toBe('LOG_LEVEL');
  });

  it('stops on an unknown PPC_ variable, a likely typo', () => {
    const err = configErrorOf({ PPC_REIGON: 'eu' });
    expect(err.variable).toBe('PPC_REIGON');
    expect(err.message).toMatch(/expected a known variable \(this service reads: .*PPC_REGION/);
  });

  it('never echoes a secret value', () => {
    const err = configErrorOf({ DATABASE_URL: 'mysql://root:hunter2@db/x' });
    expect(err.variable).toBe('DATABASE_URL');
    expect(err.message).not.toContain('hunter2');
    expect(err.message).toContain('(hidden)');
  });

  it('requires a variable without a default', () => {
    const required = { token: envVar({ env: 'API_TOKEN', schema: Type.String({ minLength: 1 }), doc: 'the token' }) };
    expect(() => loadConfig(required, {})).toThrow(/API_TOKEN.*the token \(required\)/);
  });
});
