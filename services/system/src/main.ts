import { consumers, streams } from '@ppc/proto';
import { migrate, openDatabase } from '@ppc/lib/db';
import { attachConsumer, baseEnv, connectDatabase, databaseEnv, main, type ServiceDefinition } from '@ppc/lib/service';

const env = { ...baseEnv({ port: 9103 }), ...databaseEnv };
const owned = [consumers.system, consumers.systemRecorder, consumers.systemNotifier];

/** Records run events and runs system tasks. For now it migrates the database at start and binds its consumers. */
export const system: ServiceDefinition<typeof env> = {
  name: 'system',
  env,
  resources: () => ({ streams: [streams.systemTasks, streams.events], consumers: owned }),
  async start(ctx) {
    // One round trip first, so a wrong DATABASE_URL stops start-up with a message naming it.
    await (await connectDatabase(ctx.config.databaseUrl, { max: 1 })).end();
    const orm = await openDatabase(ctx.config.databaseUrl);
    ctx.onStop(() => orm.close());
    const applied = await migrate(orm);
    ctx.log.info({ applied: applied.map((m) => m.name) }, applied.length ? 'database migrated' : 'database up to date');
    const attached = await Promise.all(owned.map((c) => attachConsumer(ctx.jsm, c)));
    return { details: () => ({ consumers: attached.map((a) => a.durable), handling: false }) };
  },
};

if (import.meta.main) main(system);
