import type { Static, TSchema } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { Value } from '@sinclair/typebox/value';
import { ConfigError } from '../errors/index.ts';

export interface EnvVar<S extends TSchema = TSchema> {
  env: string;
  schema: S;
  default?: Static<S>;
  /** Shown in errors and docs. */
  doc: string;
  /** Never echoed back in errors or logs. */
  secret?: boolean;
}

export type EnvSpec = Record<string, EnvVar>;
export type ConfigOf<S extends EnvSpec> = {
  readonly [K in keyof S]: S[K] extends EnvVar<infer T> ? Static<T> : never;
};

export const envVar = <S extends TSchema>(v: EnvVar<S>): EnvVar<S> => v;

/** Our own variables share this prefix; one we do not know is a typo worth stopping for. */
const OWN_PREFIX = 'PPC_';

/**
 * Reads the environment once into a typed, frozen config object. A malformed or unknown
 * variable throws ConfigError naming the variable, the value and what was expected.
 */
export function loadConfig<S extends EnvSpec>(spec: S, env: Record<string, string | undefined>): ConfigOf<S> {
  const out: Record<string, unknown> = {};
  const known = new Set(Object.values(spec).map((v) => v.env));
  for (const name of Object.keys(env)) {
    if (name.startsWith(OWN_PREFIX) && !known.has(name)) {
      throw new ConfigError(name, env[name], `a known variable (this service reads: ${[...known].sort().join(', ')})`);
    }
  }
  for (const [key, v] of Object.entries(spec)) {
    const raw = env[v.env];
    const shown = v.secret ? '(hidden)' : raw;
    if (raw === undefined || raw === '') {
      if (v.default === undefined) throw new ConfigError(v.env, undefined, `${v.doc} (required)`);
      out[key] = v.default;
      continue;
    }
    const converted = Value.Convert(v.schema, raw);
    const check = TypeCompiler.Compile(v.schema);
    if (!check.Check(converted)) {
      const why = check.Errors(converted).First()?.message ?? 'invalid';
      throw new ConfigError(v.env, shown, `${v.doc} (${why})`);
    }
    out[key] = converted;
  }
  return Object.freeze(out) as ConfigOf<S>;
}
