import { pino, type Logger } from 'pino';

export type { Logger };

/** Keys whose values must never reach a log line, wherever they sit in an object. */
export const REDACTED_KEYS = [
  'accessToken',
  'refreshToken',
  'password',
  'secret',
  'token',
  'authorization',
  'cookie',
  'developerToken',
];

export function createLogger(opts: { service: string; instanceId?: string; level?: string }): Logger {
  return pino({
    level: opts.level ?? 'info',
    base: { service: opts.service, instance: opts.instanceId },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: {
      paths: REDACTED_KEYS.flatMap((k) => [k, `*.${k}`, `*.*.${k}`]),
      censor: '[redacted]',
    },
  });
}
