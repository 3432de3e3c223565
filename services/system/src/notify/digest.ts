/**
 * `send-digests`: one e-mail per user per day about the runs of the user's organizations queued in the 24
 * hours before `now` (counts by status per organization, the failed runs listed with links). Users whose
 * organizations queued no run hear nothing. Key `digest.<userId>.<yyyy-mm-dd>` (the UTC day of `now`): pass
 * the tick's `scheduledAt` as `now`, so a redelivered or caught-up tick computes the same window and sends
 * nothing twice.
 */
import type { EntityManager } from '@mikro-orm/postgresql';
import { RetryableError } from '@ppc/lib/errors';
import { isEmailAddress } from '@ppc/lib/mail';
import { type NotifyDeps, resolveNotifierConfig } from './config.ts';
import { type Delivery, deliver, keys, settle } from './ledger.ts';
import { DIGEST_STATUSES, type DigestStatus, type DigestView, renderDigest } from './templates.ts';

export interface DigestOptions {
  /** End of the window (exclusive); the window is the 24 hours before it. */
  now: Date;
  /** Checked between users; stops early (the rest is sent when the tick is redelivered). */
  signal?: AbortSignal;
  /** The tick's delivery (`HandlerContext`), for the retry delay and for giving up on the last one. */
  deliveryCount?: number;
  isLastAttempt?: boolean;
  /** Users read per query; default 200. */
  pageSize?: number;
  /** Digests composed and sent at once; default 2 (the mailer's connections). */
  concurrency?: number;
  /** Test hook, see `DeliverOptions`. */
  afterDeliver?(delivery: Delivery): Promise<void> | void;
}

export interface DigestResult {
  day: string;
  from: string;
  to: string;
  /** Users with runs in the window. */
  users: number;
  sent: number;
  duplicates: number;
  failed: number;
  /** Left for the redelivered tick: the server was unavailable, or another sender holds the claim. */
  unsettled: number;
}

const DAY_MS = 24 * 60 * 60 * 1000;
const NO_USER = '00000000-0000-0000-0000-000000000000';

interface CountRow extends Record<DigestStatus, number> {
  user_id: string;
  email: string;
  user_name: string;
  home_org_id: string;
  org_name: string;
}

interface UserDigest {
  userId: string;
  email: string;
  name: string;
  homeOrgId: string;
  orgs: DigestView['orgs'];
}

const counts = (): Record<DigestStatus, number> => ({ succeeded: 0, failed: 0, cancelled: 0, running: 0, queued: 0 });

async function usersPage(em: EntityManager, after: string, limit: number): Promise<string[]> {
  const rows = await em.execute<{ id: string }[]>('select id from users where id > ?::uuid order by id limit ?', [
    after,
    limit,
  ]);
  return rows.map((r) => r.id);
}

/** Per user of the id range, per organization with runs in the window: counts by status. */
async function countsFor(em: EntityManager, first: string, last: string, from: Date, to: Date): Promise<UserDigest[]> {
  const rows = await em.execute<CountRow[]>(
    `select u.id as user_id, u.email, u.name as user_name, u.organization_id as home_org_id, o.name as org_name,
            ${DIGEST_STATUSES.map((s) => `count(*) filter (where r.status = '${s}')::int as ${s}`).join(', ')}
       from users u
       join memberships m on m.user_id = u.id
       join organizations o on o.id = m.organization_id
       join runs r on r.organization_id = m.organization_id and r.queued_at >= ? and r.queued_at < ?
      where u.id >= ?::uuid and u.id <= ?::uuid
      group by u.id, o.id
      order by u.id, o.name, o.id`,
    [from, to, first, last],
  );
  const byUser = new Map<string, UserDigest>();
  for (const r of rows) {
    let d = byUser.get(r.user_id);
    if (!d) {
      d = { userId: r.user_id, email: r.email, name: r.user_name, homeOrgId: r.home_org_id, orgs: [] };
      byUser.set(r.user_id, d);
    }
    const c = counts();
    for (const s of DIGEST_STATUSES) c[s] = Number(r[s]);
    d.orgs.push({ name: r.org_name, counts: c });
  }
  return [...byUser.values()];
}

async function failuresFor(em: EntityManager, userId: string, from: Date, to: Date, limit: number) {
  return em.execute<
    {
      id: string;
      error_code: string | null;
      error_message: string | null;
      finished_at: string | null;
      job_name: string;
      org_name: string;
    }[]
  >(
    `select r.id, r.error_code, r.error_message, r.finished_at, j.name as job_name, o.name as org_name
       from memberships m
       join runs r on r.organization_id = m.organization_id and r.status = 'failed'
                  and r.queued_at >= ? and r.queued_at < ?
       join jobs j on j.id = r.job_id
       join organizations o on o.id = r.organization_id
      where m.user_id = ?::uuid
      order by r.finished_at desc nulls last, r.id
      limit ?`,
    [from, to, userId, limit],
  );
}

/** Runs `fn` over `items`, at most `limit` at a time, stopping early when `signal` aborts. */
async function eachLimited<T>(
  items: T[],
  limit: number,
  signal: AbortSignal | undefined,
  fn: (item: T) => Promise<void>,
) {
  let next = 0;
  const worker = async () => {
    while (next < items.length && !signal?.aborted) await fn(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

export async function sendDigests(deps: NotifyDeps, opts: DigestOptions): Promise<DigestResult> {
  const config = resolveNotifierConfig(deps.config);
  const em = deps.orm.em.fork();
  const to = opts.now;
  const from = new Date(to.getTime() - DAY_MS);
  const day = to.toISOString().slice(0, 10);
  const result: DigestResult = {
    day,
    from: from.toISOString(),
    to: to.toISOString(),
    users: 0,
    sent: 0,
    duplicates: 0,
    failed: 0,
    unsettled: 0,
  };
  const deliveries: Delivery[] = [];
  const pageSize = opts.pageSize ?? 200;

  for (let after = NO_USER; !opts.signal?.aborted; ) {
    const ids = await usersPage(em, after, pageSize);
    if (ids.length === 0) break;
    after = ids[ids.length - 1]!;
    const digests = await countsFor(em, ids[0]!, after, from, to);
    result.users += digests.length;
    await eachLimited(digests, opts.concurrency ?? 2, opts.signal, async (u) => {
      if (!isEmailAddress(u.email)) {
        deps.log.warn({ userId: u.userId }, 'digest not sent: the user has no valid e-mail address');
        return;
      }
      const d = await deliver(
        deps,
        config,
        { key: keys.digest(u.userId, day), kind: 'digest', orgId: u.homeOrgId, recipient: u.email },
        // Composed only once claimed: a repeated tick costs one insert per user.
        async () => {
          const failed = await failuresFor(deps.orm.em.fork(), u.userId, from, to, config.digestFailuresListed);
          const totals = counts();
          for (const o of u.orgs) for (const s of DIGEST_STATUSES) totals[s] += o.counts[s];
          return renderDigest({
            userName: u.name,
            day,
            from,
            to,
            orgs: u.orgs,
            totals,
            failures: failed.map((f) => ({
              jobName: f.job_name,
              orgName: f.org_name,
              errorCode: f.error_code,
              errorMessage: f.error_message,
              finishedAt: f.finished_at,
              runUrl: `${config.publicUrl}/runs/${f.id}`,
            })),
            moreFailures: Math.max(0, totals.failed - failed.length),
            runsUrl: `${config.publicUrl}/runs`,
          });
        },
        { signal: opts.signal, giveUp: opts.isLastAttempt, afterDeliver: opts.afterDeliver },
      );
      deliveries.push(d);
      if (d.outcome === 'sent') result.sent += 1;
      else if (d.outcome === 'duplicate') result.duplicates += 1;
      else if (d.outcome === 'failed') result.failed += 1;
      else result.unsettled += 1;
    });
  }
  if (opts.signal?.aborted)
    throw new RetryableError('digests stopped early (shutting down)', { code: 'NOTIFY_STOPPED' });
  settle(deps, deliveries, config, { deliveryCount: opts.deliveryCount ?? 1, isLastAttempt: opts.isLastAttempt });
  return result;
}
