import type { JetStreamManager } from '@nats-io/jetstream';
import type { ConsumerSpec } from '@ppc/proto';

export interface AttachedConsumer {
  stream: string;
  durable: string;
  /** Messages waiting for this consumer, as the server last reported. */
  pending(): Promise<number>;
}

/**
 * Binds to a durable consumer without pulling from it: for a service whose handlers are not built
 * yet, so its work waits in the stream instead of being taken and dropped.
 */
export async function attachConsumer(jsm: JetStreamManager, spec: ConsumerSpec): Promise<AttachedConsumer> {
  await jsm.consumers.info(spec.stream, spec.durable);
  return {
    stream: spec.stream,
    durable: spec.durable,
    pending: async () => (await jsm.consumers.info(spec.stream, spec.durable)).num_pending,
  };
}
