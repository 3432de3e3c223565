import { consumers, streams } from '@ppc/proto';
import { attachConsumer, baseEnv, idleEnv, main, regionEnv, type ServiceDefinition } from '@ppc/lib/service';

const env = { ...baseEnv({ port: 9101 }), ...regionEnv, ...idleEnv };

/** Builds report runs. Until the report pipeline exists it binds to its consumer and leaves tasks queued. */
export const reportWorker: ServiceDefinition<typeof env> = {
  name: 'report-worker',
  env,
  resources: (config) => ({ streams: [streams.reportTasks], consumers: [consumers.reportWorker(config.region)] }),
  async start(ctx) {
    const attached = await attachConsumer(ctx.jsm, consumers.reportWorker(ctx.config.region));
    return { details: () => ({ consumer: attached.durable, handling: false }) };
  },
};

if (import.meta.main) main(reportWorker);
