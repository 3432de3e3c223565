import { consumers, streams } from '@ppc/proto';
import { attachConsumer, baseEnv, main, type ServiceDefinition } from '@ppc/lib/service';

const env = baseEnv({ port: 9104 });

/** Turns cluster ticks into scale decisions. Until the policy exists it binds to its consumer only. */
export const autoscaler: ServiceDefinition<typeof env> = {
  name: 'autoscaler',
  env,
  resources: () => ({ streams: [streams.clusterTasks], consumers: [consumers.autoscaler] }),
  async start(ctx) {
    const attached = await attachConsumer(ctx.jsm, consumers.autoscaler);
    return { details: () => ({ consumer: attached.durable, handling: false }) };
  },
};

if (import.meta.main) main(autoscaler);
