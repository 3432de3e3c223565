import type { Static, TSchema } from '@sinclair/typebox';
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler';
import * as s from './schemas.ts';
import { msgIds, type RunEventKind, subjects } from './subjects.ts';

/** Raised when a message body does not match its schema; `field` is the JSON pointer of the first problem. */
export class MessageValidationError extends Error {
  override name = 'MessageValidationError';
  readonly type: string;
  readonly field: string;
  readonly reason: string;
  constructor(type: string, field: string, reason: string) {
    super(`${type}: ${field || '(body)'}: ${reason}`);
    this.type = type;
    this.field = field;
    this.reason = reason;
  }
}

/**
 * One message type: its versioned `Ppc-Type`, schema, the subject it is published on and its
 * deterministic `Nats-Msg-Id` (absent where every publish is meant to be stored).
 */
export interface MessageDef<S extends TSchema = TSchema> {
  readonly type: string;
  readonly schema: S;
  // Method syntax on purpose: a specific def must be usable where any MessageDef is expected.
  subject(body: Static<S>): string;
  msgId?(body: Static<S>): string;
  /** Compiled once, on first use. */
  check(body: unknown): body is Static<S>;
  /** Throws MessageValidationError naming the first invalid field. */
  assert(body: unknown): asserts body is Static<S>;
}

export type BodyOf<D> = D extends MessageDef<infer S> ? Static<S> : never;

export function defineMessage<S extends TSchema>(def: {
  type: string;
  schema: S;
  subject: (body: Static<S>) => string;
  msgId?: (body: Static<S>) => string;
}): MessageDef<S> {
  let compiled: TypeCheck<S> | undefined;
  const checker = () => {
    compiled ??= TypeCompiler.Compile(def.schema);
    return compiled;
  };
  return {
    ...def,
    check: (body: unknown): body is Static<S> => checker().Check(body),
    assert(body: unknown): asserts body is Static<S> {
      const c = checker();
      if (c.Check(body)) return;
      const first = c.Errors(body).First();
      throw new MessageValidationError(def.type, first?.path ?? '', first?.message ?? 'invalid');
    },
  };
}

export const ReportTaskMsg = defineMessage({
  type: 'report.task.v1',
  schema: s.ReportTask,
  subject: (b) => subjects.reportTask(b.region, b.reportType),
  msgId: (b) => msgIds.run(b.runId, b.attempt),
});

export const UrlCheckTaskMsg = defineMessage({
  type: 'urlcheck.task.v1',
  schema: s.UrlCheckTask,
  subject: (b) => subjects.urlCheckTask(b.region),
  msgId: (b) => msgIds.run(b.runId, b.attempt),
});

export const SystemTaskMsg = defineMessage({
  type: 'system.task.v1',
  schema: s.ClockTick,
  subject: (b) => subjects.systemTask(b.schedule),
  msgId: (b) => msgIds.tick(b.schedule, b.scheduledAt),
});

export const ClusterTaskMsg = defineMessage({
  type: 'cluster.task.v1',
  schema: s.ClockTick,
  subject: (b) => subjects.clusterTask(b.schedule),
  msgId: (b) => msgIds.tick(b.schedule, b.scheduledAt),
});

const runEvent = <S extends TSchema & { static: { runId: string; attempt: number } }>(
  kind: RunEventKind,
  schema: S,
  seqOf?: (b: Static<S>) => number,
) =>
  defineMessage({
    type: `run.${kind}.v1`,
    schema,
    subject: (b: Static<S>) => subjects.runEvent(b.runId, kind),
    msgId: (b: Static<S>) => msgIds.runEvent(b.runId, kind, b.attempt, seqOf?.(b) ?? 0),
  });

export const RunQueuedMsg = runEvent('queued', s.RunQueued);
export const RunStartedMsg = runEvent('started', s.RunStarted);
/** Progress events are keyed by their rows count so a retried publish is dropped but new progress is not. */
export const RunProgressMsg = runEvent('progress', s.RunProgress, (b) => Math.round(b.percent * 100) * 1e9 + b.rows);
export const RunSucceededMsg = runEvent('succeeded', s.RunSucceeded);
export const RunFailedMsg = runEvent('failed', s.RunFailed);
export const RunCancelledMsg = runEvent('cancelled', s.RunCancelled);

export const runEventMessages = [
  RunQueuedMsg,
  RunStartedMsg,
  RunProgressMsg,
  RunSucceededMsg,
  RunFailedMsg,
  RunCancelledMsg,
] as const;

export const ScaleDecisionMsg = defineMessage({
  type: 'scale.decision.v1',
  schema: s.ScaleDecision,
  subject: (b) => subjects.scaleEvent(b.pool),
});

export const WorkerHeartbeatMsg = defineMessage({
  type: 'worker.heartbeat.v1',
  schema: s.WorkerHeartbeat,
  subject: (b) => subjects.workerEvent(b.instanceId, 'heartbeat'),
});

export const RunCancelMsg = defineMessage({
  type: 'run.cancel.v1',
  schema: s.RunCancel,
  subject: (b) => subjects.runCancel(b.runId),
});

export const CredentialRequestMsg = defineMessage({
  type: 'credentials.request.v1',
  schema: s.CredentialRequest,
  subject: () => subjects.credentialsToken,
});

export const CredentialReplyMsg = defineMessage({
  type: 'credentials.reply.v1',
  schema: s.CredentialReply,
  subject: () => subjects.credentialsToken,
});

export const ClockLeaderMsg = defineMessage({
  type: 'clock.leader.v1',
  schema: s.ClockLeader,
  subject: () => subjects.clockLeader,
});

export const allMessages = [
  ReportTaskMsg,
  UrlCheckTaskMsg,
  SystemTaskMsg,
  ClusterTaskMsg,
  ...runEventMessages,
  ScaleDecisionMsg,
  WorkerHeartbeatMsg,
  RunCancelMsg,
  CredentialRequestMsg,
  CredentialReplyMsg,
  ClockLeaderMsg,
] as const;

export const headers = {
  msgId: 'Nats-Msg-Id',
  type: 'Ppc-Type',
  traceparent: 'traceparent',
  dlqReason: 'Ppc-Dlq-Reason',
  dlqField: 'Ppc-Dlq-Field',
  dlqStream: 'Ppc-Dlq-Stream',
  dlqConsumer: 'Ppc-Dlq-Consumer',
  dlqSeq: 'Ppc-Dlq-Seq',
  dlqDeliveries: 'Ppc-Dlq-Deliveries',
  dlqSubject: 'Ppc-Dlq-Subject',
} as const;
