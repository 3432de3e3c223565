// The URL-check service end to end against a private real nats-server (JetStream, the artifacts object store) and
// the demo ad platform in-process (its Google Ads-shaped API and landing pages). The credential broker is a
// stand-in on the real subject speaking the real contract (`credentials.reply.v1`), so no PostgreSQL is needed.
import { type ChildProcess, spawn } from 'node:child_process';
import { jetstream, jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { createDemoConnector, type DemoPlatform, startDemoPlatform } from '@ppc/lib/ads';
import { newId } from '@ppc/lib/db';
import { freePort } from '@ppc/lib/infra';
import type { Msg } from '@nats-io/transport-node';
import { connectNats, type NatsConnection, publish } from '@ppc/lib/nats';
import { openArtifactStore } from '@ppc/lib/outputs';
import { runService } from '@ppc/lib/service';
import { privateNatsServer, runEventsOf, waitFor } from '@ppc/lib/testing';
import { type CredentialReply, streams, subjects, type UrlCheckTask, UrlCheckTaskMsg } from '@ppc/proto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { urlChecker } from './main.ts';

const REGION = 'svc';
let server: Awaited<ReturnType<typeof privateNatsServer>>;
let nc: NatsConnection;
let jsm: JetStreamManager;
let platform: DemoPlatform;
let account: { id: string; loginCustomerId?: string | undefined };
const decoder = new TextDecoder();

/** Answers `svc.credentials.token` as the system service would: a demo access token and where to use it. */
function brokerStandIn(): void {
  const answer = async (msg: Msg) => {
    {
      const res = await fetch(`${platform.url}/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: 'grant_type=refresh_token&refresh_token=demo&client_id=demo&client_secret=demo',
      });
      const { access_token, expires_in } = (await res.json()) as { access_token: string; expires_in: number };
      const reply: CredentialReply = {
        ok: true,
        platform: 'demo',
        accessToken: access_token,
        expiresAt: new Date(Date.now() + expires_in * 1000).toISOString(),
        apiBaseUrl: platform.url,
        developerToken: 'demo',
        platformAccountId: account.id,
        ...(account.loginCustomerId && { loginCustomerId: account.loginCustomerId }),
      };
      msg.respond(JSON.stringify(reply));
    }
  };
  nc.subscribe(subjects.credentialsToken, { callback: (_err, msg) => void answer(msg) });
}

const task = (): UrlCheckTask => ({
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
  options: { timeoutMs: 2500, perHostConcurrency: 8 },
});

const eventsOf = (runId: string) => runEventsOf(nc, runId);

const kinds = async (runId: string) => (await eventsOf(runId)).map(([k]) => k);

beforeAll(async () => {
  server = await privateNatsServer();
  nc = await connectNats({ servers: server.url, name: 'url-checker-service-test' });
  jsm = await jetstreamManager(nc);
  // Slow pages take 1.5 s and hanging ones time out at 2.5 s, so a check is still running when the test kills it.
  platform = await startDemoPlatform({ port: await freePort(), seed: 3, slowMs: 1500 });
  const connector = createDemoConnector({ url: platform.url });
  const medium = (await connector.listAccounts()).find((a) => a.name.endsWith('— Medium'))!;
  await connector.close();
  account = { id: medium.id, loginCustomerId: medium.loginCustomerId };
  brokerStandIn();
});

afterAll(async () => {
  await nc?.drain();
  await platform?.close();
  await server?.[Symbol.asyncDispose]();
});

describe('the url-checker service', () => {
  it('checks an account from its task, writes the report to the artifacts store and records the run', async () => {
    const svc = await runService(urlChecker, {
      env: { NATS_URL: server.url, PORT: '0', LOG_LEVEL: 'silent', PPC_REGION: REGION, PPC_IDLE_EXIT_MS: '0' },
      handleSignals: false,
    });
    try {
      const t = task();
      await publish(jetstream(nc), UrlCheckTaskMsg, t);
      const events = await waitFor(
        async () => {
          const ev = await eventsOf(t.runId);
          return ev.some(([k]) => k === 'succeeded' || k === 'failed') ? ev : null;
        },
        { timeoutMs: 60_000, what: 'the run to finish' },
      );
      const [kind, done] = events.at(-1)!;
      expect(kind, JSON.stringify(done)).toBe('succeeded');
      expect(events[0]![0]).toBe('started');
      expect(events.filter(([k]) => k === 'progress').map(([, b]) => b.phase)).toEqual(
        expect.arrayContaining(['fetching', 'processing', 'writing']),
      );
      const outputs = done.outputs as { kind: string; name: string; url: string }[];
      expect(outputs.map((o) => o.kind)).toEqual(['csv', 'csv', 'csv', 'csv']);
      expect((done.rows as Record<string, number>).URLs).toBe(192);

      // Every link is an object of the run in the store; the URL sheet has a header and a row per URL.
      const store = await openArtifactStore(nc);
      for (const o of outputs) expect(o.url).toMatch(new RegExp(`^/artifacts/${t.runId}/`));
      const urlsCsv = outputs.find((o) => o.name.startsWith('URLs'))!;
      const text = decoder.decode(await store.getBlob(decodeURIComponent(urlsCsv.url.replace('/artifacts/', ''))));
      expect(text.trim().split('\n')).toHaveLength(193);

      // The same task delivered again (a new msg id, as after a crash past the duplicate window) does nothing.
      await publish(jetstream(nc), UrlCheckTaskMsg, t, { msgId: `again.${t.runId}` });
      await waitFor(async () => (await jsm.streams.info(streams.urlCheckTasks.name)).state.messages === 0, {
        what: 'the redelivered task acknowledged',
      });
      expect((await kinds(t.runId)).filter((k) => k === 'succeeded')).toHaveLength(1);
    } finally {
      await svc.stop();
    }
  });

  it('finishes a run whose worker was killed (SIGKILL) mid-check on the next worker, with one output', async () => {
    const spawnWorker = async (): Promise<ChildProcess> =>
      spawn(process.execPath, [new URL('./main.ts', import.meta.url).pathname], {
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
    const t = task();
    const first = await spawnWorker();
    let second: ChildProcess | undefined;
    try {
      await publish(jetstream(nc), UrlCheckTaskMsg, t);
      await waitFor(
        async () => (await eventsOf(t.runId)).some(([k, b]) => k === 'progress' && b.phase === 'processing'),
        { timeoutMs: 30_000, what: 'the first worker checking URLs' },
      );
      first.kill('SIGKILL');
      second = await spawnWorker();
      // Redelivered once the consumer's ack wait (30 s) has passed without word from the killed worker.
      const done = await waitFor(
        async () => {
          const ev = await eventsOf(t.runId);
          return ev.find(([k]) => k === 'succeeded' || k === 'failed') ?? null;
        },
        { timeoutMs: 90_000, what: 'the run to finish on the second worker' },
      );
      expect(done[0], JSON.stringify(done[1])).toBe('succeeded');
      const all = await kinds(t.runId);
      expect(all.filter((k) => k === 'succeeded')).toHaveLength(1);
      const store = await openArtifactStore(nc);
      const names = (await store.list()).map((o) => o.name).filter((n) => n.startsWith(`${t.runId}/`));
      expect(names.sort()).toEqual(
        (done[1].outputs as { url: string }[]).map((o) => decodeURIComponent(o.url.replace('/artifacts/', ''))).sort(),
      );
    } finally {
      first.kill('SIGKILL');
      second?.kill('SIGTERM');
      await new Promise((r) => (second && second.exitCode === null ? second.once('exit', r) : r(null)));
    }
  });
});
