import type { MikroORM } from '@mikro-orm/postgresql';
import { CredentialErrorCode } from '@ppc/lib/credentials';
import { PermanentError, RetryableError } from '@ppc/lib/errors';
import type { Logger } from '@ppc/lib/log';
import { messageHeaders, type NatsConnection } from '@ppc/lib/nats';
import {
  type CredentialReply,
  CredentialReplyMsg,
  type CredentialRequest,
  CredentialRequestMsg,
  type MessageDef,
  MessageValidationError,
  subjects,
} from '@ppc/proto';
import type { Msg } from '@nats-io/transport-node';
import { Counter, type Registry } from 'prom-client';
import { AccessTokens, type AccessTokensOptions } from './access-tokens.ts';
import { authorizeRun } from './authorize.ts';
import type { CredentialsConfig } from './config.ts';
import type { OnConnectionRevoked } from './revocation.ts';

/** Every system replica subscribes in this queue group, so each request is answered by exactly one of them. */
export const CREDENTIALS_QUEUE = 'credential-broker';

/** The parts of the service context the broker uses (`ServiceContext` plus the ORM and the broker's config). */
export interface CredentialBrokerDeps {
  nc: NatsConnection;
  orm: MikroORM;
  log: Logger;
  config: CredentialsConfig;
  metrics?: Registry;
}

export interface CredentialBrokerOptions {
  /** The token cache to use; by default one is made from `config`. Share it with sync-accounts. */
  tokens?: AccessTokens;
  /** Settings of the token cache made when `tokens` is not given. */
  tokenOptions?: Omit<AccessTokensOptions, 'orm' | 'config' | 'log' | 'onConnectionRevoked'>;
  /** Passed to the token cache made here: called once per connection that becomes revoked. */
  onConnectionRevoked?: OnConnectionRevoked;
  /** Requests handled at once by this replica; the rest wait in the subscription. Default 64. */
  maxInFlight?: number;
  /** Queue group; default {@link CREDENTIALS_QUEUE}. */
  queue?: string;
}

export interface CredentialBrokerStats {
  received: number;
  granted: number;
  refused: Record<string, number>;
  inFlight: number;
}

export interface CredentialBroker {
  readonly tokens: AccessTokens;
  stats(): CredentialBrokerStats;
  /** Stops taking requests, answers those already taken. */
  stop(): Promise<void>;
}

// Annotated so `assert` narrows (an assertion's target needs an explicit type).
const requestDef: MessageDef<typeof CredentialRequest> = CredentialRequestMsg;
const replyDef: MessageDef<typeof CredentialReply> = CredentialReplyMsg;
const decoder = new TextDecoder();
const INTERNAL_RETRY_MS = 5_000;
const MAX_MESSAGE = 2000;

function parseRequest(data: Uint8Array): CredentialRequest {
  let body: unknown;
  try {
    body = JSON.parse(decoder.decode(data));
  } catch {
    throw new PermanentError('credential request: (body): not JSON', { code: CredentialErrorCode.InvalidRequest });
  }
  try {
    requestDef.assert(body);
  } catch (err) {
    if (!(err instanceof MessageValidationError)) throw err;
    throw new PermanentError(`credential request: ${err.field || '(body)'}: ${err.reason}`, {
      code: CredentialErrorCode.InvalidRequest,
    });
  }
  return body;
}

function refusal(err: unknown): Extract<CredentialReply, { ok: false }> {
  const message = (err as Error).message.slice(0, MAX_MESSAGE);
  if (err instanceof RetryableError) {
    return {
      ok: false,
      code: err.code,
      message,
      retryable: true,
      ...(err.retryAfterMs !== undefined && { retryAfterMs: Math.max(0, Math.round(err.retryAfterMs)) }),
    };
  }
  if (err instanceof PermanentError) return { ok: false, code: err.code, message, retryable: false };
  return {
    ok: false,
    code: CredentialErrorCode.Internal,
    message: 'credential broker: internal error',
    retryable: true,
    retryAfterMs: INTERNAL_RETRY_MS,
  };
}

/**
 * The credential broker: answers `credentials.request.v1` on `svc.credentials.token` (core NATS request-reply, in
 * queue group {@link CREDENTIALS_QUEUE}) with a short-lived access token for a run's account, never the refresh
 * token, which does not leave this service.
 *
 * For each request: validate the body (refused with `CREDENTIALS_INVALID_REQUEST` naming the field); check the run
 * is queued or running and reads this account through this connection, all in one organization (`RUN_NOT_FOUND`,
 * `RUN_NOT_ACTIVE`, `ACCOUNT_MISMATCH`, `CONNECTION_MISMATCH`); take the connection's token from the shared
 * {@link AccessTokens} cache, refreshing it at the platform's token endpoint when needed. The grant carries the
 * platform's API base URL and developer token. A refusal carries the code of the typed error behind it and whether
 * to retry (`ADS_AUTH` for a revoked grant, `ADS_UNAVAILABLE`/`ADS_RATE_LIMITED` with `retryAfterMs` for a failing
 * token endpoint). Handlers run concurrently up to `maxInFlight`.
 */
export async function startCredentialBroker(
  deps: CredentialBrokerDeps,
  opts: CredentialBrokerOptions = {},
): Promise<CredentialBroker> {
  const { nc, orm, log } = deps;
  const tokens =
    opts.tokens ??
    new AccessTokens({
      ...opts.tokenOptions,
      orm,
      config: deps.config,
      log,
      ...(opts.onConnectionRevoked && { onConnectionRevoked: opts.onConnectionRevoked }),
    });
  const maxInFlight = opts.maxInFlight ?? 64;
  const stats: CredentialBrokerStats = { received: 0, granted: 0, refused: {}, inFlight: 0 };
  const counter = deps.metrics && requestsCounter(deps.metrics);

  async function answer(m: Msg): Promise<void> {
    let reply: CredentialReply;
    let req: CredentialRequest | undefined;
    try {
      req = parseRequest(m.data);
      const run = await authorizeRun(orm, req);
      const grant = await tokens.get(run.connection, { force: req.force === true });
      reply = {
        ok: true,
        platform: req.platform,
        accessToken: grant.accessToken,
        expiresAt: new Date(grant.expiresAt).toISOString(),
        apiBaseUrl: grant.endpoint.apiBaseUrl,
        developerToken: grant.endpoint.developerToken,
        platformAccountId: run.platformAccountId,
        accountTimeZone: run.timeZone,
        accountCurrency: run.currency,
        ...(run.loginCustomerId && { loginCustomerId: run.loginCustomerId }),
      };
    } catch (err) {
      reply = refusal(err);
      const typed = err instanceof PermanentError || err instanceof RetryableError;
      log[typed ? 'warn' : 'error'](
        { runId: req?.runId, connectionId: req?.connectionId, code: reply.code, err: (err as Error).message },
        typed ? 'credential request refused' : 'credential broker failed',
      );
    }
    try {
      replyDef.assert(reply);
    } catch (err) {
      log.error({ err: (err as Error).message, runId: req?.runId }, 'credential broker built an invalid reply');
      reply = refusal(new Error('invalid reply'));
    }
    if (reply.ok) stats.granted += 1;
    else stats.refused[reply.code] = (stats.refused[reply.code] ?? 0) + 1;
    counter?.inc({ outcome: reply.ok ? 'granted' : reply.code });
    m.respond(JSON.stringify(reply), { headers: messageHeaders(CredentialReplyMsg.type, undefined) });
  }

  const sub = nc.subscribe(subjects.credentialsToken, { queue: opts.queue ?? CREDENTIALS_QUEUE });
  const inFlight = new Set<Promise<void>>();
  const loop = (async () => {
    for await (const m of sub) {
      stats.received += 1;
      if (!m.reply) {
        log.debug('credential request without a reply subject, ignored');
        continue;
      }
      const p: Promise<void> = answer(m)
        .catch((err: unknown) => log.error({ err: (err as Error).message }, 'credential reply not sent'))
        .finally(() => {
          inFlight.delete(p);
          stats.inFlight = inFlight.size;
        });
      inFlight.add(p);
      stats.inFlight = inFlight.size;
      if (inFlight.size >= maxInFlight) await Promise.race(inFlight);
    }
  })();
  // Registered at the server before we say we are up: a request sent right after start finds a responder.
  await nc.flush();
  log.info({ subject: subjects.credentialsToken, queue: opts.queue ?? CREDENTIALS_QUEUE }, 'credential broker up');

  let stopped: Promise<void> | undefined;
  return {
    tokens,
    stats: () => ({ ...stats, refused: { ...stats.refused } }),
    stop: () =>
      (stopped ??= (async () => {
        if (!nc.isClosed()) await sub.drain().catch(() => sub.unsubscribe());
        await loop;
        await Promise.allSettled([...inFlight]);
      })()),
  };
}

function requestsCounter(registry: Registry): Counter<'outcome'> {
  const name = 'ppc_credential_requests_total';
  return (
    (registry.getSingleMetric(name) as Counter<'outcome'> | undefined) ??
    new Counter({
      name,
      help: 'Credential broker requests answered, by outcome (granted, or the refusal code)',
      labelNames: ['outcome'],
      registers: [registry],
    })
  );
}
