import nodemailer from 'nodemailer';
import type { NodemailerError, SMTPPoolOptions } from 'nodemailer';
import { ConfigError, PermanentError, RetryableError } from '../errors/index.ts';
import { isEmailAddress, parseMailbox } from './address.ts';

/** How the mailer reaches its SMTP server; validated by `createMailer`. */
export interface MailerConfig {
  /**
   * `smtp://[user[:password]@]host[:port]` (port 587 by default; STARTTLS when the server offers it) or
   * `smtps://…` (TLS from the first byte, port 465 by default). Query options: `requireTLS`, `ignoreTLS`,
   * `rejectUnauthorized` (each `true` or `false`).
   */
  url: string;
  /** The From header: `address` or `Display Name <address>`. */
  from: string;
  /** Pooled connections; default 2. */
  maxConnections?: number;
  /** TCP (and TLS) connect; default 10 s. */
  connectionTimeoutMs?: number;
  /** Wait for the server's greeting; default 10 s. */
  greetingTimeoutMs?: number;
  /** Inactivity on an open connection; default 30 s. */
  socketTimeoutMs?: number;
  /** One message from queueing to the server's final reply; default 60 s. */
  sendTimeoutMs?: number;
  /** A pooled connection idle this long is closed; default 30 s. */
  idleTimeoutMs?: number;
}

export interface OutgoingMail {
  to: string | readonly string[];
  subject: string;
  /** The plain-text part. */
  text: string;
  /** The HTML part; the caller escapes what it interpolates. */
  html: string;
  /** A stable Message-ID (`<id@host>`), so a message sent twice can be recognised downstream. */
  messageId?: string;
  headers?: Record<string, string>;
}

export interface SentMail {
  messageId: string;
  accepted: string[];
  /** Recipients the server refused while accepting the message for the others. */
  rejected: string[];
  /** The server's final reply. */
  response: string;
}

export interface Mailer {
  readonly from: string;
  /** Where it sends to, with any password masked (for logs and heartbeats). */
  readonly describe: string;
  /**
   * Sends one message. Rejects with `RetryableError` when trying again later can help (connection refused or
   * dropped, timeouts, 4xx replies, aborted by `signal`) and with `PermanentError` when it cannot (5xx
   * replies other than 503, authentication refused, a message the server or nodemailer cannot take).
   */
  send(mail: OutgoingMail, opts?: { signal?: AbortSignal }): Promise<SentMail>;
  /** Connects and authenticates without sending (start-up check); rejects like `send`. */
  verify(): Promise<void>;
  /** Closes idle pooled connections now, busy ones after their message. */
  close(): void;
}

const DEFAULTS = {
  maxConnections: 2,
  connectionTimeoutMs: 10_000,
  greetingTimeoutMs: 10_000,
  socketTimeoutMs: 30_000,
  sendTimeoutMs: 60_000,
  idleTimeoutMs: 30_000,
};

const BOOLEAN_QUERY = ['requireTLS', 'ignoreTLS', 'rejectUnauthorized'] as const;

/** The URL with its password masked, for messages and logs. */
export function maskSmtpUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '(not a URL)';
  }
}

function transportOptions(config: MailerConfig): SMTPPoolOptions & { pool: true } {
  const shown = maskSmtpUrl(config.url);
  const expected = 'smtp://[user[:password]@]host[:port] or smtps://…';
  let u: URL;
  try {
    u = new URL(config.url);
  } catch {
    throw new ConfigError('url', shown, `${expected} (not a URL)`);
  }
  if (u.protocol !== 'smtp:' && u.protocol !== 'smtps:') {
    throw new ConfigError('url', shown, `${expected} (scheme ${u.protocol} is not smtp: or smtps:)`);
  }
  if (!u.hostname) throw new ConfigError('url', shown, `${expected} (no host)`);
  if (u.pathname !== '' && u.pathname !== '/') throw new ConfigError('url', shown, `${expected} (no path)`);
  const secure = u.protocol === 'smtps:';
  const flags: Partial<Record<(typeof BOOLEAN_QUERY)[number], boolean>> = {};
  for (const [key, value] of u.searchParams) {
    if (!(BOOLEAN_QUERY as readonly string[]).includes(key)) {
      throw new ConfigError('url', shown, `${expected} (unknown option ${key}; known: ${BOOLEAN_QUERY.join(', ')})`);
    }
    if (value !== 'true' && value !== 'false') {
      throw new ConfigError('url', shown, `${expected} (${key} must be true or false)`);
    }
    flags[key as (typeof BOOLEAN_QUERY)[number]] = value === 'true';
  }
  const pick = (key: keyof typeof DEFAULTS): number => {
    const v = config[key] ?? DEFAULTS[key];
    if (!Number.isInteger(v) || v <= 0) throw new ConfigError(key, String(v), 'a positive integer');
    return v;
  };
  const user = decodeURIComponent(u.username);
  return {
    pool: true,
    host: u.hostname.replace(/^\[(.*)\]$/, '$1'),
    port: u.port ? Number(u.port) : secure ? 465 : 587,
    secure,
    requireTLS: flags.requireTLS,
    ignoreTLS: flags.ignoreTLS,
    tls: flags.rejectUnauthorized === undefined ? undefined : { rejectUnauthorized: flags.rejectUnauthorized },
    auth: user ? { user, pass: decodeURIComponent(u.password) } : undefined,
    maxConnections: pick('maxConnections'),
    connectionTimeout: pick('connectionTimeoutMs'),
    greetingTimeout: pick('greetingTimeoutMs'),
    socketTimeout: pick('socketTimeoutMs'),
    idleTimeout: pick('idleTimeoutMs'),
    // A message whose connection dropped mid-send fails at once: the caller's queue owns retries, so a
    // message is never retried behind its back after the caller has given up on it.
    maxRequeues: 0,
    disableFileAccess: true,
    disableUrlAccess: true,
    logger: false,
  };
}

/** Connection-level failures: the message never reached a server that could judge it. */
const CONNECTION_CODES = new Set(['ECONNECTION', 'ETIMEDOUT', 'ESOCKET', 'EDNS', 'ETLS', 'EPROXY', 'EPROTOCOL']);

/** Maps a nodemailer failure to the project's typed errors (see `Mailer.send`). */
export function toMailError(err: unknown): RetryableError | PermanentError {
  if (err instanceof RetryableError || err instanceof PermanentError) return err;
  const e = err as NodemailerError;
  const detail = e?.response ?? e?.message ?? String(err);
  if (e?.name === 'AbortError' || e?.code === 'EABORT') {
    return new RetryableError(`sending aborted (timed out or shutting down): ${detail}`, {
      code: 'SMTP_ABORTED',
      cause: err,
    });
  }
  if (typeof e?.responseCode === 'number') {
    // nodemailer judges the reply class (5xx except 503 is final); older replies without the flag by code.
    const permanent = e.permanent ?? (e.responseCode >= 500 && e.responseCode !== 503);
    const what = e.code === 'EAUTH' ? 'refused the login' : 'refused the message';
    const code = e.code === 'EAUTH' ? 'SMTP_AUTH' : permanent ? 'SMTP_REJECTED' : 'SMTP_DEFERRED';
    const message = `SMTP server ${what}${e.command ? ` at ${e.command}` : ''}: ${detail}`;
    return permanent
      ? new PermanentError(message, { code, cause: err })
      : new RetryableError(message, { code, cause: err });
  }
  if (e?.code && CONNECTION_CODES.has(e.code)) {
    return new RetryableError(`SMTP server unavailable (${e.originalCode ?? e.code}): ${detail}`, {
      code: 'SMTP_UNAVAILABLE',
      cause: err,
    });
  }
  if (e?.code === 'EAUTH' || e?.code === 'ENOAUTH') {
    return new PermanentError(`SMTP login failed: ${detail}`, { code: 'SMTP_AUTH', cause: err });
  }
  if (e?.code === 'EENVELOPE' || e?.code === 'EMESSAGE' || e?.code === 'ECONFIG' || e?.code === 'EMAXRECIPIENTS') {
    return new PermanentError(`message cannot be sent: ${detail}`, { code: 'MAIL_INVALID', cause: err });
  }
  // Unknown failures are retried: a bug fixed by a redeploy should not lose the mail.
  return new RetryableError(`sending failed: ${detail}`, { code: 'SMTP_UNAVAILABLE', cause: err });
}

const addressText = (a: string | { address?: string }) => (typeof a === 'string' ? a : (a.address ?? ''));

/** A pooled SMTP mailer (see `MailerConfig`); throws `ConfigError` naming the field on bad config. */
export function createMailer(config: MailerConfig): Mailer {
  const options = transportOptions(config);
  if (!parseMailbox(config.from)) {
    throw new ConfigError('from', config.from, 'an address or "Display Name <address>", e.g. ppc-robot@example.com');
  }
  const sendTimeoutMs = config.sendTimeoutMs ?? DEFAULTS.sendTimeoutMs;
  const transport = nodemailer.createTransport(options);
  return {
    from: config.from,
    describe: maskSmtpUrl(config.url),
    async send(mail, opts = {}) {
      const to = typeof mail.to === 'string' ? [mail.to] : [...mail.to];
      const bad = to.find((a) => !isEmailAddress(a));
      if (to.length === 0) throw new PermanentError('to: at least one recipient is needed', { code: 'MAIL_INVALID' });
      if (bad !== undefined) {
        throw new PermanentError(`to: ${JSON.stringify(bad)} is not an e-mail address`, { code: 'MAIL_INVALID' });
      }
      const timeout = AbortSignal.timeout(sendTimeoutMs);
      try {
        const info = await transport.sendMail({
          from: config.from,
          to,
          subject: mail.subject,
          text: mail.text,
          html: mail.html,
          messageId: mail.messageId,
          headers: mail.headers,
          signal: opts.signal ? AbortSignal.any([opts.signal, timeout]) : timeout,
        });
        return {
          messageId: info.messageId,
          accepted: (info.accepted ?? []).map(addressText),
          rejected: (info.rejected ?? []).map(addressText),
          response: String(info.response ?? ''),
        };
      } catch (err) {
        throw toMailError(err);
      }
    },
    async verify() {
      try {
        await transport.verify();
      } catch (err) {
        throw toMailError(err);
      }
    },
    close() {
      transport.close();
    },
  };
}
