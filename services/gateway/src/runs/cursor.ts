/**
 * The `runs` listing's keyset cursor: the last row's (queued_at, id), opaque to clients. `queued_at` travels with
 * its microseconds as PostgreSQL stores them; a millisecond JS Date would skip or repeat rows queued within the
 * same millisecond.
 */

export interface RunCursor {
  /** `YYYY-MM-DDTHH:MM:SS.ffffffZ` */
  queuedAt: string;
  id: string;
}

export class InvalidCursorError extends Error {
  override name = 'InvalidCursorError';
}

const VERSION = 'r1';
const TIMESTAMP = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export function encodeCursor(c: RunCursor): string {
  return Buffer.from(`${VERSION}|${c.queuedAt}|${c.id}`, 'utf8').toString('base64url');
}

/** Throws InvalidCursorError for anything `encodeCursor` did not produce. */
export function decodeCursor(raw: string): RunCursor {
  if (raw.length > 200 || !/^[A-Za-z0-9_-]+$/.test(raw)) throw new InvalidCursorError('not a cursor of this listing');
  const [version, queuedAt, id, ...rest] = Buffer.from(raw, 'base64url').toString('utf8').split('|');
  if (version !== VERSION || rest.length > 0 || !queuedAt || !id) {
    throw new InvalidCursorError('not a cursor of this listing');
  }
  if (!TIMESTAMP.test(queuedAt) || Number.isNaN(Date.parse(queuedAt)) || !UUID.test(id)) {
    throw new InvalidCursorError('not a cursor of this listing');
  }
  return { queuedAt, id };
}
