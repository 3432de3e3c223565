// The revoked-connection mail against the real PostgreSQL and the project's SMTP sink on loopback.
import { Connection, type Database } from '@ppc/lib/db';
import type { Mailer } from '@ppc/lib/mail';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createJob, createOrg, createUser, depsFor, mailerFor, openTestDatabase, testSink } from './fixtures/world.ts';
import { notifyConnectionRevoked } from './index.ts';

let orm: Database;
let mail: Awaited<ReturnType<typeof testSink>>;
let mailer: Mailer;

beforeAll(async () => {
  orm = await openTestDatabase('notify_connection');
  mail = await testSink();
  mailer = mailerFor(mail.sink.url);
});
afterAll(async () => {
  mailer?.close();
  await mail?.close();
  await orm?.close(true);
});

/** What account sync does when the platform says the grant is gone. */
async function markRevoked(connectionId: string, at: Date, ownerId: string | null) {
  const em = orm.em.fork();
  const c = await em.findOneOrFail(Connection, connectionId);
  em.assign(c, { status: 'revoked', lastError: 'invalid_grant', lastErrorAt: at, owner: ownerId });
  await em.flush();
}

describe('revoked connection mail', () => {
  it('goes to whoever connected it, once per revocation, listing the jobs that stop', async () => {
    const org = await createOrg(orm, 'Shop & Co');
    const owner = await createUser(orm, org.orgId, 'owner');
    const connector = await createUser(orm, org.orgId, 'member');
    await createJob(orm, org, { name: 'Weekly <spend>' });
    await createJob(orm, org, { name: 'Brand terms' });
    const disabled = await createJob(orm, org, { name: 'Old job' });
    await orm.em.fork().execute('update jobs set enabled = false where id = ?', [disabled]);
    await markRevoked(org.connectionId, new Date('2026-02-01T10:00:00Z'), connector.id);

    const deps = depsFor(orm, mailer);
    const event = {
      orgId: org.orgId,
      connectionId: org.connectionId,
      ownerUserId: connector.id,
      label: 'ads+<shop>@example.com',
      reason: 'invalid_grant: Token has been expired or revoked.',
    };
    const res = await notifyConnectionRevoked(deps, event);
    expect(res.deliveries.map((d) => [d.recipient, d.outcome])).toEqual([[connector.email, 'sent']]);
    const [m, ...rest] = await mail.mailsTo(connector.email);
    expect(rest).toEqual([]);
    expect(m!.subject).toBe('Reconnect needed: demo connection ads+<shop>@example.com was revoked');
    expect(m!.text).toContain(
      'The demo connection "ads+<shop>@example.com" in Shop & Co stopped working at 2026-02-01 10:00 UTC:',
    );
    expect(m!.text).toContain('invalid_grant: Token has been expired or revoked.');
    expect(m!.text).toContain('- Brand terms\n- Weekly <spend>');
    expect(m!.text).not.toContain('Old job');
    expect(m!.text).toContain('Reconnect it: https://ppc.example.com/app/connections');
    expect(m!.html).toContain('<b>ads+&lt;shop&gt;@example.com</b> in Shop &amp; Co');
    expect(m!.html).toContain('<li>Weekly &lt;spend&gt;</li>');
    expect(m!.html).toContain('<a href="https://ppc.example.com/app/connections">Reconnect it</a>');
    expect(await mail.mailsTo(owner.email)).toEqual([]);

    // Account sync finds it revoked again on its next run: nothing new.
    expect((await notifyConnectionRevoked(deps, event)).deliveries.map((d) => d.outcome)).toEqual(['duplicate']);
    expect(await mail.mailsTo(connector.email)).toHaveLength(1);
    // Reconnected and revoked again later: a new revocation, a new mail.
    await markRevoked(org.connectionId, new Date('2026-02-09T08:00:00Z'), connector.id);
    expect((await notifyConnectionRevoked(deps, event)).deliveries.map((d) => d.outcome)).toEqual(['sent']);
    expect(await mail.mailsTo(connector.email)).toHaveLength(2);
  });

  it("goes to the organization's owners when no one who connected it is a member", async () => {
    const org = await createOrg(orm);
    const owners = [await createUser(orm, org.orgId, 'owner'), await createUser(orm, org.orgId, 'owner')];
    const member = await createUser(orm, org.orgId, 'member');
    const formerMember = await createUser(orm, (await createOrg(orm)).orgId, 'owner');
    await markRevoked(org.connectionId, new Date('2026-02-01T10:00:00Z'), null);
    const deps = depsFor(orm, mailer);
    for (const ownerUserId of [null, formerMember.id]) {
      await notifyConnectionRevoked(deps, {
        orgId: org.orgId,
        connectionId: org.connectionId,
        ownerUserId,
        label: 'ads@example.com',
        reason: 'revoked',
      });
    }
    for (const o of owners) expect(await mail.mailsTo(o.email)).toHaveLength(1);
    expect(await mail.mailsTo(member.email)).toEqual([]);
    expect(await mail.mailsTo(formerMember.email)).toEqual([]);
  });

  it('does nothing for a connection of another organization', async () => {
    const org = await createOrg(orm);
    const other = await createOrg(orm);
    const user = await createUser(orm, other.orgId, 'owner');
    const res = await notifyConnectionRevoked(depsFor(orm, mailer), {
      orgId: other.orgId,
      connectionId: org.connectionId,
      ownerUserId: user.id,
      label: 'x',
      reason: 'revoked',
    });
    expect(res).toMatchObject({ action: 'skipped', reason: 'unknown connection' });
    expect(await mail.mailsTo(user.email)).toEqual([]);
  });
});
