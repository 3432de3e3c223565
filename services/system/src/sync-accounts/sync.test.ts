/**
 * sync-accounts against a real PostgreSQL (a fresh database for this file) and the demo ad platform in-process: its
 * OAuth2 `/token` (the refresh token `revoked` is refused with invalid_grant) and its Google Ads-shaped account API
 * (`listAccessibleCustomers` and the `customer_client` hierarchy), reached through the real connector.
 */
import type { MikroORM } from '@mikro-orm/postgresql';
import { type DemoPlatform, startDemoPlatform } from '@ppc/lib/ads';
import { AdAccount, Connection, generateKey, migrate, openDatabase } from '@ppc/lib/db';
import { freePort } from '@ppc/lib/infra';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { freshDatabaseUrl } from '../../../../lib/src/db/fixtures/test-database.ts';
import {
  AccessTokens,
  type ConnectionRevokedEvent,
  type CredentialsConfig,
  credentialsConfig,
} from '../credentials/index.ts';
import { seedConnection } from '../credentials/test-fixtures.ts';
import { syncAccounts } from './sync.ts';

let orm: MikroORM;
let demo: DemoPlatform;
let config: CredentialsConfig;
let tokens: AccessTokens;
const revoked: ConnectionRevokedEvent[] = [];
const now = new Date('2030-03-01T10:00:00.000Z');

const accountsOf = (connectionId: string) =>
  orm.em.fork().find(AdAccount, { connection: connectionId }, { orderBy: { platformAccountId: 'asc' } });
const connection = (id: string) => orm.em.fork().findOneOrFail(Connection, id);

/** What the demo world says a synced connection should hold: its client accounts, managers left out. */
const expectedClients = () =>
  demo.world.accounts
    .filter((a) => !a.manager)
    .map((a) => ({
      platformAccountId: a.id,
      name: a.name,
      currency: a.currency,
      timeZone: a.timeZone,
      status: a.status === 'ENABLED' ? 'enabled' : 'disabled',
    }))
    .sort((x, y) => x.platformAccountId.localeCompare(y.platformAccountId));

beforeAll(async () => {
  orm = await openDatabase(await freshDatabaseUrl('sync_accounts'));
  await migrate(orm);
  demo = await startDemoPlatform({ port: await freePort(), seed: 3 });
  config = credentialsConfig({
    secretKey: `k1:${generateKey()}`,
    googleClientId: '',
    googleClientSecret: '',
    googleDeveloperToken: '',
    googleTokenUrl: 'https://oauth2.googleapis.com/token',
    googleAdsApiUrl: 'https://googleads.googleapis.com',
    demoPlatformUrl: demo.url,
  });
  tokens = new AccessTokens({ orm, config, tokenRetries: 0, onConnectionRevoked: (e) => void revoked.push(e) });
});

afterAll(async () => {
  await demo?.close();
  await orm?.close(true);
});

// syncAccounts visits every active connection: each test starts with none, so its counts are its own.
beforeEach(async () => {
  await orm.em.fork().execute(`update connections set status = 'error' where status = 'active'`);
  revoked.length = 0;
});

describe('syncAccounts', () => {
  it("creates the connection's client accounts with name, currency, time zone and status, leaving managers out", async () => {
    const c = await seedConnection(orm, config.keyring, { refreshToken: 'demo' });
    const res = await syncAccounts(orm, { tokens }, { now });
    const clients = expectedClients();
    const managers = demo.world.accounts.filter((a) => a.manager).length;
    expect(managers).toBeGreaterThan(0);
    expect(clients.some((a) => a.status === 'disabled')).toBe(true); // the demo's closed account
    expect(res).toEqual({
      connections: 1,
      synced: 1,
      failed: 0,
      revoked: 0,
      created: clients.length,
      updated: 0,
      unchanged: 0,
      removed: 0,
      managersSkipped: managers,
      truncated: false,
    });
    const rows = await accountsOf(c.connectionId);
    expect(
      rows.map((r) => ({
        platformAccountId: r.platformAccountId,
        name: r.name,
        currency: r.currency,
        timeZone: r.timeZone,
        status: r.status,
      })),
    ).toEqual(clients);
    expect(rows.every((r) => r.organization.id === c.orgId && r.platform === 'demo')).toBe(true);
    expect(rows.every((r) => r.lastSyncedAt?.toISOString() === now.toISOString())).toBe(true);
  });

  it('is idempotent: a second sync changes nothing but last_synced_at', async () => {
    const c = await seedConnection(orm, config.keyring, { refreshToken: 'demo' });
    await syncAccounts(orm, { tokens }, { now });
    const before = await accountsOf(c.connectionId);
    const later = new Date(now.getTime() + 3_600_000);
    const res = await syncAccounts(orm, { tokens }, { now: later });
    expect(res).toMatchObject({ synced: 1, created: 0, updated: 0, removed: 0, unchanged: before.length });
    const after = await accountsOf(c.connectionId);
    expect(after.map((r) => [r.id, r.name, r.status, r.updatedAt.getTime()])).toEqual(
      before.map((r) => [r.id, r.name, r.status, r.updatedAt.getTime()]),
    );
    expect(after.every((r) => r.lastSyncedAt?.getTime() === later.getTime())).toBe(true);
  });

  it('updates changed accounts, brings back a listed one marked removed, and removes one no longer listed', async () => {
    const c = await seedConnection(orm, config.keyring, { refreshToken: 'demo' });
    await syncAccounts(orm, { tokens }, { now });
    const [renamed, reappearing] = await accountsOf(c.connectionId);
    const em = orm.em.fork();
    await em.execute(`update ad_accounts set name = 'Old name', currency = 'XXX' where id = ?`, [renamed!.id]);
    await em.execute(`update ad_accounts set status = 'removed' where id = ?`, [reappearing!.id]);
    const gone = em.create(AdAccount, {
      organization: c.orgId,
      connection: c.connectionId,
      platform: 'demo',
      platformAccountId: '9999999999',
      name: 'Closed long ago',
      currency: 'EUR',
      timeZone: 'Europe/Prague',
    });
    await em.flush();

    const res = await syncAccounts(orm, { tokens }, { now });
    expect(res).toMatchObject({ synced: 1, created: 0, updated: 2, removed: 1 });
    const byId = new Map((await accountsOf(c.connectionId)).map((r) => [r.id, r]));
    const expected = new Map(expectedClients().map((a) => [a.platformAccountId, a]));
    expect(byId.get(renamed!.id)).toMatchObject(expected.get(renamed!.platformAccountId)!);
    expect(byId.get(reappearing!.id)!.status).toBe(expected.get(reappearing!.platformAccountId)!.status);
    expect(byId.get(gone.id)).toMatchObject({ status: 'removed', name: 'Closed long ago' });

    // Removed stays removed, and is not counted again.
    expect(await syncAccounts(orm, { tokens }, { now })).toMatchObject({ updated: 0, removed: 0 });
  });

  it('syncs each connection on its own: a revoked, an unreadable and an unconfigured one do not stop the rest', async () => {
    const ok = await seedConnection(orm, config.keyring, { refreshToken: 'demo' });
    const gone = await seedConnection(orm, config.keyring, { refreshToken: 'revoked' });
    const garbled = await seedConnection(orm, config.keyring, { sealed: 'v1.k1.AAAA.BBBB.CCCC' });
    const google = await seedConnection(orm, config.keyring, { platform: 'google-ads', refreshToken: 'rt' });
    const res = await syncAccounts(orm, { tokens }, { now, batchSize: 2, concurrency: 2 });
    expect(res).toMatchObject({ connections: 4, synced: 1, revoked: 1, failed: 2, created: expectedClients().length });

    expect(await accountsOf(ok.connectionId)).toHaveLength(expectedClients().length);
    const revokedRow = await connection(gone.connectionId);
    expect(revokedRow.status).toBe('revoked');
    expect(revokedRow.lastError).toContain('invalid_grant');
    expect(revoked).toEqual([
      {
        orgId: gone.orgId,
        connectionId: gone.connectionId,
        ownerUserId: gone.ownerId,
        label: gone.label,
        reason: revokedRow.lastError,
        revokedAt: revokedRow.lastErrorAt,
      },
    ]);
    const garbledRow = await connection(garbled.connectionId);
    expect(garbledRow).toMatchObject({ status: 'active' });
    expect(garbledRow.lastError).toMatch(/^account sync: .*reconnect the account/);
    expect(garbledRow.lastErrorAt?.toISOString()).toBe(now.toISOString());
    expect((await connection(google.connectionId)).lastError).toMatch(/no OAuth client/);

    // Next hour: the revoked connection is no longer visited and its owner is not told twice.
    const next = await syncAccounts(orm, { tokens }, { now });
    expect(next).toMatchObject({ connections: 3, revoked: 0 });
    expect(revoked).toHaveLength(1);
  });

  it('reports a revocation once, however many callers see it at the same time', async () => {
    const c = await seedConnection(orm, config.keyring, { refreshToken: 'demo' });
    const events = await Promise.all(Array.from({ length: 6 }, () => tokens.revoke(c.connectionId, 'access removed')));
    expect(events.filter((e) => e !== null)).toHaveLength(1);
    expect(revoked).toHaveLength(1);
    expect(revoked[0]).toMatchObject({ connectionId: c.connectionId, reason: 'access removed' });
  });

  it('clears a previous error once the connection syncs again', async () => {
    const c = await seedConnection(orm, config.keyring, { refreshToken: 'demo' });
    await orm.em
      .fork()
      .execute(`update connections set last_error = 'account sync: down', last_error_at = now() where id = ?`, [
        c.connectionId,
      ]);
    await syncAccounts(orm, { tokens }, { now });
    expect(await connection(c.connectionId)).toMatchObject({ status: 'active', lastError: null, lastErrorAt: null });
  });

  it('stops before the first batch when aborted, saying it was truncated', async () => {
    const c = await seedConnection(orm, config.keyring, { refreshToken: 'demo' });
    const ac = new AbortController();
    ac.abort();
    expect(await syncAccounts(orm, { tokens }, { now, signal: ac.signal })).toMatchObject({
      connections: 0,
      truncated: true,
    });
    expect(await accountsOf(c.connectionId)).toHaveLength(0);
  });
});
