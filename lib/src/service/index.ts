import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { type JetStreamClient, type JetStreamManager, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { kvBuckets, streams } from '@ppc/proto';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { collectDefaultMetrics, Registry } from 'prom-client';
import { type ConfigOf, type EnvSpec, loadConfig } from '../config/index.ts';
import { ConfigError } from '../errors/index.ts';
import { createHttpApp } from '../http/index.ts';
import { createLogger } from '../log/index.ts';
import { connectNats, type NatsConnection } from '../nats/connect.ts';
import type { Consumption } from '../nats/consume.ts';
import { provision, type Resources } from '../nats/provision.ts';
import type { baseEnv } from './env.ts';
import { startHeartbeat } from './heartbeat.ts';
import { watchIdle } from './idle.ts';

export { type AttachedConsumer, attachConsumer } from './attach.ts';
export { connectDatabase, DatabaseUnavailableError } from './database.ts';
export { baseEnv, databaseEnv, regionEnv } from './env.ts';
export { heartbeatKey, startHeartbeat } from './heartbeat.ts';
export { SERVICE_NODE_FLAGS } from './node-flags.ts';
export { DEFAULT_IDLE_EXIT_MS, type IdleWatch, idleEnv, watchIdle } from './idle.ts';

type BaseSpec = ReturnType<typeof baseEnv>;

export interface ServiceContext<C> {
  name: string;
  config: C;
  log: Logger;
  nc: NatsConnection;
  js: JetStreamClient;
  jsm: JetStreamManager;
  metrics: Registry;
  /** The service's HTTP server; routes added during `start` are served once it returns. */
  http: FastifyInstance;
  instanceId: string;
  region: string;
  version: string;
  /** Run on shutdown, in reverse order of registration. */
  onStop(fn: () => Promise<void> | void): void;
  /** Consumers whose in-flight work shows in the heartbeat and is handed back on shutdown. */
  track(c: Consumption): Consumption;
}

export interface ServiceDefinition<S extends EnvSpec & BaseSpec> {
  name: string;
  env: S;
  /** Streams, consumers and buckets this service needs; created or updated at start. */
  resources?(config: ConfigOf<S>): Resources;
  start(ctx: ServiceContext<ConfigOf<S>>): Promise<{ details?(): Record<string, unknown> } | undefined>;
}

export interface RunningService<C> {
  ctx: ServiceContext<C>;
  http: FastifyInstance;
  port: number;
  stop(): Promise<void>;
}

export const VERSION: string = (() => {
  try {
    return JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')).version;
  } catch {
    return '0.0.0';
  }
})();

/** True when `p` settled successfully within `ms`; never throws, never waits longer. */
async function settleWithin(p: Promise<unknown>, ms: number): Promise<boolean> {
  p.catch(() => {});
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<boolean>((res) => {
    timer = setTimeout(() => res(false), ms);
  });
  const done = p.then(
    () => true,
    () => false,
  );
  const ok = await Promise.race([done, timeout]);
  clearTimeout(timer);
  return ok;
}

/** How long in-flight work may take to finish on SIGTERM before it is handed back. */
const SHUTDOWN_GRACE_MS = 7000;

function newInstanceId(service: string): string {
  const host = hostname()
    .replace(/[^A-Za-z0-9_-]/g, '-')
    .slice(0, 40);
  return `${service}-${host}-${process.pid}-${randomBytes(3).toString('hex')}`;
}

/**
 * Boots a service the same way every time: validated config, logger, NATS, provisioning, health
 * server, heartbeat; then the service's own `start`. SIGTERM/SIGINT shut it down gracefully.
 */
export async function runService<S extends EnvSpec & BaseSpec>(
  def: ServiceDefinition<S>,
  opts: { env?: Record<string, string | undefined>; handleSignals?: boolean } = {},
): Promise<RunningService<ConfigOf<S>>> {
  const config = loadConfig(def.env, opts.env ?? process.env);
  const base = config as unknown as ConfigOf<BaseSpec> & { region?: string; idleExitMs?: number };
  const instanceId = base.instanceId || newInstanceId(def.name);
  const log = createLogger({ service: def.name, instanceId, level: base.logLevel });
  const metrics = new Registry();
  metrics.setDefaultLabels({ service: def.name });
  collectDefaultMetrics({ register: metrics });

  let started = false;
  let stopping = false;
  let connected = true;
  const stopHooks: Array<() => Promise<void> | void> = [];
  const consumptions: Consumption[] = [];
  let details: (() => Record<string, unknown>) | undefined;

  const nc = await connectNats({ servers: base.natsUrl, name: instanceId, log });
  void (async () => {
    for await (const s of nc.status()) {
      if (s.type === 'disconnect') connected = false;
      if (s.type === 'reconnect') connected = true;
    }
  })();
  const js = jetstream(nc);
  const jsm = await jetstreamManager(nc);
  const resources = def.resources?.(config) ?? {};
  // Every service heartbeats and may dead-letter, so those two always exist.
  // Every resource at the cluster's replica count: on a 3-server cluster acknowledged writes survive a lost server.
  const replicas = config.jetstreamReplicas;
  const withReplicas = <T extends { replicas: number }>(xs: readonly T[] | undefined) =>
    (xs ?? []).map((x) => ({ ...x, replicas }));
  const report = await provision(nc, jsm, {
    ...resources,
    streams: withReplicas([
      streams.deadLetters,
      ...(resources.streams ?? []).filter((s) => s.name !== streams.deadLetters.name),
    ]),
    kv: withReplicas([kvBuckets.workers, ...(resources.kv ?? []).filter((k) => k.bucket !== kvBuckets.workers.bucket)]),
    objectStores: withReplicas(resources.objectStores),
  });
  log.debug({ provisioned: report }, 'resources provisioned');

  const ready = () => started && !stopping && connected && !nc.isClosed();
  const inFlight = () => consumptions.reduce((n, c) => n + c.inFlight(), 0);
  const http = createHttpApp({
    log,
    registry: metrics,
    // Only a service that declares `trustProxy` in its env (the gateway, behind an Ingress) trusts forwarded headers.
    trustProxy: (config as { trustProxy?: string }).trustProxy,
    health: { ready, live: () => !nc.isClosed() || stopping, details: () => ({ instanceId, inFlight: inFlight() }) },
  });

  const ctx: ServiceContext<ConfigOf<S>> = {
    name: def.name,
    config,
    log,
    nc,
    js,
    jsm,
    metrics,
    http,
    instanceId,
    region: base.region ?? 'local',
    version: VERSION,
    onStop: (fn) => stopHooks.push(fn),
    track: (c) => {
      consumptions.push(c);
      return c;
    },
  };

  const heartbeat = await startHeartbeat(
    nc,
    {
      service: def.name,
      instanceId,
      region: ctx.region,
      version: VERSION,
      startedAt: new Date().toISOString(),
      inFlight,
      ready,
      details: () => details?.() ?? {},
    },
    log,
  );

  const result = await def.start(ctx);
  if (result?.details) details = result.details;
  try {
    await http.listen({ port: base.port, host: '0.0.0.0' });
  } catch (err) {
    await heartbeat.stop();
    await nc.close();
    throw (err as NodeJS.ErrnoException).code === 'EADDRINUSE'
      ? new Error(`port ${base.port} (PORT, ${def.name}'s HTTP server) is already in use`)
      : err;
  }
  const address = http.server.address();
  const port = typeof address === 'object' && address ? address.port : base.port;
  started = true;
  await heartbeat.beat();
  log.info({ port, region: ctx.region, version: VERSION }, `${def.name} ready`);

  let stopped: Promise<void> | undefined;
  const stop = () =>
    (stopped ??= (async () => {
      stopping = true;
      idle.stop();
      log.info('shutting down');
      await Promise.all(consumptions.map((c) => c.stop(SHUTDOWN_GRACE_MS)));
      for (const fn of stopHooks.reverse()) {
        await Promise.resolve(fn()).catch((err) => log.error({ err }, 'stop hook failed'));
      }
      // With NATS gone a drain or a KV delete would wait forever; shutdown must not.
      await settleWithin(heartbeat.stop(), connected ? 2000 : 0);
      if (!(await settleWithin(connected ? nc.drain() : Promise.reject(), 3000))) await nc.close().catch(() => {});
      await http.close();
      log.info('stopped');
    })());

  // A service whose env includes idleEnv (the workers) stops itself after a quiet period, the way
  // SIGTERM stops it (same deadline, exit code 0).
  const idle = watchIdle({
    idleExitMs: base.idleExitMs ?? 0,
    inFlight,
    log,
    onIdle: () => {
      if (opts.handleSignals ?? true) process.kill(process.pid, 'SIGTERM');
      else void stop().catch((err) => log.error({ err }, 'unclean shutdown'));
    },
  });

  if (opts.handleSignals ?? true) {
    const onSignal = (signal: string) => {
      log.info({ signal }, 'signal received');
      setTimeout(() => {
        log.error('shutdown overran its deadline, exiting');
        process.exit(1);
      }, SHUTDOWN_GRACE_MS + 2000).unref();
      void stop().then(
        () => process.exit(0),
        (err) => {
          log.error({ err }, 'unclean shutdown');
          process.exit(1);
        },
      );
    };
    process.once('SIGTERM', onSignal);
    process.once('SIGINT', onSignal);
    // Started by `npm start` with an IPC channel: if the launcher dies, do not live on as an orphan.
    if (process.channel) {
      process.channel.unref();
      process.once('disconnect', () => onSignal('parent exited'));
    }
  }
  return { ctx, http, port, stop };
}

/** Entry-point wrapper: a bad config or an unreachable NATS ends the process with a clear message and code 1. */
export function main<S extends EnvSpec & BaseSpec>(def: ServiceDefinition<S>): void {
  runService(def).catch((err: unknown) => {
    const msg = err instanceof ConfigError ? `configuration error: ${err.message}` : (err as Error).message;
    process.stderr.write(`${def.name}: ${msg}\n`);
    process.exit(1);
  });
}
