/**
 * The notification log as a ledger of claims: every e-mail is sent by whoever claims its dedupe key.
 *
 * 1. Claim: `insert … on conflict (dedupe_key) do update … where <the existing claim is up for grabs>
 *    returning id`. The unique key makes the insert succeed once: a second sender (a redelivered event,
 *    a second notifier replica, a repeated tick) waits for the first one's row and then gets no row back.
 * 2. Send through the mailer.
 * 3. Record the outcome: `sent` (with `sent_at`), `failed` (a permanent refusal, with the SMTP reply in
 *    `error`; never retried), or, when the server was unavailable, the claim is released: the row stays
 *    `pending` with the reason in `error`, and the next delivery of the same notification claims it again.
 *
 * A claim is up for grabs when it is `pending` and either released (`error` set) or older than the lease
 * (`created_at`, which a claim sets, is the lease start). So a sender that died between claim and outcome
 * (SIGKILL, lost database connection) blocks its notification for one lease, and then the next delivery
 * sends it: a mail is never lost to a crash. A sender that the SMTP server accepted but that died before
 * recording `sent` makes the takeover send that mail a second time; that window is the SMTP round trip's
 * final reply, and the message keeps its Message-ID (`<dedupe key@ppc-robot>`), so mail systems can drop
 * the copy. A sender still working within its lease sees `in-progress` and comes back after the lease.
 */
import { createHash } from 'node:crypto';
import { PermanentError, RetryableError } from '@ppc/lib/errors';
import type { OutgoingMail } from '@ppc/lib/mail';
import { Counter } from 'prom-client';
import { type NotifyDeps, type ResolvedNotifierConfig, retryDelay } from './config.ts';

export const NOTIFICATION_KINDS = ['run-failed', 'run-recovered', 'digest', 'connection-revoked'] as const;
export type NotificationKind = (typeof NOTIFICATION_KINDS)[number];

export interface Claim {
  /** Unique per e-mail; see the keys built in `keys`. */
  key: string;
  kind: NotificationKind;
  orgId: string;
  recipient: string;
  runId?: string;
  jobId?: string;
}

export type Delivery =
  /** This call sent it. */
  | { outcome: 'sent'; key: string; recipient: string }
  /** This call tried and the server refused for good; recorded as `failed`. */
  | { outcome: 'failed'; key: string; recipient: string; error: string }
  /** Someone already sent it, or it failed for good before. */
  | { outcome: 'duplicate'; key: string; recipient: string; status: 'sent' | 'failed' }
  /** Another sender holds a live claim; look again in `retryInMs`. */
  | { outcome: 'in-progress'; key: string; recipient: string; retryInMs: number }
  /** The server was unavailable; the claim is released for the next attempt. */
  | { outcome: 'retry'; key: string; recipient: string; error: RetryableError };

/** Dedupe keys. A recipient's part is a digest of the lowercased address (the row keeps the address itself). */
export const keys = {
  recipient: (address: string) => createHash('sha256').update(address.toLowerCase()).digest('hex').slice(0, 16),
  runFailed: (runId: string, attempt: number, recipient: string) =>
    `run-failed.${runId}.${attempt}.${keys.recipient(recipient)}`,
  runRecovered: (runId: string, recipient: string) => `run-recovered.${runId}.${keys.recipient(recipient)}`,
  digest: (userId: string, day: string) => `digest.${userId}.${day}`,
  connectionRevoked: (connectionId: string, revokedAtMs: number, recipient: string) =>
    `connection-revoked.${connectionId}.${revokedAtMs}.${keys.recipient(recipient)}`,
};

/** What a notification says; the ledger adds the recipient, Message-ID and `X-Ppc-Notification` header. */
export type MailContent = Omit<OutgoingMail, 'to' | 'messageId'>;

/** A stable Message-ID per notification, so a copy sent after a takeover is recognisable as the same mail. */
export const messageIdFor = (key: string) => `<${key}@ppc-robot>`;

const CLAIM_SQL = `
insert into notification_log as n (id, organization_id, dedupe_key, kind, recipient, run_id, job_id, status, created_at)
values (gen_random_uuid(), ?::uuid, ?, ?, ?, ?::uuid, ?::uuid, 'pending', now())
on conflict (dedupe_key) do update set created_at = now(), error = null
  where n.status = 'pending' and (n.error is not null or n.created_at < now() - ? * interval '1 millisecond')
returning n.id`;

const CURRENT_SQL = `
select status, greatest(0, ceil(extract(epoch from (created_at + ? * interval '1 millisecond' - now())) * 1000))::int as retry_in_ms
  from notification_log where dedupe_key = ?`;

const MARK_SENT_SQL = `update notification_log set status = 'sent', sent_at = now(), error = null where id = ?::uuid and status = 'pending'`;
const MARK_FAILED_SQL = `update notification_log set status = 'failed', error = ? where id = ?::uuid and status = 'pending'`;
/** Released: still pending, with the reason; claimable at once. */
const RELEASE_SQL = `update notification_log set error = ? where id = ?::uuid and status = 'pending'`;

const ERROR_LIMIT = 2000;

function counter(deps: NotifyDeps): Counter<'kind' | 'outcome'> | undefined {
  const registry = deps.metrics;
  if (!registry) return undefined;
  const name = 'ppc_notifications_total';
  return (
    (registry.getSingleMetric(name) as Counter<'kind' | 'outcome'> | undefined) ??
    new Counter({
      name,
      help: 'Notification e-mails by kind and outcome (sent, failed, duplicate, in-progress, retry)',
      labelNames: ['kind', 'outcome'],
      registers: [registry],
    })
  );
}

export interface DeliverOptions {
  signal?: AbortSignal;
  /** The last attempt: an unavailable server is recorded as `failed` instead of released. */
  giveUp?: boolean;
  /** Test hook: runs after the outcome is recorded. */
  afterDeliver?(delivery: Delivery): Promise<void> | void;
}

/**
 * Claims `claim.key`, composes and sends the mail, records the outcome (see the module comment). Database
 * errors propagate (the caller's message is retried); mail errors are outcomes.
 */
export async function deliver(
  deps: NotifyDeps,
  config: ResolvedNotifierConfig,
  claim: Claim,
  compose: () => MailContent | Promise<MailContent>,
  opts: DeliverOptions = {},
): Promise<Delivery> {
  const em = deps.orm.em.fork();
  const base = { key: claim.key, recipient: claim.recipient };
  const count = (outcome: Delivery['outcome']) => counter(deps)?.inc({ kind: claim.kind, outcome });
  const claimed = await em.execute<{ id: string }[]>(CLAIM_SQL, [
    claim.orgId,
    claim.key,
    claim.kind,
    claim.recipient,
    claim.runId ?? null,
    claim.jobId ?? null,
    config.leaseMs,
  ]);
  const id = claimed[0]?.id;
  if (!id) {
    const [row] = await em.execute<{ status: 'pending' | 'sent' | 'failed'; retry_in_ms: number }[]>(CURRENT_SQL, [
      config.leaseMs,
      claim.key,
    ]);
    // Gone in between (only if someone deletes log rows): claim it on the next attempt.
    const d: Delivery =
      !row || row.status === 'pending'
        ? { ...base, outcome: 'in-progress', retryInMs: row?.retry_in_ms ?? 0 }
        : { ...base, outcome: 'duplicate', status: row.status };
    count(d.outcome);
    await opts.afterDeliver?.(d);
    return d;
  }

  let mail: MailContent;
  try {
    mail = await compose();
  } catch (err) {
    await em.execute(
      RELEASE_SQL,
      [`will retry, could not compose: ${(err as Error).message}`.slice(0, ERROR_LIMIT), id],
      'run',
    );
    throw err;
  }
  let delivery: Delivery;
  try {
    await deps.mailer.send(
      {
        ...mail,
        to: claim.recipient,
        messageId: messageIdFor(claim.key),
        headers: { ...mail.headers, 'X-Ppc-Notification': claim.key },
      },
      { signal: opts.signal },
    );
    delivery = { ...base, outcome: 'sent' };
  } catch (err) {
    if (err instanceof PermanentError) {
      delivery = { ...base, outcome: 'failed', error: err.message };
    } else if (opts.giveUp && !opts.signal?.aborted) {
      delivery = { ...base, outcome: 'failed', error: `gave up, server still unavailable: ${(err as Error).message}` };
    } else {
      const error = err instanceof RetryableError ? err : new RetryableError((err as Error).message, { cause: err });
      delivery = { ...base, outcome: 'retry', error };
    }
  }
  // A database error here leaves the claim pending: taken over after the lease (see the module comment).
  if (delivery.outcome === 'sent') await em.execute(MARK_SENT_SQL, [id], 'run');
  else if (delivery.outcome === 'failed')
    await em.execute(MARK_FAILED_SQL, [delivery.error.slice(0, ERROR_LIMIT), id], 'run');
  // Released rather than left to the lease: the next attempt may send at once.
  else if (delivery.outcome === 'retry') {
    await em.execute(RELEASE_SQL, [`will retry: ${delivery.error.message}`.slice(0, ERROR_LIMIT), id], 'run');
  }
  count(delivery.outcome);
  const error =
    delivery.outcome === 'failed' ? delivery.error : delivery.outcome === 'retry' ? delivery.error.message : undefined;
  deps.log[delivery.outcome === 'sent' ? 'info' : 'warn'](
    { notification: claim.key, kind: claim.kind, outcome: delivery.outcome, error },
    delivery.outcome === 'sent' ? 'notification sent' : 'notification not sent',
  );
  await opts.afterDeliver?.(delivery);
  return delivery;
}

/**
 * What the caller's message should do after a batch of deliveries: nothing (all settled), or be retried
 * later, after the longest wait any delivery asks for.
 */
export function retryAfter(deliveries: readonly Delivery[], config: ResolvedNotifierConfig, deliveryCount: number) {
  let wait: number | undefined;
  let reason = '';
  for (const d of deliveries) {
    if (d.outcome === 'retry') {
      const ms = retryDelay(config, deliveryCount);
      if (wait === undefined || ms > wait) [wait, reason] = [ms, d.error.message];
    } else if (d.outcome === 'in-progress') {
      // Just past the other sender's lease: then it has either recorded its outcome or is presumed dead.
      const ms = d.retryInMs + 250;
      if (wait === undefined || ms > wait) [wait, reason] = [ms, `${d.key} is being sent by another claim`];
    }
  }
  return wait === undefined ? undefined : { retryAfterMs: wait, reason };
}

/**
 * Throws the RetryableError `retryAfter` calls for, if any, so the caller's message comes back. On the last
 * delivery nothing is left to come back: a claim still held by another sender is left to it (logged).
 */
export function settle(
  deps: NotifyDeps,
  deliveries: readonly Delivery[],
  config: ResolvedNotifierConfig,
  attempt: { deliveryCount: number; isLastAttempt?: boolean },
): void {
  const r = retryAfter(deliveries, config, Math.max(1, attempt.deliveryCount));
  if (!r) return;
  if (attempt.isLastAttempt) {
    deps.log.error({ reason: r.reason }, 'notification not settled on the last delivery; left to its current claim');
    return;
  }
  throw new RetryableError(`notification not settled: ${r.reason}`, {
    retryAfterMs: r.retryAfterMs,
    code: 'NOTIFY_PENDING',
  });
}
