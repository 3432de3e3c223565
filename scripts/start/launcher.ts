import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { jetstreamManager } from '@nats-io/jetstream';
import {
  isPortFree,
  type NatsServerHandle,
  type PostgresHandle,
  PortInUseError,
  startNatsServer,
  startPostgres,
} from '@ppc/lib/infra';
import { type DemoPlatform, startDemoPlatform } from '@ppc/lib/ads';
import { generateKey, migrate, openDatabase } from '@ppc/lib/db';
import { type SmtpSink, startSmtpSink } from '@ppc/lib/mail';
import { allResources, connectNats, provision } from '@ppc/lib/nats';
import { SERVICE_NODE_FLAGS } from '@ppc/lib/service';
import { formatLogLine } from './log-format.ts';

/** `npm start`'s demo sign-in (`email:password`); local only, printed at start. Override with PPC_DEMO_LOGIN. */
export const DEMO_LOGIN = process.env.PPC_DEMO_LOGIN || 'demo@ppc-robot.local:demo-password';

export interface ServicePlan {
  name: string;
  port: number;
  needsDatabase: boolean;
  regional: boolean;
  /** Gets `SMTP_URL` (the local sink) and `PPC_PUBLIC_URL` (the gateway, for links in e-mails). */
  sendsMail: boolean;
  /**
   * Holds ad-platform credentials: gets `PPC_SECRET_KEY`, the demo platform's URL, `PPC_PUBLIC_URL`, and those
   * `PPC_GOOGLE_<name>` set for the launcher whose names it lists (a service refuses PPC_* variables it does not know).
   */
  sealsSecrets?: { google: readonly string[] };
}

export interface LaunchPlan {
  root: string;
  dataDir: string;
  nats: { port: number; monitorPort: number };
  postgres: { port: number; database: string };
  /** The demo ad platform (Google Ads-shaped API and the landing pages behind its ads). */
  demoPlatform: { port: number };
  /** The local SMTP sink: every e-mail the mesh sends is stored under `<dataDir>/mail`, none is delivered. */
  smtpSink: { port: number; dir: string };
  /** In start order; they stop in reverse. */
  services: ServicePlan[];
  regions: string[];
  /**
   * The autoscaler's PPC_AUTOSCALER_* variables: the local backend and the plan's regions, plus any other
   * PPC_AUTOSCALER_* set for the launcher (e.g. PPC_AUTOSCALER_MAX_WORKERS, PPC_AUTOSCALER_WORKER_IDLE_EXIT_MS).
   */
  autoscaler: Record<string, string>;
  logLevel: string;
  color: boolean;
}

/** Every port the mesh binds, shifted by `offset` so a second copy (or a test) can run beside the first. */
export function planFor(env: NodeJS.ProcessEnv, root: string): LaunchPlan {
  const raw = env.PPC_PORT_OFFSET ?? '0';
  const offset = Number(raw);
  if (!Number.isInteger(offset) || offset < 0 || offset > 50_000) {
    throw new Error(`PPC_PORT_OFFSET: expected an integer from 0 to 50000, got ${JSON.stringify(raw)}`);
  }
  const at = (p: number) => p + offset;
  const dataDir = resolve(root, env.PPC_DATA_DIR ?? '.data');
  const regions = ['local'];
  return {
    root,
    dataDir,
    nats: { port: at(4222), monitorPort: at(8222) },
    postgres: { port: at(54320), database: 'ppc' },
    demoPlatform: { port: at(9200) },
    smtpSink: { port: at(2525), dir: join(dataDir, 'mail') },
    services: [
      {
        name: 'system',
        regional: true,
        port: at(9103),
        needsDatabase: true,
        sendsMail: true,
        sealsSecrets: { google: ['CLIENT_ID', 'CLIENT_SECRET', 'DEVELOPER_TOKEN'] },
      },
      { name: 'report-worker', regional: true, port: at(9101), needsDatabase: false, sendsMail: false },
      { name: 'url-checker', regional: true, port: at(9102), needsDatabase: false, sendsMail: false },
      { name: 'autoscaler', regional: false, port: at(9104), needsDatabase: false, sendsMail: false },
      { name: 'clock', regional: false, port: at(9105), needsDatabase: false, sendsMail: false },
      {
        name: 'gateway',
        regional: false,
        port: at(8080),
        needsDatabase: true,
        sendsMail: false,
        // It seals the refresh tokens of new connections, which system opens: the same key.
        sealsSecrets: { google: ['CLIENT_ID', 'CLIENT_SECRET', 'AUTH_URL', 'TOKEN_URL'] },
      },
    ],
    regions,
    autoscaler: autoscalerEnvOf(env, regions),
    logLevel: env.LOG_LEVEL ?? 'info',
    color: env.NO_COLOR === undefined && (env.FORCE_COLOR !== undefined || Boolean(process.stdout.isTTY)),
  };
}

const AUTOSCALER_PREFIX = 'PPC_AUTOSCALER_';
const AUTOSCALER_REGIONS = 'PPC_AUTOSCALER_REGIONS';

/**
 * Services get only the PPC_* variables meant for them, so the launcher hands the autoscaler its own. The regions
 * are the launcher's: it provisions their consumers and starts their always-on workers.
 */
function autoscalerEnvOf(env: NodeJS.ProcessEnv, regions: string[]): Record<string, string> {
  const given = env[AUTOSCALER_REGIONS];
  if (given !== undefined && given !== regions.join(',')) {
    throw new Error(
      `${AUTOSCALER_REGIONS}: npm start runs the region${regions.length > 1 ? 's' : ''} ${regions.join(',')} only, got ${JSON.stringify(given)}; unset it`,
    );
  }
  const passed = Object.entries(env).filter(
    (e): e is [string, string] => e[0].startsWith(AUTOSCALER_PREFIX) && e[1] !== undefined,
  );
  return { PPC_AUTOSCALER_BACKEND: 'local', ...Object.fromEntries(passed), [AUTOSCALER_REGIONS]: regions.join(',') };
}

const COLORS = [36, 35, 33, 32, 34, 96, 95, 93];
const SERVICES_STOP_BUDGET_MS = 6000;

/** Who listens on a port, from `ss`, when the machine can tell us. */
function portOwner(port: number): string | undefined {
  try {
    const out = execFileSync('ss', ['-Htlnp', `sport = :${port}`], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    const m = /users:\(\("([^"]+)",pid=(\d+)/.exec(out);
    return m ? `${m[1]} (pid ${m[2]})` : undefined;
  } catch {
    return undefined;
  }
}

export async function checkPorts(plan: LaunchPlan): Promise<void> {
  const wanted = [
    { port: plan.nats.port, wantedBy: 'nats-server (client port)' },
    { port: plan.nats.monitorPort, wantedBy: 'nats-server (monitoring port)' },
    { port: plan.postgres.port, wantedBy: 'PostgreSQL' },
    { port: plan.demoPlatform.port, wantedBy: 'the demo ad platform' },
    { port: plan.smtpSink.port, wantedBy: 'the local SMTP sink' },
    ...plan.services.map((s) => ({ port: s.port, wantedBy: `the ${s.name} service` })),
  ];
  for (const w of wanted) {
    if (await isPortFree(w.port, '0.0.0.0')) continue;
    const owner = portOwner(w.port);
    const err = new PortInUseError(w.port, w.wantedBy);
    if (owner) err.message = `port ${w.port} is already in use by ${owner}; ${w.wantedBy} needs it.`;
    throw err;
  }
}

interface Running {
  plan: ServicePlan;
  child: ChildProcess;
  exited: Promise<void>;
}

export class Launcher {
  readonly plan: LaunchPlan;
  #nats?: NatsServerHandle;
  #pg?: PostgresHandle;
  #demo?: DemoPlatform;
  #mail?: SmtpSink;
  #running: Running[] = [];
  #stopping = false;
  #out: (line: string) => void;

  constructor(plan: LaunchPlan, out: (line: string) => void = (l) => process.stdout.write(`${l}\n`)) {
    this.plan = plan;
    this.#out = out;
  }

  #prefix(name: string, index: number): string {
    const label = `[${name}]`.padEnd(16);
    return this.plan.color ? `\x1b[${COLORS[index % COLORS.length]}m${label}\x1b[0m` : label;
  }

  log(line: string): void {
    this.#out(`${this.#prefix('ppc', 7)}${line}`);
  }

  async start(): Promise<string> {
    const { plan } = this;
    await checkPorts(plan);
    mkdirSync(plan.dataDir, { recursive: true });

    this.log(`starting nats-server (JetStream in ${join(plan.dataDir, 'nats')})`);
    const natsLog = this.#prefix('nats', 6);
    this.#nats = await startNatsServer({
      storeDir: join(plan.dataDir, 'nats'),
      port: plan.nats.port,
      monitorPort: plan.nats.monitorPort,
      onLog: (l) => /\[(ERR|WRN|FTL)\]/.test(l) && this.#out(`${natsLog}${l}`),
      detached: true,
    });
    this.log(`starting PostgreSQL (${join(plan.dataDir, 'pg')}, port ${plan.postgres.port})`);
    const pgLog = this.#prefix('postgres', 6);
    this.#pg = await startPostgres({
      dataDir: join(plan.dataDir, 'pg'),
      port: plan.postgres.port,
      database: plan.postgres.database,
      persistent: true,
      onLog: (l) => /ERROR|FATAL|PANIC/.test(l) && this.#out(`${pgLog}${l}`),
    });
    const orm = await openDatabase(this.#pg.url, { poolMax: 2 });
    try {
      const applied = await migrate(orm);
      this.log(
        applied.length ? `migrated the database: ${applied.map((m) => m.name).join(', ')}` : 'database up to date',
      );
    } finally {
      await orm.close(true);
    }

    this.#demo = await startDemoPlatform({ port: plan.demoPlatform.port });
    this.log(`demo ad platform at ${this.#demo.url}`);
    this.#mail = await startSmtpSink({ port: plan.smtpSink.port, dir: plan.smtpSink.dir });
    this.log(`SMTP sink at ${this.#mail.url}: e-mail is stored in ${plan.smtpSink.dir}, not delivered`);

    const nc = await connectNats({ servers: this.#nats.url, name: 'ppc-launcher' });
    try {
      const report = await provision(nc, await jetstreamManager(nc), allResources(plan.regions));
      this.log(`provisioned: ${summarise(report)}`);
    } finally {
      await nc.close();
    }

    for (const [i, s] of plan.services.entries()) this.#spawn(s, i);
    await Promise.all(this.#running.map((r) => this.#waitReady(r)));
    const gateway = plan.services.find((s) => s.name === 'gateway');
    return `http://127.0.0.1:${gateway?.port ?? 8080}`;
  }

  /**
   * The key that seals stored refresh tokens: `PPC_SECRET_KEY` when set, else one generated at the first start
   * and kept in `<dataDir>/secret-key` (mode 0600) beside the database it protects, so restarts can open it.
   */
  #secretKey(): string {
    if (process.env.PPC_SECRET_KEY) return process.env.PPC_SECRET_KEY;
    const file = join(this.plan.dataDir, 'secret-key');
    if (!existsSync(file)) writeFileSync(file, `local:${generateKey()}\n`, { mode: 0o600, flag: 'wx' });
    return readFileSync(file, 'utf8').trim();
  }

  #spawn(s: ServicePlan, index: number, restarts = 0): void {
    const { plan } = this;
    // Services refuse PPC_* variables they do not know, so they get only their own.
    const inherited = Object.entries(process.env).filter(([k]) => !k.startsWith('PPC_'));
    const env: NodeJS.ProcessEnv = {
      ...Object.fromEntries(inherited),
      NATS_URL: this.#nats!.url,
      PORT: String(s.port),
      LOG_LEVEL: plan.logLevel,
    };
    if (s.regional) env.PPC_REGION = plan.regions[0];
    if (s.needsDatabase) env.DATABASE_URL = this.#pg!.url;
    const publicUrl = `http://127.0.0.1:${plan.services.find((g) => g.name === 'gateway')?.port ?? 8080}`;
    if (s.sendsMail) {
      env.SMTP_URL = this.#mail!.url;
      env.PPC_PUBLIC_URL = publicUrl;
    }
    // The launcher's own workers stay up; the autoscaler starts more as local processes, which exit when idle.
    if (s.name === 'report-worker' || s.name === 'url-checker') env.PPC_IDLE_EXIT_MS = '0';
    if (s.name === 'autoscaler') Object.assign(env, plan.autoscaler);
    // A user to sign in as, with an organization and a demo connection (created at the gateway's start if missing).
    if (s.name === 'gateway') env.PPC_DEMO_LOGIN = DEMO_LOGIN;
    if (s.sealsSecrets) {
      env.PPC_SECRET_KEY = this.#secretKey();
      env.PPC_DEMO_PLATFORM_URL = this.#demo!.url;
      env.PPC_PUBLIC_URL = publicUrl;
      for (const name of s.sealsSecrets.google) {
        const v = process.env[`PPC_GOOGLE_${name}`];
        if (v) env[`PPC_GOOGLE_${name}`] = v;
      }
    }
    const child = spawn(
      process.execPath,
      [...(SERVICE_NODE_FLAGS[s.name] ?? []), join(plan.root, 'services', s.name, 'src', 'main.ts')],
      {
        cwd: plan.root,
        env,
        // Its own process group: a terminal's Ctrl-C reaches only the launcher, which stops services in order.
        detached: true,
        // The IPC channel closes when the launcher dies, however it dies, and the service then stops itself.
        stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      },
    );
    child.channel?.unref();
    const prefix = this.#prefix(s.name, index);
    for (const stream of [child.stdout!, child.stderr!]) {
      createInterface({ input: stream }).on('line', (l) => this.#out(`${prefix}${formatLogLine(l, plan.color)}`));
    }
    const exited = new Promise<void>((res) => child.once('exit', () => res()));
    const running: Running = { plan: s, child, exited };
    const slot = this.#running.findIndex((r) => r.plan.name === s.name);
    if (slot >= 0) this.#running[slot] = running;
    else this.#running.push(running);
    child.once('exit', (code, signal) => {
      if (this.#stopping) return;
      const delay = Math.min(30_000, 1000 * 2 ** restarts);
      this.log(`${s.name} exited (${signal ?? `code ${code}`}); restarting in ${delay / 1000} s`);
      setTimeout(() => !this.#stopping && this.#spawn(s, index, restarts + 1), delay).unref();
    });
  }

  async #waitReady(r: Running, timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let exited = false;
    void r.exited.then(() => {
      exited = true;
    });
    while (Date.now() < deadline) {
      if (exited) throw new Error(`${r.plan.name} exited before it was ready (its log is above)`);
      try {
        const res = await fetch(`http://127.0.0.1:${r.plan.port}/readyz`, { signal: AbortSignal.timeout(1000) });
        if (res.ok) return;
      } catch {}
      await new Promise((res) => setTimeout(res, 100));
    }
    throw new Error(
      `${r.plan.name} was not ready within ${timeoutMs / 1000} s (http://127.0.0.1:${r.plan.port}/readyz)`,
    );
  }

  /**
   * Services in reverse start order, then the demo platform and the SMTP sink, then nats-server, then
   * PostgreSQL; whatever overstays is killed.
   */
  async stop(): Promise<void> {
    if (this.#stopping) return;
    this.#stopping = true;
    const deadline = Date.now() + SERVICES_STOP_BUDGET_MS;
    for (const r of [...this.#running].reverse()) {
      if (r.child.exitCode !== null || r.child.signalCode !== null) continue;
      r.child.kill('SIGTERM');
      const left = deadline - Date.now();
      if (left > 0) await Promise.race([r.exited, new Promise((res) => setTimeout(res, left))]);
    }
    for (const r of this.#running) {
      if (r.child.exitCode === null && r.child.signalCode === null) {
        this.log(`${r.plan.name} did not stop in time; killing it`);
        r.child.kill('SIGKILL');
        await r.exited;
      }
    }
    await this.#demo?.close();
    await this.#mail?.close();
    await this.#nats?.stop();
    await this.#pg?.stop();
  }
}

function summarise(report: Record<string, string>): string {
  const counts: Record<string, number> = {};
  for (const outcome of Object.values(report)) counts[outcome] = (counts[outcome] ?? 0) + 1;
  return Object.entries(counts)
    .map(([k, v]) => `${v} ${k}`)
    .join(', ');
}
