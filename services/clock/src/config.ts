import { ConfigError } from '@ppc/lib/errors';
import { type ConfigOf, envVar } from '@ppc/lib/config';
import { baseEnv } from '@ppc/lib/service';
import { kvBuckets } from '@ppc/proto';
import { Type } from '@sinclair/typebox';
import { compileSchedules, isTimeZone, type Schedule, systemSchedules } from './schedules.ts';

export const clockEnv = {
  ...baseEnv({ port: 9105 }),
  leaseTtlMs: envVar({
    env: 'PPC_CLOCK_LEASE_TTL_MS',
    schema: Type.Integer({ minimum: 500, maximum: 60_000 }),
    default: kvBuckets.clockLease.ttlMs,
    doc: 'leader lease in milliseconds (500-60000); failover takes at most this plus a moment. Every replica must use the same value',
  }),
  timeZone: envVar({
    env: 'PPC_CLOCK_TIME_ZONE',
    schema: Type.String({ minLength: 1, maxLength: 100 }),
    default: 'UTC',
    doc: 'IANA time zone of the system schedules (send-digests fires at 07:00 there), e.g. Europe/Prague',
  }),
  systemSchedules: envVar({
    env: 'PPC_CLOCK_SYSTEM_SCHEDULES',
    schema: Type.Boolean(),
    default: true,
    doc: 'true or false: fire the built-in system schedules (enqueue-due-jobs, sync-accounts, send-digests, evaluate)',
  }),
  schedules: envVar({
    env: 'PPC_CLOCK_SCHEDULES',
    schema: Type.String(),
    default: '[]',
    doc: 'a JSON array of extra schedules, e.g. [{"name":"cleanup","target":"system","cron":"0 3 * * *","timeZone":"Europe/Prague","catchUp":"once"}]; one named like a system schedule replaces it',
  }),
};

export type ClockConfig = ConfigOf<typeof clockEnv>;

/**
 * The schedules this clock fires, validated: a bad time zone or JSON names its variable
 * (ConfigError), a bad schedule names the schedule (InvalidScheduleError).
 */
export function loadSchedules(config: ClockConfig): Schedule[] {
  if (!isTimeZone(config.timeZone)) {
    throw new ConfigError(clockEnv.timeZone.env, config.timeZone, `an IANA time zone (${clockEnv.timeZone.doc})`);
  }
  let configured: unknown;
  try {
    configured = JSON.parse(config.schedules);
  } catch (err) {
    throw new ConfigError(clockEnv.schedules.env, config.schedules, `valid JSON (${(err as Error).message})`);
  }
  if (!Array.isArray(configured)) {
    throw new ConfigError(clockEnv.schedules.env, config.schedules, 'a JSON array of schedules');
  }
  return compileSchedules(configured, config.systemSchedules ? systemSchedules(config.timeZone) : []);
}
