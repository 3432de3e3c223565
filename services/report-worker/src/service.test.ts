// The report-worker service end to end against a private real nats-server (JetStream, the artifacts object store)
// and the demo ad platform in-process (its Google Ads-shaped API). The credential broker is a stand-in on the real
// subject speaking the real contract (`credentials.reply.v1`), so no PostgreSQL is needed.
import { type ChildProcess, spawn } from 'node:child_process';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { Msg } from '@nats-io/transport-node';
import { type DemoPlatform, startDemoPlatform } from '@ppc/lib/ads';
import { newId } from '@ppc/lib/db';
import { freePort } from '@ppc/lib/infra';
import { connectNats, type NatsConnection, publish } from '@ppc/lib/nats';
import { openArtifactStore } from '@ppc/lib/outputs';
import { runService } from '@ppc/lib/service';
import { privateNatsServer, runEventsOf, waitFor } from '@ppc/lib/testing';
import { type CredentialReply, type ReportTask, ReportTaskMsg, RunCancelMsg, streams, subjects } from '@ppc/proto';
import { publishCore } from '@ppc/lib/nats';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { reportWorker } from './main.ts';

const REGION = 'svc';
let server: Awaited<ReturnType<typeof privateNatsServer>>;
let nc: NatsConnection;
let platform: DemoPlatform;
let refuse = false;
/** Runs that read the demo's huge account (1,000,000 search-term rows) instead of the small one. */
const huge = new Set<string>();
const decoder = new TextDecoder();

/** Answers `svc.credentials.token` as the system service would: a demo access token for the small account. */
function brokerStandIn(): void {
  const answer = async (msg: Msg) => {
    if (refuse) {
      const reply: CredentialReply = {
        ok: false,
        code: 'ADS_AUTH',
        message: 'invalid_grant: the connection was revoked; reconnect it',
        retryable: false,
      };
      msg.respond(JSON.stringify(reply));
      return;
    }
    const res = await fetch(`${platform.url}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'grant_type=refresh_token&refresh_token=demo&client_id=demo&client_secret=demo',
    });
    const { access_token, expires_in } = (await res.json()) as { access_token: string; expires_in: number };
    const { runId } = JSON.parse(decoder.decode(msg.data)) as { runId: string };
    const small = platform.world.byKey.get(huge.has(runId) ? 'huge' : 'small')!;
    const reply: CredentialReply = {
      ok: true,
      platform: 'demo',
      accessToken: access_token,
      expiresAt: new Date(Date.now() + expires_in * 1000).toISOString(),
      apiBaseUrl: platform.url,
      developerToken: 'demo',
      platformAccountId: small.id,
      loginCustomerId: platform.world.byKey.get('agency')!.id,
      accountTimeZone: small.timeZone,
      accountCurrency: small.currency,
    };
    msg.respond(JSON.stringify(reply));
  };
  nc.subscribe(subjects.credentialsToken, { callback: (_err, msg) => void answer(msg) });
}

const task = (reportType: string): ReportTask => ({
  runId: newId(),
  jobId: newId(),
  orgId: newId(),
  accountId: newId(),
  connectionId: newId(),
  platform: 'demo',
  region: REGION,
  attempt: 1,
  trigger: 'manual',
  enqueuedAt: new Date().toISOString(),
  output: { kind: 'csv' },
  reportType,
  params: {},
});

const eventsOf = (runId: string) => runEventsOf(nc, runId);

const finished = (runId: string) =>
  waitFor(
    async () => {
      const ev = await eventsOf(runId);
      return ev.find(([k]) => k === 'succeeded' || k === 'failed') ? ev : null;
    },
    { timeoutMs: 60_000, what: 'the run to finish' },
  );

let svc: Awaited<ReturnType<typeof runService>>;

beforeAll(async () => {
  server = await privateNatsServer();
  nc = await connectNats({ servers: server.url, name: 'report-worker-service-test' });
  platform = await startDemoPlatform({ port: await freePort(), seed: 5 });
  brokerStandIn();
  svc = await runService(reportWorker, {
    env: { NATS_URL: server.url, PORT: '0', LOG_LEVEL: 'silent', PPC_REGION: REGION, PPC_IDLE_EXIT_MS: '0' },
    handleSignals: false,
  });
});

afterAll(async () => {
  await svc?.stop();
  await nc?.drain();
  await platform?.close();
  await server?.[Symbol.asyncDispose]();
});

describe('the report-worker service', () => {
  it('builds a search-terms report from its task, writes one CSV per sheet and records the run', async () => {
    const t = task('search-terms');
    await publish(jetstream(nc), ReportTaskMsg, t);
    const events = await finished(t.runId);
    const [kind, done] = events.at(-1)!;
    expect(kind, JSON.stringify(done)).toBe('succeeded');
    expect(events[0]![0]).toBe('started');
    expect(events.filter(([k]) => k === 'progress').map(([, b]) => b.phase)).toEqual(
      expect.arrayContaining(['fetching', 'writing']),
    );
    const outputs = done.outputs as { kind: string; name: string; url: string }[];
    expect(outputs.length).toBeGreaterThan(1);
    const store = await openArtifactStore(nc);
    for (const o of outputs) {
      expect(o.kind).toBe('csv');
      const name = decodeURIComponent(o.url.replace('/artifacts/', ''));
      expect(name.startsWith(`${t.runId}/`)).toBe(true);
      // Each file is a header and the sheet's rows, as many as the succeeded event reports.
      const lines = decoder
        .decode(await store.getBlob(name))
        .trimEnd()
        .split('\n');
      const sheetRows = Object.entries(done.rows as Record<string, number>).find(([sheet]) => o.name.startsWith(sheet));
      expect(sheetRows, `rows of ${o.name}`).toBeDefined();
      expect(lines.length - 1).toBe(sheetRows![1]);
    }
  });

  it('fails a run whose credentials were revoked, with the reason, without retrying it', async () => {
    refuse = true;
    try {
      const t = task('keyword-health');
      await publish(jetstream(nc), ReportTaskMsg, t);
      const events = await finished(t.runId);
      const [kind, body] = events.at(-1)!;
      expect(kind).toBe('failed');
      expect(body).toMatchObject({ code: 'ADS_AUTH', retryable: false });
      expect(body.message).toContain('reconnect it');
    } finally {
      refuse = false;
    }
  });

  it('fails a run with unknown parameters naming the field', async () => {
    const t = { ...task('budget-pacing'), params: { nonsense: 1 } };
    await publish(jetstream(nc), ReportTaskMsg, t);
    const [kind, body] = (await finished(t.runId)).at(-1)!;
    expect(kind).toBe('failed');
    expect(body).toMatchObject({ retryable: false });
    expect(body.message).toMatch(/nonsense/);
  });

  it('stops a run on cmd.run.<id>.cancel within 2 s, records it cancelled and takes the task off the queue', async () => {
    const t = task('search-terms');
    huge.add(t.runId);
    await publish(jetstream(nc), ReportTaskMsg, t);
    await waitFor(async () => (await eventsOf(t.runId)).some(([k]) => k === 'progress'), {
      timeoutMs: 30_000,
      what: 'the huge report fetching',
    });
    const asked = Date.now();
    publishCore(nc, RunCancelMsg, {
      runId: t.runId,
      orgId: t.orgId,
      reason: 'not needed any more',
      requestedBy: 'test',
      at: new Date().toISOString(),
    });
    const [kind, body] = await waitFor(
      async () =>
        (await eventsOf(t.runId)).find(([k]) => k === 'cancelled' || k === 'succeeded' || k === 'failed') ?? null,
      { timeoutMs: 10_000, what: 'the run to stop' },
    );
    expect(kind).toBe('cancelled');
    expect(Date.now() - asked).toBeLessThan(2000);
    expect(body).toMatchObject({ reason: 'not needed any more' });
    const jsm = await jetstreamManager(nc);
    await waitFor(async () => (await jsm.streams.info(streams.reportTasks.name)).state.messages === 0, {
      what: 'the cancelled task acknowledged',
    });
  });

  it('finishes a report whose worker was killed (SIGKILL) mid-report on the next worker, with one output', async () => {
    // The in-process worker of this file stops first, so only the spawned workers take the task.
    await svc.stop();
    const spawnWorker = async (): Promise<ChildProcess> =>
      spawn(process.execPath, ['--max-semi-space-size=8', new URL('./main.ts', import.meta.url).pathname], {
        env: {
          PATH: process.env.PATH,
          NATS_URL: server.url,
          PORT: String(await freePort()),
          LOG_LEVEL: 'warn',
          PPC_REGION: REGION,
          PPC_IDLE_EXIT_MS: '0',
        },
        stdio: ['ignore', 'ignore', 'inherit'],
      });
    const t = task('search-terms');
    huge.add(t.runId);
    const first = await spawnWorker();
    let second: ChildProcess | undefined;
    try {
      await publish(jetstream(nc), ReportTaskMsg, t);
      await waitFor(async () => (await eventsOf(t.runId)).some(([k]) => k === 'progress'), {
        timeoutMs: 30_000,
        what: 'the first worker fetching rows',
      });
      first.kill('SIGKILL');
      second = await spawnWorker();
      // Redelivered once the consumer's ack wait (30 s) has passed without word from the killed worker.
      const done = await waitFor(
        async () => (await eventsOf(t.runId)).find(([k]) => k === 'succeeded' || k === 'failed') ?? null,
        { timeoutMs: 120_000, intervalMs: 250, what: 'the report to finish on the second worker' },
      );
      expect(done[0], JSON.stringify(done[1])).toBe('succeeded');
      expect((await eventsOf(t.runId)).filter(([k]) => k === 'succeeded')).toHaveLength(1);
      const store = await openArtifactStore(nc);
      const names = (await store.list()).map((o) => o.name).filter((n) => n.startsWith(`${t.runId}/`));
      const linked = (done[1].outputs as { url: string }[]).map((o) =>
        decodeURIComponent(o.url.replace('/artifacts/', '')),
      );
      expect(names.sort()).toEqual(linked.sort());
    } finally {
      first.kill('SIGKILL');
      second?.kill('SIGTERM');
      await new Promise((r) => (second && second.exitCode === null ? second.once('exit', r) : r(null)));
    }
  });
});
