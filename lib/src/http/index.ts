import type { IncomingMessage } from 'node:http';
import proxyAddr from '@fastify/proxy-addr';
import Fastify, {
  type FastifyBaseLogger,
  type FastifyInstance,
  type FastifyServerOptions,
  LogController,
} from 'fastify';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';

export interface HealthState {
  /** Ready to take work: connected and set up, not shutting down. */
  ready(): boolean;
  /** Alive: the process works at all. */
  live(): boolean;
  details?(): Record<string, unknown>;
}

/**
 * The operational surface every service exposes: `/healthz`, `/readyz`, `/metrics`.
 * Services with an API (the gateway) register these routes on their own server instead.
 */
export function registerHealthRoutes(app: FastifyInstance, health: HealthState, registry: Registry): void {
  app.get('/healthz', async (_req, reply) => reply.code(health.live() ? 200 : 503).send({ ok: health.live() }));
  app.get('/readyz', async (_req, reply) => {
    const ready = health.ready();
    return reply.code(ready ? 200 : 503).send({ ready, ...health.details?.() });
  });
  app.get('/metrics', async (_req, reply) =>
    reply.header('content-type', registry.contentType).send(await registry.metrics()),
  );
}

function parseTrustProxy(value: string): FastifyServerOptions['trustProxy'] {
  if (value === '' || value === 'false') return false;
  if (value === 'true') return true;
  // A hop count, as the function form (fastify's typings omit the number form).
  if (/^\d+$/.test(value)) {
    const hops = Number(value);
    return (_address: string, hop: number) => hop < hops;
  }
  return value
    .split(',')
    .map((v) => v.trim())
    .filter(Boolean);
}

/**
 * The client's address as fastify's `request.ip` works it out under the same trust setting, for raw requests that do
 * not pass through fastify's routing (WebSocket upgrades).
 */
export function clientAddress(trustProxy: string): (req: IncomingMessage) => string {
  const trust = parseTrustProxy(trustProxy);
  if (!trust) return (req) => req.socket.remoteAddress ?? '';
  const fn =
    typeof trust === 'function'
      ? (trust as (address: string, hop: number) => boolean)
      : trust === true
        ? () => true
        : proxyAddr.compile(trust as string[]);
  return (req) => proxyAddr(req, fn);
}

/** A fastify app with the health routes, not yet listening, so a service can add its own routes first. */
export function createHttpApp(opts: {
  health: HealthState;
  registry: Registry;
  log: Logger;
  /** `X-Forwarded-*` trust: '' none, 'true' all, a hop count, or comma-separated addresses/CIDRs of the proxies. */
  trustProxy?: string;
}): FastifyInstance {
  const app = Fastify({
    trustProxy: parseTrustProxy(opts.trustProxy ?? ''),
    loggerInstance: opts.log.child({ component: 'http' }) as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
  });
  registerHealthRoutes(app, opts.health, opts.registry);
  return app;
}

export async function startHealthServer(opts: {
  port: number;
  host?: string;
  health: HealthState;
  registry: Registry;
  log: Logger;
}): Promise<FastifyInstance> {
  const app = createHttpApp(opts);
  await app.listen({ port: opts.port, host: opts.host ?? '0.0.0.0' });
  return app;
}
