// What the transport bench's parent and its consumer processes must agree on: resources and IPC.
import { scratchResources } from '@ppc/lib/testing';

/**
 * raw: the bare client, JSON body, no headers. typed: lib's publish/consume. rawHeaders: the bare
 * client sending what typed puts on the wire (the same three headers, a deduplicating msg id) and
 * reading the type header back: it splits typed's cost into wire format (raw → rawHeaders) and
 * lib's own code (rawHeaders → typed).
 */
export type Mode = 'raw' | 'rawHeaders' | 'typed';

/** A valid W3C traceparent of the length lib generates; rawHeaders sends it unchanged. */
export const FIXED_TRACEPARENT = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';

/** Parent → consumer process. */
export type Command = { cmd: 'start'; mode: Mode; name: string; prefetch: number } | { cmd: 'stop' };

/** Consumer process → parent. `total` (acks) and `cpuMicros` (user + system) count since the last start. */
export type Report =
  | { type: 'connected' }
  | { type: 'started' }
  | { type: 'acked'; total: number }
  | { type: 'stopped'; total: number; cpuMicros: number }
  | { type: 'error'; message: string };

/**
 * One fresh work-queue stream, durable pull consumer and task type per measurement, so no run
 * inherits another's backlog, dedupe window or consumer state. Both paths use exactly these.
 */
export function benchResources(name: string) {
  return scratchResources(name, {
    prefix: `bench.${name.toLowerCase()}`,
    type: 'bench.task.v1',
    stream: { duplicateWindowMs: 120_000, description: 'transport bench' },
    // Long enough that nothing is redelivered mid-run: every delivery is counted exactly once.
    consumer: { ackWaitMs: 30_000, description: 'transport bench consumer' },
  });
}
