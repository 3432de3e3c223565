import { type ConsumerSpec, defineMessage, type StreamSpec } from '@ppc/proto';
import { Type } from '@sinclair/typebox';

export interface ScratchOptions {
  /** Subject prefix; the stream takes `<prefix>.>` and tasks go to `<prefix>.task`. */
  prefix?: string;
  /** The task's `Ppc-Type`. */
  type?: string;
  stream?: Partial<StreamSpec>;
  consumer?: Partial<ConsumerSpec>;
}

/**
 * A throwaway work-queue stream, durable pull consumer and small task type (`{ id, n }`), so a test
 * or a benchmark run never shares state with another.
 */
export function scratchResources(name: string, opts: ScratchOptions = {}) {
  const prefix = opts.prefix ?? `t.${name.toLowerCase()}`;
  const subject = `${prefix}.task`;
  const stream: StreamSpec = {
    name,
    subjects: [`${prefix}.>`],
    retention: 'workqueue',
    storage: 'file',
    discard: 'old',
    maxAgeMs: 0,
    maxMsgsPerSubject: -1,
    maxBytes: -1,
    maxMsgSize: 1024 * 1024,
    duplicateWindowMs: 60_000,
    replicas: 1,
    description: 'scratch stream',
    ...opts.stream,
  };
  const consumer: ConsumerSpec = {
    stream: name,
    durable: `${name}_C`,
    filterSubject: `${prefix}.>`,
    ackWaitMs: 2000,
    maxDeliver: 3,
    backoffMs: [200],
    maxAckPending: 1000,
    deliverPolicy: 'all',
    description: 'scratch consumer',
    ...opts.consumer,
  };
  const Task = defineMessage({
    type: opts.type ?? 'test.task.v1',
    schema: Type.Object(
      { id: Type.String({ minLength: 1 }), n: Type.Integer({ minimum: 0 }) },
      { additionalProperties: false },
    ),
    subject: () => subject,
    msgId: (b) => `task.${b.id}`,
  });
  return { stream, consumer, Task, subject };
}
