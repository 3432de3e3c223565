import { BadUserInputError } from '../graphql/errors.ts';

/**
 * The API's one pagination pattern (also used by `runs`): a page is `{ items, nextCursor }`; pass `nextCursor` as
 * `after` for the next page; null means there is none. Cursors are opaque keyset positions, so rows added or
 * removed meanwhile never shift a page.
 */
export interface Page<T> {
  items: T[];
  nextCursor: string | null;
}

export const DEFAULT_PAGE = 50;
export const MAX_PAGE = 200;

export function pageSize(first: number | null | undefined): number {
  const n = first ?? DEFAULT_PAGE;
  if (!Number.isInteger(n) || n < 1 || n > MAX_PAGE) {
    throw new BadUserInputError('first', `must be 1 to ${MAX_PAGE}, got ${n}`);
  }
  return n;
}

/** Keyset position after a row ordered by (`name`, `id`). */
export function encodeCursor(name: string, id: string): string {
  return Buffer.from(JSON.stringify([name, id])).toString('base64url');
}

export function decodeCursor(after: string): { name: string; id: string } {
  try {
    const value = JSON.parse(Buffer.from(after, 'base64url').toString('utf8')) as unknown;
    if (Array.isArray(value) && value.length === 2 && typeof value[0] === 'string' && isUuid(value[1])) {
      return { name: value[0], id: value[1] };
    }
  } catch {
    // Reported below, the same as a well-formed value of the wrong shape.
  }
  throw new BadUserInputError('after', 'not a cursor from this list (pass nextCursor unchanged)');
}

/** `where` of the rows after a cursor, in (name, id) order. */
export function afterCursor(after: string | null | undefined): Record<string, unknown> {
  if (!after) return {};
  const c = decodeCursor(after);
  return { $or: [{ name: { $gt: c.name } }, { name: c.name, id: { $gt: c.id } }] };
}

/** Rows fetched with `limit: size + 1` cut to a page. */
export function toPage<T extends { name: string; id: string }>(rows: T[], size: number): Page<T> {
  const items = rows.slice(0, size);
  const last = items.at(-1);
  return { items, nextCursor: rows.length > size && last ? encodeCursor(last.name, last.id) : null };
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Ids are UUIDs; anything else cannot name a row (and must not reach Postgres as a uuid). */
export function isUuid(value: unknown): value is string {
  return typeof value === 'string' && UUID.test(value);
}
