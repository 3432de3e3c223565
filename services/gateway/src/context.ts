import type { NatsConnection } from '@nats-io/transport-node';
import type { JetStreamClient, JetStreamManager } from '@nats-io/jetstream';
import type { KV } from '@nats-io/kv';
import type { ObjectStore } from '@nats-io/obj';
import type { EntityManager, MikroORM } from '@mikro-orm/postgresql';
import { type ApiScope, type OutboxRelay, type Role, tenantEm } from '@ppc/lib/db';
import type { Logger } from '@ppc/lib/log';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Registry } from 'prom-client';
import type { GatewayConfig } from './config.ts';
import type { FastSql, Sql } from './db/fast-sql.ts';
import type { RunEventHub } from './runs/hub.ts';
import { ForbiddenError, UnauthenticatedError } from './graphql/errors.ts';

/** What a role may do; an API token's scopes are narrowed to its creator's role. */
export const ROLE_SCOPES: Record<Role, readonly ApiScope[]> = {
  owner: ['read', 'write', 'run', 'admin'],
  member: ['read', 'write', 'run'],
  viewer: ['read'],
};

/** Who is calling: resolved from the session cookie or the bearer token on every request and WebSocket. */
export interface Caller {
  userId: string;
  organizationId: string;
  role: Role;
  via: 'session' | 'token';
  sessionId: string | null;
  tokenId: string | null;
  /** Effective scopes: the role's, intersected with the token's. */
  scopes: ReadonlySet<ApiScope>;
  /** When the session or token stops being valid (null: a token without expiry). */
  expiresAt: Date | null;
}

/** Everything features need, built once at start and passed down. */
export interface GatewayDeps {
  config: GatewayConfig;
  log: Logger;
  orm: MikroORM;
  nc: NatsConnection;
  js: JetStreamClient;
  jsm: JetStreamManager;
  /** The `workers` KV bucket (heartbeats). */
  workers: KV;
  /** The `artifacts` object store. */
  artifacts: ObjectStore;
  /** Named-statement pg pool for the hot paths (auth lookups, runs); see db/fast-sql.ts. */
  sql: FastSql;
  /** Run events for `runUpdated`: one consumer per watched run on this replica (runs/hub.ts). */
  runEvents: RunEventHub;
  /** The outbox relay this replica runs; `kick()` after committing a run publishes its task at once. */
  relay: OutboxRelay;
  metrics: Registry;
  instanceId: string;
  version: string;
}

/** Resolves the caller of an HTTP request and of a WebSocket's `connection_init`; implemented in auth/. */
export interface Authenticator {
  fromRequest(req: FastifyRequest): Promise<Caller | null>;
  fromConnectionInit(payload: Record<string, unknown> | undefined, upgrade: UpgradeRequest): Promise<Caller | null>;
  /** False once the session or token has expired or been revoked (or the membership is gone). */
  stillValid(caller: Caller): Promise<boolean>;
}

/** The GraphQL context: mercurius merges this into its own (`app`, `reply`, `pubsub`). */
/** A WebSocket upgrade request: its headers and the cookies they carry. */
export interface UpgradeRequest {
  headers: FastifyRequest['headers'];
  cookies?: Record<string, string | undefined>;
}

export interface GatewayContext {
  deps: GatewayDeps;
  caller: Caller | null;
  /** Set for HTTP requests (cookies are written through it); absent on WebSocket operations. */
  reply?: FastifyReply;
  request?: FastifyRequest;
}

/** The caller, or UNAUTHENTICATED; with `scope`, FORBIDDEN unless the caller holds it. */
export function requireCaller(ctx: GatewayContext, scope?: ApiScope): Caller {
  const caller = ctx.caller;
  if (!caller) throw new UnauthenticatedError();
  if (scope && !caller.scopes.has(scope)) {
    throw new ForbiddenError(
      caller.via === 'token'
        ? `this API token lacks the ${scope} scope`
        : `your role (${caller.role}) does not allow this (needs ${scope})`,
    );
  }
  return caller;
}

/** An entity manager scoped to the caller's organization by row-level security (see lib/src/db/tenant.ts). */
export function tenantOf(ctx: GatewayContext, scope?: ApiScope): EntityManager {
  const caller = requireCaller(ctx, scope);
  return tenantEm(ctx.deps.orm, { organizationId: caller.organizationId, userId: caller.userId });
}

/** Statements scoped to the caller's organization by row-level security, on the hot-path pool (one round trip each). */
export function tenantSql(ctx: GatewayContext, scope: ApiScope): Sql {
  const caller = requireCaller(ctx, scope);
  return ctx.deps.sql.tenant({ organizationId: caller.organizationId, userId: caller.userId });
}
