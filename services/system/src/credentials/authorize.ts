import type { MikroORM } from '@mikro-orm/postgresql';
import { CredentialErrorCode } from '@ppc/lib/credentials';
import { PermanentError } from '@ppc/lib/errors';
import type { CredentialRequest } from '@ppc/proto';
import type { ConnectionSnapshot } from './access-tokens.ts';

/** A run that may have a token: its connection and the account it reads. */
export interface AuthorizedRun {
  orgId: string;
  connection: ConnectionSnapshot;
  platformAccountId: string;
  /** The manager access goes through, sent as `login-customer-id`; null for direct access. */
  loginCustomerId: string | null;
  timeZone: string;
  currency: string;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** A worker holds a run's token while the run is queued (its `started` event not projected yet) or running. */
const ACTIVE = new Set(['queued', 'running']);

interface RunRow {
  run_status: string;
  run_org: string;
  account_id: string;
  account_org: string | null;
  account_platform: string | null;
  platform_account_id: string | null;
  login_customer_id: string | null;
  time_zone: string | null;
  currency: string | null;
  connection_id: string | null;
  connection_org: string | null;
  connection_platform: string | null;
  connection_status: ConnectionSnapshot['status'] | null;
  sealed_refresh_token: string | null;
  last_error: string | null;
}

// One round trip from the run to the connection; left joins so a missing account or connection is a clear refusal.
const RUN_SQL = `
select r.status as run_status, r.organization_id as run_org, j.account_id,
       a.organization_id as account_org, a.platform as account_platform, a.platform_account_id,
       a.login_customer_id, a.time_zone, a.currency, a.connection_id,
       c.organization_id as connection_org, c.platform as connection_platform, c.status as connection_status,
       c.sealed_refresh_token, c.last_error
  from runs r
  join jobs j on j.id = r.job_id
  left join ad_accounts a on a.id = j.account_id
  left join connections c on c.id = a.connection_id
 where r.id = ?`;

const refuse = (code: string, message: string) => new PermanentError(message, { code });

/**
 * Checks that the run exists and is active, that its job reads `accountId`, that the account is reached through
 * `connectionId` on `platform`, and that all of them belong to the run's organization. Throws PermanentError with
 * RUN_NOT_FOUND, RUN_NOT_ACTIVE, ACCOUNT_MISMATCH or CONNECTION_MISMATCH otherwise.
 */
export async function authorizeRun(orm: MikroORM, req: CredentialRequest): Promise<AuthorizedRun> {
  if (!UUID.test(req.runId)) {
    throw refuse(CredentialErrorCode.InvalidRequest, `runId: ${JSON.stringify(req.runId)} is not a run id (a UUID)`);
  }
  const [row] = await orm.em.fork().execute<RunRow[]>(RUN_SQL, [req.runId]);
  if (!row) throw refuse(CredentialErrorCode.RunNotFound, `run ${req.runId} does not exist`);
  if (!ACTIVE.has(row.run_status)) {
    throw refuse(CredentialErrorCode.RunNotActive, `run ${req.runId} is ${row.run_status}, not queued or running`);
  }
  if (row.account_id !== req.accountId || row.account_org !== row.run_org) {
    throw refuse(CredentialErrorCode.AccountMismatch, `run ${req.runId} does not read ad account ${req.accountId}`);
  }
  if (
    row.connection_id !== req.connectionId ||
    row.connection_org !== row.run_org ||
    row.connection_platform !== req.platform ||
    row.account_platform !== req.platform ||
    row.connection_status === null ||
    row.sealed_refresh_token === null ||
    row.platform_account_id === null
  ) {
    throw refuse(
      CredentialErrorCode.ConnectionMismatch,
      `ad account ${req.accountId} is not reached through ${req.platform} connection ${req.connectionId}`,
    );
  }
  return {
    orgId: row.run_org,
    platformAccountId: row.platform_account_id,
    loginCustomerId: row.login_customer_id,
    timeZone: row.time_zone ?? 'UTC',
    currency: row.currency ?? 'USD',
    connection: {
      id: row.connection_id,
      platform: req.platform,
      status: row.connection_status,
      sealedRefreshToken: row.sealed_refresh_token,
      lastError: row.last_error,
    },
  };
}
