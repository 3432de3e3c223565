import { RUN_STATUSES, type RunStatus } from '@ppc/lib/db';
import type { Sql } from '../db/fast-sql.ts';
import { BadUserInputError } from '../graphql/errors.ts';
import { decodeCursor, encodeCursor, InvalidCursorError } from './cursor.ts';
import { type RunRow, type RunView, runView } from './view.ts';

export const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export const PAGE_DEFAULT = 50;
export const PAGE_MAX = 200;

export interface RunFilter {
  jobId?: string | null;
  accountId?: string | null;
  status?: RunStatus | null;
  /** Queued at or after. */
  from?: Date | null;
  /** Queued before. */
  to?: Date | null;
}

export interface RunPage {
  items: RunView[];
  nextCursor: string | null;
}

// Every statement runs on a tenant entity manager (row-level security) AND names the organization itself.
const RUN_SELECT = `
select r.id, r.job_id, j.name as job_name, r.trigger, r.status, r.phase, r.progress, r.attempt, r.queued_at,
       to_char(r.queued_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as queued_key,
       r.started_at, r.finished_at, r.timings, r.row_counts, r.error_code, r.error_message, r.worker_instance,
       r.output_links
  from runs r join jobs j on j.id = r.job_id and j.organization_id = r.organization_id`;

/** The run, if it exists in the organization; null otherwise (also for another organization's id). */
export async function loadRunView(sql: Sql, orgId: string, runId: string): Promise<RunView | null> {
  if (!UUID.test(runId)) return null;
  const [row] = await sql<RunRow>(`${RUN_SELECT} where r.organization_id = ? and r.id = ?`, [
    orgId,
    runId.toLowerCase(),
  ]);
  return row ? runView(row) : null;
}

function checkId(field: string, v: string | null | undefined): string | undefined {
  if (v === null || v === undefined) return undefined;
  if (!UUID.test(v)) throw new BadUserInputError(field, 'not an id');
  return v.toLowerCase();
}

/**
 * One page of the organization's runs, newest first on (queued_at desc, id desc): a keyset scan of
 * `runs_org_queued_idx`, so page 100 costs what page 1 does and rows queued meanwhile neither repeat nor vanish.
 */
export async function listRuns(
  sql: Sql,
  orgId: string,
  args: { filter?: RunFilter | null; first?: number | null; after?: string | null },
): Promise<RunPage> {
  const first = args.first ?? PAGE_DEFAULT;
  if (!Number.isInteger(first) || first < 1 || first > PAGE_MAX) {
    throw new BadUserInputError('first', `between 1 and ${PAGE_MAX}`);
  }
  const f = args.filter ?? {};
  const where = ['r.organization_id = ?'];
  const params: unknown[] = [orgId];
  const jobId = checkId('filter.jobId', f.jobId);
  if (jobId) {
    where.push('r.job_id = ?');
    params.push(jobId);
  }
  const accountId = checkId('filter.accountId', f.accountId);
  if (accountId) {
    where.push('j.account_id = ?');
    params.push(accountId);
  }
  if (f.status) {
    if (!(RUN_STATUSES as readonly string[]).includes(f.status)) {
      throw new BadUserInputError('filter.status', `one of ${RUN_STATUSES.join(', ')}`);
    }
    where.push('r.status = ?');
    params.push(f.status);
  }
  if (f.from && f.to && f.from.getTime() >= f.to.getTime()) {
    throw new BadUserInputError('filter.to', 'must be later than filter.from');
  }
  if (f.from) {
    where.push('r.queued_at >= ?');
    params.push(f.from);
  }
  if (f.to) {
    where.push('r.queued_at < ?');
    params.push(f.to);
  }
  if (args.after !== null && args.after !== undefined) {
    let cursor: ReturnType<typeof decodeCursor>;
    try {
      cursor = decodeCursor(args.after);
    } catch (err) {
      if (err instanceof InvalidCursorError) throw new BadUserInputError('after', err.message);
      throw err;
    }
    // A row comparison over the index's own columns: PostgreSQL turns it into one index range.
    where.push('(r.queued_at, r.id) < (?::timestamptz, ?::uuid)');
    params.push(cursor.queuedAt, cursor.id);
  }
  params.push(first + 1);
  const rows = await sql<RunRow>(
    `${RUN_SELECT} where ${where.join(' and ')} order by r.queued_at desc, r.id desc limit ?`,
    params,
  );
  const more = rows.length > first;
  const page = more ? rows.slice(0, first) : rows;
  const last = page.at(-1);
  return {
    items: page.map(runView),
    nextCursor: more && last ? encodeCursor({ queuedAt: last.queued_key, id: last.id }) : null,
  };
}
