import { envVar } from '@ppc/lib/config';
import { ConfigError } from '@ppc/lib/errors';
import type { Logger } from '@ppc/lib/log';
import { type Mailer, mailEnv } from '@ppc/lib/mail';
import type { Database as MikroORM } from '@ppc/lib/db';
import { Type } from '@sinclair/typebox';
import type { Registry } from 'prom-client';

/** What the system service reads for notifications: `SMTP_URL`, `MAIL_FROM` and `PPC_PUBLIC_URL`. */
export const notifyEnv = {
  ...mailEnv,
  publicUrl: envVar({
    env: 'PPC_PUBLIC_URL',
    schema: Type.String({ pattern: '^https?://[^/?#]+(/[^?#]*)?$' }),
    default: 'http://127.0.0.1:8080',
    doc: 'where users open the UI (http:// or https://, no query); links in e-mails start with it',
  }),
};

export interface NotifierConfig {
  /** Links in e-mails are `<publicUrl>/runs/<runId>` and the like; a trailing slash is dropped. */
  publicUrl: string;
  /**
   * A claim (a `pending` notification log row) is its sender's for this long; after that its sender is
   * presumed dead and the next delivery of the same notification takes it over. Longer than a send can take
   * (the mailer gives up on one after 60 s). Default 2 min.
   */
  leaseMs?: number;
  /** How long to wait before trying again when the SMTP server is unavailable, by delivery (the last repeats). */
  retryDelaysMs?: readonly number[];
  /**
   * How long a `succeeded` event waits for the run recorder to catch up before its recovery is decided: this
   * times the delivery count, per delivery (default 1 s: up to 45 s over the consumer's 10 deliveries).
   */
  projectionWaitMs?: number;
  /** Failed runs listed in a digest (the counts include all). Default 20. */
  digestFailuresListed?: number;
}

export interface ResolvedNotifierConfig {
  publicUrl: string;
  leaseMs: number;
  retryDelaysMs: readonly number[];
  projectionWaitMs: number;
  digestFailuresListed: number;
}

/** The parts every notification function needs; built once in the service and passed down. */
export interface NotifyDeps {
  orm: MikroORM;
  mailer: Mailer;
  config: NotifierConfig;
  log: Logger;
  /** Counts `ppc_notifications_total{kind, outcome}` when given. */
  metrics?: Registry;
}

const positive = (name: string, v: number) => {
  if (!Number.isFinite(v) || v <= 0) throw new ConfigError(name, String(v), 'a positive number of milliseconds');
  return v;
};

/** Validates and fills in defaults; throws `ConfigError` naming the field. */
export function resolveNotifierConfig(c: NotifierConfig): ResolvedNotifierConfig {
  let url: URL;
  try {
    url = new URL(c.publicUrl);
  } catch {
    throw new ConfigError('publicUrl', c.publicUrl, 'an http:// or https:// URL');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new ConfigError('publicUrl', c.publicUrl, 'an http:// or https:// URL');
  }
  if (url.search || url.hash) throw new ConfigError('publicUrl', c.publicUrl, 'a URL without query or fragment');
  const retryDelaysMs = c.retryDelaysMs ?? [5_000, 30_000, 120_000, 300_000];
  if (retryDelaysMs.length === 0) throw new ConfigError('retryDelaysMs', '[]', 'at least one delay');
  for (const [i, d] of retryDelaysMs.entries()) positive(`retryDelaysMs[${i}]`, d);
  const digestFailuresListed = c.digestFailuresListed ?? 20;
  if (!Number.isInteger(digestFailuresListed) || digestFailuresListed < 0) {
    throw new ConfigError('digestFailuresListed', String(digestFailuresListed), 'an integer >= 0');
  }
  return {
    publicUrl: url.toString().replace(/\/+$/, ''),
    leaseMs: positive('leaseMs', c.leaseMs ?? 120_000),
    retryDelaysMs,
    projectionWaitMs: positive('projectionWaitMs', c.projectionWaitMs ?? 1_000),
    digestFailuresListed,
  };
}

/** The nak delay after the `deliveryCount`-th delivery failed to reach the SMTP server. */
export const retryDelay = (c: ResolvedNotifierConfig, deliveryCount: number): number =>
  c.retryDelaysMs[Math.min(Math.max(deliveryCount, 1), c.retryDelaysMs.length) - 1]!;
