import { kvBuckets } from '@ppc/proto';
import { baseEnv, main, type ServiceDefinition } from '@ppc/lib/service';

const env = baseEnv({ port: 9105 });

/** Fires scheduled ticks as the elected leader. Until scheduling exists it only provisions its buckets. */
export const clock: ServiceDefinition<typeof env> = {
  name: 'clock',
  env,
  resources: () => ({ kv: [kvBuckets.clockLease, kvBuckets.clockState] }),
  async start() {
    return { details: () => ({ leader: false, schedules: 0 }) };
  },
};

if (import.meta.main) main(clock);
