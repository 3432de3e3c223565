/**
 * The error boundary between a processing thread and the main thread. A value thrown in a worker thread arrives on
 * the other side through the structured clone algorithm, which keeps `message` and `stack` of an Error but not its
 * class or fields: a `RetryableError` would arrive as a plain Error, and the consumer would not know whether to retry.
 * So a thread never throws across: it replies `{ ok: false, error: {name, code, retryable, message, retryAfterMs} }`
 * and the main thread rebuilds the typed error.
 */
import {
  deserializeError,
  PermanentError,
  type PpcError,
  RetryableError,
  type SerializedError,
  serializeError,
} from '@ppc/lib/errors';

/** A thread's answer; `cpuMicros` is the CPU time the thread spent on the task. */
export type ThreadReply<T> =
  | { ok: true; value: T; cpuMicros: number }
  | { ok: false; error: SerializedError; cpuMicros: number };

function threadCpuMicros(): number {
  const u = process.threadCpuUsage();
  return u.user + u.system;
}

/** Runs `fn` in a thread and wraps its outcome as a reply that crosses the boundary intact. */
export async function guarded<T>(fn: () => T | Promise<T>): Promise<ThreadReply<T>> {
  const cpu = threadCpuMicros();
  try {
    const value = await fn();
    return { ok: true, value, cpuMicros: threadCpuMicros() - cpu };
  } catch (err) {
    return { ok: false, error: serializeError(err), cpuMicros: threadCpuMicros() - cpu };
  }
}

/** The value of a reply, or the typed error it carries. */
export function unwrap<T>(reply: ThreadReply<T>): T {
  if (reply.ok) return reply.value;
  throw deserializeError(reply.error);
}

export const THREAD_FAILED = 'REPORT_THREAD_FAILED';
export const THREAD_OUT_OF_MEMORY = 'REPORT_THREAD_OUT_OF_MEMORY';

/**
 * An error that did not come through a reply: the thread died (out of memory, a crash in native code) or could not
 * load its module. Out of memory is permanent (the same report would exhaust it again); anything else is retried.
 */
export function threadFailure(err: unknown): PpcError {
  const e = err as { code?: string; message?: string } | undefined;
  const message = `processing thread failed: ${e?.message ?? String(err)}`;
  if (e?.code === 'ERR_WORKER_OUT_OF_MEMORY') {
    return new PermanentError(message, { code: THREAD_OUT_OF_MEMORY, cause: err });
  }
  return new RetryableError(message, { code: THREAD_FAILED, cause: err });
}
