import { Type } from '@sinclair/typebox';
import { TOKEN_PATTERN } from '@ppc/proto';
import { envVar } from '../config/index.ts';

const LogLevel = Type.Union(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((l) => Type.Literal(l)));

/** Variables every service reads; `port` is the service's own default HTTP port. */
export function baseEnv(defaults: { port: number }) {
  return {
    natsUrl: envVar({
      env: 'NATS_URL',
      schema: Type.String({ minLength: 1, pattern: '^(nats|tls|ws|wss)://' }),
      default: 'nats://127.0.0.1:4222',
      doc: 'NATS server URL(s), comma separated, e.g. nats://127.0.0.1:4222',
    }),
    port: envVar({
      env: 'PORT',
      schema: Type.Integer({ minimum: 0, maximum: 65535 }),
      default: defaults.port,
      doc: 'HTTP port for /healthz, /readyz and /metrics (an integer 0-65535)',
    }),
    logLevel: envVar({
      env: 'LOG_LEVEL',
      schema: LogLevel,
      default: 'info' as const,
      doc: 'one of fatal, error, warn, info, debug, trace, silent',
    }),
    instanceId: envVar({
      env: 'PPC_INSTANCE_ID',
      schema: Type.String({ pattern: TOKEN_PATTERN }),
      default: '',
      doc: 'a unique id for this instance (letters, digits, _ and -); generated when unset',
    }),
    jetstreamReplicas: envVar({
      env: 'PPC_JETSTREAM_REPLICAS',
      schema: Type.Integer({ minimum: 1, maximum: 5 }),
      default: 1,
      doc: 'replicas of every stream, KV bucket and object store this service creates (3 on a 3-server cluster); the same in every service',
    }),
  };
}

export const regionEnv = {
  region: envVar({
    env: 'PPC_REGION',
    schema: Type.String({ pattern: '^[a-z0-9-]{1,32}$' }),
    default: 'local',
    doc: 'the worker region, lower-case letters, digits and - (e.g. eu-west)',
  }),
};

export const databaseEnv = {
  databaseUrl: envVar({
    env: 'DATABASE_URL',
    schema: Type.String({ pattern: '^postgres(ql)?://' }),
    default: 'postgres://postgres:postgres@127.0.0.1:54320/ppc',
    doc: 'a PostgreSQL URL, postgres://user:password@host:port/database',
    secret: true,
  }),
};
