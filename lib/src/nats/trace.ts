import { randomBytes } from 'node:crypto';

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

/** W3C trace context: keep the caller's trace id, give this hop a new span id. */
export function childTraceparent(parent?: string): string {
  const m = parent ? TRACEPARENT.exec(parent) : null;
  const traceId = m?.[1] ?? randomBytes(16).toString('hex');
  return `00-${traceId}-${randomBytes(8).toString('hex')}-${m?.[3] ?? '01'}`;
}
