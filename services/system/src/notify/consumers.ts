import { DeliverPolicy, JetStreamApiCodes, JetStreamApiError, type JetStreamManager } from '@nats-io/jetstream';
import type { Logger } from '@ppc/lib/log';
import { consumerConfig, ensureConsumer, type ProvisionOutcome } from '@ppc/lib/nats';
import { consumers } from '@ppc/proto';

/** The notifier's durables: one per run event kind that can cause mail. */
export const NOTIFIER_CONSUMERS = [consumers.systemNotifierFailed, consumers.systemNotifierSucceeded] as const;

const isNotFound = (err: unknown) =>
  err instanceof JetStreamApiError && err.code === JetStreamApiCodes.ConsumerNotFound;

/**
 * Creates or updates the notifier's durables, taking over from the retired `system-notifier` (which read every
 * run event) when it is still there: a new durable then starts after the retired one's ack floor, since the
 * events up to it were handled and `deliver all` would read 30 days of failures and successes again (the
 * notification log would keep them from being mailed twice, but not from being decided again). Events past
 * the floor may come a second time; the notification log makes that harmless. The retired durable is deleted
 * afterwards; a replica still reading it (a rolling upgrade) logs failed pulls until it is replaced.
 * Safe to run on several replicas at once (the same floor gives the same config, which the server accepts twice).
 */
export async function provisionNotifierConsumers(
  jsm: JetStreamManager,
  log: Logger,
): Promise<Record<string, ProvisionOutcome | 'taken over'>> {
  const retired = consumers.retiredSystemNotifier;
  const floor = await jsm.consumers.info(retired.stream, retired.durable).then(
    (info) => info.ack_floor.stream_seq,
    (err: unknown) => {
      if (isNotFound(err)) return undefined;
      throw err;
    },
  );
  const report: Record<string, ProvisionOutcome | 'taken over'> = {};
  for (const spec of NOTIFIER_CONSUMERS) {
    const exists = await jsm.consumers.info(spec.stream, spec.durable).then(
      () => true,
      (err: unknown) => {
        if (isNotFound(err)) return false;
        throw err;
      },
    );
    if (!exists && floor !== undefined) {
      await jsm.consumers.add(spec.stream, {
        ...consumerConfig(spec),
        deliver_policy: DeliverPolicy.StartSequence,
        opt_start_seq: floor + 1,
      });
      report[spec.durable] = 'taken over';
      log.info({ consumer: spec.durable, from: retired.durable, startSeq: floor + 1 }, 'notifier consumer taken over');
    } else {
      report[spec.durable] = await ensureConsumer(jsm, spec);
    }
  }
  if (floor !== undefined) {
    await jsm.consumers.delete(retired.stream, retired.durable).catch((err: unknown) => {
      if (!isNotFound(err)) throw err;
    });
    log.info({ consumer: retired.durable }, 'retired notifier consumer deleted');
  }
  return report;
}
