import { consumers, streams } from '@ppc/proto';
import { attachConsumer, baseEnv, connectDatabase, databaseEnv, main, type ServiceDefinition } from '@ppc/lib/service';

const env = { ...baseEnv({ port: 9103 }), ...databaseEnv };
const owned = [consumers.system, consumers.systemRecorder, consumers.systemNotifier];

/** Records run events and runs system tasks. Until the data model exists it checks the database and binds only. */
export const system: ServiceDefinition<typeof env> = {
  name: 'system',
  env,
  resources: () => ({ streams: [streams.systemTasks, streams.events], consumers: owned }),
  async start(ctx) {
    const db = await connectDatabase(ctx.config.databaseUrl, {
      onIdleError: (err) => ctx.log.warn({ err: err.message }, 'idle database connection lost'),
    });
    ctx.onStop(() => db.end());
    const attached = await Promise.all(owned.map((c) => attachConsumer(ctx.jsm, c)));
    return { details: () => ({ consumers: attached.map((a) => a.durable), handling: false }) };
  },
};

if (import.meta.main) main(system);
