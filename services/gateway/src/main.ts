import { Kvm } from '@nats-io/kv';
import { kvBuckets, type WorkerHeartbeat } from '@ppc/proto';
import { baseEnv, connectDatabase, databaseEnv, main, type ServiceDefinition } from '@ppc/lib/service';

const env = { ...baseEnv({ port: 8080 }), ...databaseEnv };

/** The public API and UI host. Until the API exists it serves the mesh's status at `/`. */
export const gateway: ServiceDefinition<typeof env> = {
  name: 'gateway',
  env,
  async start(ctx) {
    const db = await connectDatabase(ctx.config.databaseUrl, {
      onIdleError: (err) => ctx.log.warn({ err: err.message }, 'idle database connection lost'),
    });
    ctx.onStop(() => db.end());
    const workers = await new Kvm(ctx.nc).open(kvBuckets.workers.bucket);
    ctx.http.get('/', async () => {
      const instances: WorkerHeartbeat[] = [];
      for await (const key of await workers.keys()) {
        const entry = await workers.get(key);
        if (entry?.operation === 'PUT') instances.push(entry.json<WorkerHeartbeat>());
      }
      instances.sort((a, b) => a.service.localeCompare(b.service) || a.instanceId.localeCompare(b.instanceId));
      return { name: 'ppc-robot', version: ctx.version, instances };
    });
    return undefined;
  },
};

if (import.meta.main) main(gateway);
