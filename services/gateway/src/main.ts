import { Kvm } from '@nats-io/kv';
import { migrate, openDatabase, startOutboxRelay } from '@ppc/lib/db';
import { openArtifactStore } from '@ppc/lib/outputs';
import { connectDatabase, main, type ServiceDefinition } from '@ppc/lib/service';
import { kvBuckets, objectStores, streams } from '@ppc/proto';
import { registerGateway } from './app.ts';
import { gatewayConfig, gatewayEnv } from './config.ts';
import type { GatewayDeps } from './context.ts';
import { FastSql } from './db/fast-sql.ts';
import { RunEventHub } from './runs/hub.ts';
import { ensureDemoLogin } from './auth/demo-login.ts';

/**
 * The public face of the mesh: the GraphQL API (queries, mutations, graphql-ws subscriptions), sign-in, artifact
 * downloads and the SPA. Stateless: any number of replicas behind a load balancer.
 */
export const gateway: ServiceDefinition<typeof gatewayEnv> = {
  name: 'gateway',
  env: gatewayEnv,
  resources: () => ({
    streams: [streams.events, streams.reportTasks, streams.urlCheckTasks, streams.deadLetters],
    kv: [kvBuckets.workers],
    objectStores: [objectStores.artifacts],
  }),
  async start(ctx) {
    const config = gatewayConfig(ctx.config);
    // One round trip first, so a wrong DATABASE_URL stops start-up with a message naming it.
    await (await connectDatabase(config.databaseUrl, { max: 1 })).end();
    const orm = await openDatabase(config.databaseUrl, { poolMax: 20 });
    ctx.onStop(() => orm.close());
    // Replicas of system and gateway may start together; migrations serialise on an advisory lock.
    await migrate(orm);
    // Runs created by `runJob`/`retryRun` are published by this replica's relay at once (system's relay is the backstop).
    const relay = startOutboxRelay(orm, ctx.js, {
      onError: (err) => ctx.log.warn({ err: err.message }, 'outbox relay batch failed'),
    });
    ctx.onStop(() => relay.stop());
    const sql = new FastSql(config.databaseUrl, {
      max: 10,
      onIdleError: (err) => ctx.log.warn({ err: err.message }, 'idle database connection lost'),
    });
    ctx.onStop(() => sql.end());
    const deps: GatewayDeps = {
      config,
      log: ctx.log,
      orm,
      sql,
      nc: ctx.nc,
      js: ctx.js,
      jsm: ctx.jsm,
      workers: await new Kvm(ctx.nc).open(kvBuckets.workers.bucket),
      artifacts: await openArtifactStore(ctx.nc),
      relay,
      runEvents: new RunEventHub({ js: ctx.js, jsm: ctx.jsm }, ctx.log),
      metrics: ctx.metrics,
      instanceId: ctx.instanceId,
      version: ctx.version,
    };
    if (config.demoLogin) await ensureDemoLogin(deps, config.demoLogin);
    await registerGateway(ctx.http, deps);
    return undefined;
  },
};

if (import.meta.main) main(gateway);
