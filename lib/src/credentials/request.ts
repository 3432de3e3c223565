import {
  type CredentialReply,
  CredentialReplyMsg,
  type CredentialRequest,
  CredentialRequestMsg,
  type MessageDef,
  MessageValidationError,
  subjects,
} from '@ppc/proto';
import { NoRespondersError, RequestError, TimeoutError } from '@nats-io/transport-node';
import { PermanentError, RetryableError } from '../errors/index.ts';
import type { NatsConnection } from '../nats/connect.ts';
import { messageHeaders } from '../nats/publish.ts';
import { CredentialErrorCode } from './codes.ts';

/** A granted short-lived access token: `credentials.reply.v1` with `ok: true`. Never holds a refresh token. */
export type CredentialGrant = Extract<CredentialReply, { ok: true }>;

export interface RequestAccessTokenOptions {
  /** How long to wait for the broker's answer; default 10 s (a refresh at the platform may take a few seconds). */
  timeoutMs?: number;
  /** Aborting rejects at once with the signal's reason (an `AbortError` by default), never a typed error. */
  signal?: AbortSignal;
  /** Traceparent of the task this request serves. */
  traceparent?: string;
}

/** How long a worker waits before asking again when no broker is running at all. */
const NO_RESPONDERS_RETRY_MS = 5_000;

// Annotated so their `assert` narrows (TS needs an explicit type on an assertion's target).
const requestDef: MessageDef<typeof CredentialRequest> = CredentialRequestMsg;
const replyDef: MessageDef<typeof CredentialReply> = CredentialReplyMsg;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * Asks the credential broker (core NATS request-reply on `svc.credentials.token`, never stored in a stream) for a
 * short-lived access token for a run's account.
 *
 * Resolves with the grant, or throws:
 * - `PermanentError` with the broker's code (`RUN_NOT_ACTIVE`, `ACCOUNT_MISMATCH`, `ADS_AUTH`, ... see
 *   {@link CredentialErrorCode}) and message: the run must fail, retrying cannot help;
 * - `RetryableError` (with the broker's `retryAfterMs` when it gave one) when no broker answers, none answers in
 *   time, the broker's answer is malformed, or the broker says to retry (token endpoint down, rate limited).
 * A request that is itself invalid throws `PermanentError` (`CREDENTIALS_INVALID_REQUEST`, naming the field)
 * before anything is sent.
 */
export async function requestAccessToken(
  nc: NatsConnection,
  request: CredentialRequest,
  opts: RequestAccessTokenOptions = {},
): Promise<CredentialGrant> {
  try {
    requestDef.assert(request);
  } catch (err) {
    if (!(err instanceof MessageValidationError)) throw err;
    throw new PermanentError(`credential request: ${err.field || '(body)'}: ${err.reason}`, {
      code: CredentialErrorCode.InvalidRequest,
      cause: err,
    });
  }
  opts.signal?.throwIfAborted();
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const pending = nc.request(subjects.credentialsToken, encoder.encode(JSON.stringify(request)), {
    timeout: timeoutMs,
    headers: messageHeaders(CredentialRequestMsg.type, undefined, opts.traceparent),
  });
  let raw: string;
  try {
    raw = decoder.decode((await abortable(pending, opts.signal)).data);
  } catch (err) {
    if (opts.signal?.aborted && err === opts.signal.reason) throw err;
    throw transportError(err, timeoutMs);
  }
  return grantFrom(raw, request);
}

/** Rejects with the signal's reason as soon as it aborts; the request itself times out on its own. */
function abortable<T>(p: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return p;
  p.catch(() => {}); // settles after an abort too: nothing is listening any more
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

function isNoResponders(err: unknown): boolean {
  return (
    err instanceof NoRespondersError ||
    (err instanceof RequestError && err.isNoResponders()) ||
    (err as Error | undefined)?.cause instanceof NoRespondersError
  );
}

function transportError(err: unknown, timeoutMs: number): RetryableError {
  if (isNoResponders(err)) {
    return new RetryableError('credential broker: no broker is running (no responders on svc.credentials.token)', {
      code: CredentialErrorCode.Unavailable,
      retryAfterMs: NO_RESPONDERS_RETRY_MS,
      cause: err,
    });
  }
  if (err instanceof TimeoutError || (err as Error | undefined)?.cause instanceof TimeoutError) {
    return new RetryableError(`credential broker: no answer within ${timeoutMs} ms`, {
      code: CredentialErrorCode.Unavailable,
      cause: err,
    });
  }
  return new RetryableError(`credential broker: request failed (${(err as Error)?.message ?? String(err)})`, {
    code: CredentialErrorCode.Unavailable,
    cause: err,
  });
}

function grantFrom(raw: string, request: CredentialRequest): CredentialGrant {
  let body: unknown;
  try {
    body = JSON.parse(raw);
  } catch {
    throw new RetryableError('credential broker: the answer is not JSON', { code: CredentialErrorCode.BadReply });
  }
  try {
    replyDef.assert(body);
  } catch (err) {
    if (!(err instanceof MessageValidationError)) throw err;
    // Never echo the body: a malformed grant may still carry a token.
    throw new RetryableError(`credential broker: malformed answer (${err.field || '(body)'}: ${err.reason})`, {
      code: CredentialErrorCode.BadReply,
    });
  }
  if (!body.ok) {
    const message = `credential broker refused run ${request.runId}: ${body.message}`;
    if (body.retryable) {
      throw new RetryableError(message, {
        code: body.code,
        ...(body.retryAfterMs !== undefined && { retryAfterMs: body.retryAfterMs }),
      });
    }
    throw new PermanentError(message, { code: body.code });
  }
  if (body.platform !== request.platform) {
    throw new RetryableError(`credential broker: granted a ${body.platform} token for a ${request.platform} request`, {
      code: CredentialErrorCode.BadReply,
    });
  }
  return body;
}
