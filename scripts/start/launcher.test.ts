// End-to-end test of `npm start`'s launcher: a real nats-server, a real embedded PostgreSQL and the
// six services as child processes, on shifted ports in a temp data dir.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isPortFree } from '@ppc/lib/infra';
import { createMailer, readSinkIndex } from '@ppc/lib/mail';
import { allResources } from '@ppc/lib/nats';
import { waitFor } from '@ppc/lib/testing';
import type { WorkerHeartbeat } from '@ppc/proto';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { formatLogLine } from './log-format.ts';
import { planFor } from './launcher.ts';
import { alive, freeOffset, MeshLaunches } from './testing.ts';

const resourceCount = Object.values(allResources(['local'])).reduce((n, list) => n + (list?.length ?? 0), 0);
const dataDir = mkdtempSync(join(tmpdir(), 'ppc-start-'));
const meshes = new MeshLaunches();
afterEach(() => meshes.stopAll());
afterAll(() => rmSync(dataDir, { recursive: true, force: true }));
const launch = (offset: number) => meshes.launch({ dataDir, offset });

describe('npm start launcher', () => {
  it('brings up all six services and the SMTP sink, stops everything on Ctrl-C within 10 s, and reuses its data on the next start', async () => {
    const offset = await freeOffset();
    const plan = planFor({ PPC_PORT_OFFSET: String(offset) }, '/');
    const gateway = `http://127.0.0.1:${8080 + offset}`;

    for (const round of [1, 2]) {
      const run = launch(offset);
      await waitFor(() => run.out().includes(`ppc-robot is up: ${gateway}`), {
        what: `the up line (round ${round})`,
        timeoutMs: 90_000,
        intervalMs: 100,
      });
      // Every stream, consumer, bucket and object store: created on the first start, untouched on the second.
      expect(run.out()).toContain(`provisioned: ${resourceCount} ${round === 1 ? 'created' : 'unchanged'}`);

      const accounts = await fetch(`http://127.0.0.1:${9200 + offset}/v19/customers:listAccessibleCustomers`);
      // The demo ad platform answers like Google Ads would without credentials.
      expect(accounts.status).toBe(401);
      expect(await accounts.json()).toMatchObject({ error: { status: 'UNAUTHENTICATED' } });
      // The local SMTP sink takes any mail and stores it under the data dir; the system service sends to it.
      const smtpUrl = `smtp://127.0.0.1:${2525 + offset}`;
      expect(run.out()).toContain(`SMTP sink at ${smtpUrl}`);
      const mailer = createMailer({ url: smtpUrl, from: 'test@example.com' });
      try {
        await mailer.send({ to: 'ana@example.com', subject: `round ${round}`, text: 'hi', html: '<p>hi</p>' });
      } finally {
        mailer.close();
      }
      const stored = await readSinkIndex(join(dataDir, 'mail'));
      expect(stored.map((m) => m.subject)).toEqual(round === 1 ? ['round 1'] : ['round 1', 'round 2']);
      expect(existsSync(join(dataDir, 'mail', stored.at(-1)!.file))).toBe(true);

      const status = (await (await fetch(`${gateway}/`)).json()) as { instances: WorkerHeartbeat[] };
      const services = status.instances.map((i) => i.service).sort();
      expect(services).toEqual(['autoscaler', 'clock', 'gateway', 'report-worker', 'system', 'url-checker']);
      expect(status.instances.every((i) => i.ready)).toBe(true);
      const system = status.instances.find((i) => i.service === 'system');
      expect(system?.details).toMatchObject({ mail: { smtp: smtpUrl, publicUrl: gateway } });
      const pids = status.instances.map((i) => i.pid);
      const pgPid = Number(readFileSync(join(dataDir, 'pg', 'postmaster.pid'), 'utf8').split('\n')[0]);
      pids.push(pgPid);

      const stoppedAt = Date.now();
      process.kill(-run.child.pid!, 'SIGINT'); // Ctrl-C: the whole foreground group gets SIGINT

      expect(await run.exit).toBe(0);
      expect(Date.now() - stoppedAt).toBeLessThan(10_000);
      const order = [...run.out().matchAll(/^\[(\S+)\]\s+\S+ INFO {2}stopped/gm)].map((m) => m[1]);
      expect(order).toEqual(['gateway', 'clock', 'autoscaler', 'url-checker', 'report-worker', 'system']);
      expect(run.out()).not.toMatch(/Unhandled|uncaught|FATAL|did not stop in time/i);
      expect(run.out()).toMatch(/\[ppc\]\s+stopped in \d+\.\d s/);
      await waitFor(() => pids.every((p) => !alive(p)), { what: 'every process gone', timeoutMs: 2000 });
      const ports = [plan.nats.port, plan.postgres.port, plan.smtpSink.port, ...plan.services.map((s) => s.port)];
      expect((await Promise.all(ports.map((p) => isPortFree(p, '0.0.0.0')))).every(Boolean)).toBe(true);
    }
    expect(existsSync(join(dataDir, 'nats', 'jetstream'))).toBe(true);
  }, 240_000); // two starts, each allowed 90 s on a loaded machine

  it('refuses to start when a port is taken, naming the port and who needed it', async () => {
    for (const [port, wantedBy] of [
      [9103, 'the system service'],
      [2525, 'the local SMTP sink'],
    ] as const) {
      const offset = await freeOffset();
      const squatter = createServer();
      await new Promise<void>((res) => squatter.listen(port + offset, '0.0.0.0', res));
      try {
        const run = launch(offset);
        expect(await run.exit).toBe(1);
        expect(run.out()).toMatch(new RegExp(`port ${port + offset} is already in use.*${wantedBy} needs it`));
      } finally {
        squatter.close();
      }
    }
  });

  it('hands the autoscaler the local backend, its own regions and any other PPC_AUTOSCALER_* it was given', () => {
    expect(planFor({}, '/').autoscaler).toEqual({ PPC_AUTOSCALER_BACKEND: 'local', PPC_AUTOSCALER_REGIONS: 'local' });
    const env = { PPC_AUTOSCALER_MAX_WORKERS: '3', PPC_AUTOSCALER_WORKER_IDLE_EXIT_MS: '4000', PPC_IDLE_EXIT_MS: '1' };
    expect(planFor(env, '/').autoscaler).toEqual({
      PPC_AUTOSCALER_BACKEND: 'local',
      PPC_AUTOSCALER_MAX_WORKERS: '3',
      PPC_AUTOSCALER_WORKER_IDLE_EXIT_MS: '4000',
      PPC_AUTOSCALER_REGIONS: 'local',
    });
    expect(planFor({ PPC_AUTOSCALER_BACKEND: 'none' }, '/').autoscaler.PPC_AUTOSCALER_BACKEND).toBe('none');
    expect(() => planFor({ PPC_AUTOSCALER_REGIONS: 'eu-west' }, '/')).toThrow(
      /PPC_AUTOSCALER_REGIONS: npm start runs the region local only, got "eu-west"/,
    );
  });

  it('rejects a malformed port offset', () => {
    expect(() => planFor({ PPC_PORT_OFFSET: 'ten' }, '/')).toThrow(/PPC_PORT_OFFSET: expected an integer/);
  });
});

describe('log lines', () => {
  it('turns pino JSON into a readable line and passes anything else through', () => {
    const line = JSON.stringify({
      level: 40,
      time: Date.UTC(2026, 0, 1, 12, 30, 5),
      msg: 'pull failed',
      pid: 1,
      seq: 7,
    });
    expect(formatLogLine(line, false)).toBe('12:30:05 WARN  pull failed seq=7');
    expect(formatLogLine('plain text', false)).toBe('plain text');
  });
});
