import { consumers, streams } from '@ppc/proto';
import { attachConsumer, baseEnv, idleEnv, main, regionEnv, type ServiceDefinition } from '@ppc/lib/service';

const env = { ...baseEnv({ port: 9102 }), ...regionEnv, ...idleEnv };

/** Checks landing URLs. Until the checker exists it binds to its consumer and leaves tasks queued. */
export const urlChecker: ServiceDefinition<typeof env> = {
  name: 'url-checker',
  env,
  resources: (config) => ({ streams: [streams.urlCheckTasks], consumers: [consumers.urlChecker(config.region)] }),
  async start(ctx) {
    const attached = await attachConsumer(ctx.jsm, consumers.urlChecker(ctx.config.region));
    return { details: () => ({ consumer: attached.durable, handling: false }) };
  },
};

if (import.meta.main) main(urlChecker);
