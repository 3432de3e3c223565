import type { EntityManager } from '@mikro-orm/postgresql';
import { addressProblem, isEmailAddress } from '@ppc/lib/mail';

/** A job's `notify` JSON as the notifier reads it. */
export interface NotifySettings {
  /** Mail when a run fails; default true. */
  onFailure: boolean;
  /** Mail on the job's first success after failures; default true. */
  onRecovery: boolean;
  /** Explicit recipients (valid, deduplicated, lowercased); undefined when not set or empty. */
  recipients: string[] | undefined;
  /** What was wrong with the stored value (the rest of it still applies), e.g. `notify.recipients[1]`. */
  problems: { field: string; reason: string }[];
}

export const MAX_RECIPIENTS = 50;

/**
 * Reads `Job.notify` (`{ onFailure?, onRecovery?, recipients? }`). It is validated when a job is saved, but
 * rows outlive validators: whatever is malformed is reported in `problems` and replaced by its default, so
 * a bad entry costs one recipient, never the whole notification. The gateway can run the same function to
 * validate input.
 */
export function parseNotifySettings(notify: unknown): NotifySettings {
  const problems: NotifySettings['problems'] = [];
  const out: NotifySettings = { onFailure: true, onRecovery: true, recipients: undefined, problems };
  if (notify === null || notify === undefined) return out;
  if (typeof notify !== 'object' || Array.isArray(notify)) {
    problems.push({ field: 'notify', reason: 'expected an object' });
    return out;
  }
  const n = notify as Record<string, unknown>;
  for (const flag of ['onFailure', 'onRecovery'] as const) {
    const v = n[flag];
    if (v === undefined || v === null) continue;
    if (typeof v === 'boolean') out[flag] = v;
    else problems.push({ field: `notify.${flag}`, reason: 'expected true or false' });
  }
  const list = n.recipients;
  if (list === undefined || list === null) return out;
  if (!Array.isArray(list)) {
    problems.push({ field: 'notify.recipients', reason: 'expected a list of e-mail addresses' });
    return out;
  }
  if (list.length > MAX_RECIPIENTS) {
    problems.push({
      field: 'notify.recipients',
      reason: `more than ${MAX_RECIPIENTS} addresses; the rest are ignored`,
    });
  }
  const seen = new Set<string>();
  for (const [i, value] of list.slice(0, MAX_RECIPIENTS).entries()) {
    const problem = addressProblem(value);
    if (problem) {
      problems.push({ field: `notify.recipients[${i}]`, reason: problem });
      continue;
    }
    seen.add((value as string).toLowerCase());
  }
  if (seen.size > 0) out.recipients = [...seen];
  return out;
}

/** Members of `orgId` with the `owner` role, by address. */
export async function ownerAddresses(em: EntityManager, orgId: string): Promise<string[]> {
  const rows = await em.execute<{ email: string }[]>(
    `select u.email from memberships m join users u on u.id = m.user_id
      where m.organization_id = ?::uuid and m.role = 'owner' order by u.email`,
    [orgId],
  );
  return rows.map((r) => r.email);
}

/** The user's address, only while they are a member of `orgId` (a creator who left hears nothing). */
export async function memberAddress(em: EntityManager, orgId: string, userId: string): Promise<string | undefined> {
  const rows = await em.execute<{ email: string }[]>(
    `select u.email from users u join memberships m on m.user_id = u.id and m.organization_id = ?::uuid
      where u.id = ?::uuid`,
    [orgId, userId],
  );
  return rows[0]?.email;
}

const unique = (addresses: Iterable<string>) => [
  ...new Set([...addresses].filter((a) => isEmailAddress(a)).map((a) => a.toLowerCase())),
];

/**
 * Who hears about a job's runs: its explicit recipients if any are valid, else its creator (while a member
 * of the organization), else the organization's owners.
 */
export async function jobRecipients(
  em: EntityManager,
  job: { orgId: string; createdBy: string | null; settings: NotifySettings },
): Promise<string[]> {
  if (job.settings.recipients) return job.settings.recipients;
  const creator = job.createdBy ? await memberAddress(em, job.orgId, job.createdBy) : undefined;
  if (creator && isEmailAddress(creator)) return unique([creator]);
  return unique(await ownerAddresses(em, job.orgId));
}
