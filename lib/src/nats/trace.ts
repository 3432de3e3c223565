import { randomFillSync } from 'node:crypto';

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

// One getrandom per 170 traceparents instead of two per publish (~4.5 µs each time on Node 24).
const pool = Buffer.alloc(4096);
let poolOffset = pool.length;

function randomHex(bytes: number): string {
  if (poolOffset + bytes > pool.length) {
    randomFillSync(pool);
    poolOffset = 0;
  }
  const hex = pool.toString('hex', poolOffset, poolOffset + bytes);
  poolOffset += bytes;
  return hex;
}

/** W3C trace context: keep the caller's trace id, give this hop a new span id. */
export function childTraceparent(parent?: string): string {
  const m = parent ? TRACEPARENT.exec(parent) : null;
  const traceId = m?.[1] ?? randomHex(16);
  return `00-${traceId}-${randomHex(8)}-${m?.[3] ?? '01'}`;
}
