import { StringDecoder } from 'node:string_decoder';

export class JsonStreamError extends Error {
  override name = 'JsonStreamError';
}

/** Decodes rows from their JSON text without parsing them into objects (see RowDecoder). */
export interface RowTextDecoder {
  /** Decodes and hands out the row starting at `text[pos]` and returns the index just past it, or -1 if it can't. */
  match(text: string, pos: number): number;
  /** Learns from a row it could not match (its complete text); false when that row cannot be learnt. */
  learn(rowText: string): boolean;
}

/**
 * Row-level incremental parser for a Google Ads `searchStream` body: `[{"results":[row, row, ...], "fieldMask":
 * ..., "requestId": ...}, {...}, ...]`, or a bare `{"error": ...}` object. The rows that complete in a network read
 * are handed out at the end of that read, so memory holds one read's rows plus the network buffer, never a whole
 * 10,000-row chunk (a chunk parsed whole costs tens of MB of objects at once). Everything of a chunk except its rows
 * (fieldMask, requestId, an in-stream `error`, `partialFailureError`) is handed out as a small object when the chunk
 * closes.
 *
 * Bytes are decoded with a StringDecoder, which holds back a multi-byte UTF-8 character split between two network
 * chunks. Boundaries are found by depth counting aware of strings and escapes, and every row and chunk remainder is
 * validated by `JSON.parse`. Three ways to a row, fastest first:
 * - with a `decoder` (RowDecoder: the connector's typed reports), a row in the layout of the row before it is
 *   decoded straight from the text into cells, with no scanning and no objects;
 * - otherwise the rows up to the last likely row boundary of the read (`}` `,` `{`) are parsed with one `JSON.parse`
 *   without scanning, which only succeeds when that text is exactly a list of rows;
 * - otherwise (and for a row split between reads) the row is scanned; the rows completed in a read are parsed
 *   with one `JSON.parse` (a call per row was the bulk of the cost).
 *
 * Depths: 1 inside the top-level array, 2 inside a chunk object, 3 inside its `results` array, 4+ inside a row.
 */
export class SearchStreamParser {
  private readonly decoder = new StringDecoder('utf8');
  private readonly onRow: (row: unknown) => void;
  private readonly onChunk: (chunk: Record<string, unknown>) => void;
  private started = false;
  private done = false;
  private bare = false;
  private depth = 0;
  private inString = false;
  private escaped = false;
  /** In the `results` array of the current chunk. */
  private inResults = false;
  /** Between rows of `results`, the next non-space must be a row (true) or a comma/close (false). */
  private expectRow = true;
  /** Between chunks, the next non-space must be a chunk (true) or a comma/close (false). */
  private expectChunk = true;
  /** The current chunk's text without its rows. */
  private rest = '';
  private copying = false;
  /** Text of a row begun in an earlier push. */
  private rowCarry = '';
  private inRow = false;
  /** The last string closed at depth 2 (a key, when followed by `:`); `results` opens the rows. */
  private lastKey = '';
  private keyCarry = '';
  private inKey = false;
  private readonly maxRowChars: number;

  private rowDecoder: RowTextDecoder | null;
  /** Templates the decoder could not learn, in a row; past a few, it is given up for this stream. */
  private failedLearns = 0;
  /** The row being scanned is to be learnt by the decoder when it closes. */
  private learnRow = false;

  constructor(opts: {
    onRow: (row: unknown) => void;
    onChunk: (chunk: Record<string, unknown>) => void;
    maxRowChars?: number;
    /** Decodes rows straight from their text where it can; `onRow` gets only the others (in order with them). */
    decoder?: RowTextDecoder;
  }) {
    this.rowDecoder = opts.decoder ?? null;
    this.onRow = opts.onRow;
    this.onChunk = opts.onChunk;
    this.maxRowChars = opts.maxRowChars ?? 64 * 1024 * 1024;
  }

  push(buf: Buffer): void {
    this.scan(this.decoder.write(buf));
  }

  /** Call at the end of the body: throws when it stopped short. */
  end(): void {
    this.scan(this.decoder.end());
    if (!this.done) {
      throw new JsonStreamError(
        this.started ? 'JSON body ended before the array was closed (truncated response)' : 'empty JSON body',
      );
    }
  }

  private fail(what: string, ch: number): never {
    throw new JsonStreamError(`${what}, found ${JSON.stringify(String.fromCharCode(ch))}`);
  }

  /** Hands out the complete rows in `text[from, to)` (comma-separated), after `rowCarry` when it is set. */
  private flushRows(text: string, from: number, to: number): void {
    const body = this.rowCarry ? this.rowCarry + text.slice(0, to) : text.slice(from, to);
    this.rowCarry = '';
    const rows = parse(`[${body}]`, 'row') as unknown[];
    for (let i = 0; i < rows.length; i++) this.onRow(rows[i]);
  }

  /**
   * The rows in `text[from, to]` when that is exactly a comma-separated list of JSON objects, else null. Safe without
   * scanning: `[` + text + `]` parses only if its brackets balance outside strings, so a boundary guessed inside a
   * string, inside a row or past the end of `results` fails to parse and the caller scans instead.
   */
  private rowsUpTo(text: string, from: number, to: number): unknown[] | null {
    let rows: unknown;
    try {
      rows = JSON.parse(`[${text.slice(from, to + 1)}]`);
    } catch {
      return null;
    }
    if (!Array.isArray(rows)) return null;
    for (let r = 0; r < rows.length; r++) {
      const row: unknown = rows[r];
      if (row === null || typeof row !== 'object' || Array.isArray(row)) return null;
    }
    return rows;
  }

  private scan(text: string): void {
    const n = text.length;
    let depth = this.depth;
    let inString = this.inString;
    let escaped = this.escaped;
    let rowStart = this.inRow ? 0 : -1;
    let copyFrom = this.copying ? 0 : -1;
    let keyFrom = this.inKey ? 0 : -1;
    // Rows completed in this push and not yet handed out: text[batchFrom, batchTo), after `rowCarry` (the start of
    // the first one, when it began in an earlier push).
    let batchFrom = -1;
    let batchTo = -1;
    let fast = true;
    for (let i = 0; i < n; i++) {
      if (inString) {
        // Jump to the closing quote (indexOf is vectorised), skipping quotes escaped by an odd run of backslashes.
        let from = i;
        if (escaped) {
          escaped = false;
          from = i + 1;
        }
        let close = -1;
        for (;;) {
          const q = text.indexOf('"', from);
          const end = q < 0 ? n : q;
          let k = end - 1;
          while (k >= from && text.charCodeAt(k) === 0x5c) k--;
          const odd = (end - 1 - k) % 2 === 1;
          if (q < 0) {
            escaped = odd; // the string goes on in the next push
            break;
          }
          if (!odd) {
            close = q;
            break;
          }
          from = q + 1;
        }
        if (close < 0) {
          i = n;
          break;
        }
        i = close;
        inString = false;
        if (keyFrom >= 0) {
          this.lastKey = this.keyCarry + text.slice(keyFrom, i);
          this.keyCarry = '';
          keyFrom = -1;
        }
        continue;
      }
      const c = text.charCodeAt(i);
      if (depth >= 4 && this.inResults) {
        // Inside a row: only nesting and strings matter.
        if (c === 0x22) inString = true;
        else if (c === 0x7b || c === 0x5b) depth++;
        else if (c === 0x7d || c === 0x5d) {
          depth--;
          if (depth === 3) {
            // The row is complete; it is parsed with the other rows completed in this push (one JSON.parse for
            // many rows is several times faster than one per row).
            if (this.learnRow) {
              this.learnRow = false;
              const rowText = this.rowCarry ? this.rowCarry + text.slice(0, i + 1) : text.slice(rowStart, i + 1);
              if (this.rowDecoder?.learn(rowText)) this.failedLearns = 0;
              else if (++this.failedLearns >= 8) this.rowDecoder = null;
            }
            if (batchFrom < 0) batchFrom = rowStart;
            batchTo = i + 1;
            rowStart = -1;
            this.expectRow = false;
          }
        }
        continue;
      }
      if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) continue;
      if (!this.started) {
        this.started = true;
        if (c === 0x5b) {
          depth = 1;
          continue;
        }
        if (c !== 0x7b) this.fail('expected a JSON array or object', c);
        this.bare = true; // a lone object, as error bodies are: treat it as the only chunk
        depth = 1;
      }
      if (this.done) this.fail('unexpected data after the end of the JSON body', c);
      if (depth === 1) {
        if (c === 0x5d && !this.bare) {
          depth = 0;
          this.done = true;
        } else if (c === 0x2c && !this.expectChunk) this.expectChunk = true;
        else if (c === 0x7b && this.expectChunk) {
          depth = 2;
          this.rest = '';
          copyFrom = i;
          this.lastKey = '';
        } else this.fail('expected a result chunk object', c);
        continue;
      }
      if (depth === 3 && this.inResults) {
        if (c === 0x7b && this.expectRow && this.rowDecoder) {
          // Fastest path: the decoder reads the row from its text; otherwise the row is scanned, and learnt.
          if (batchTo >= 0) {
            this.flushRows(text, batchFrom, batchTo);
            batchFrom = batchTo = -1;
          }
          const end = this.rowDecoder.match(text, i);
          if (end > 0) {
            this.expectRow = false;
            i = end - 1;
            continue;
          }
          this.learnRow = true;
          depth = 4;
          rowStart = i;
        } else if (c === 0x7b && this.expectRow) {
          // Fast path: parse every complete row up to the last row boundary of this push in one go, without
          // scanning them (see rowsUpTo).
          const end = fast ? lastRowEnd(text, i) : -1;
          const rows = end > i ? this.rowsUpTo(text, i, end) : null;
          if (rows) {
            if (batchTo >= 0) {
              this.flushRows(text, batchFrom, batchTo);
              batchFrom = batchTo = -1;
            }
            for (let r = 0; r < rows.length; r++) this.onRow(rows[r]);
            this.expectRow = false;
            i = end;
            continue;
          }
          fast = false;
          depth = 4;
          rowStart = i;
        } else if (c === 0x2c && !this.expectRow) this.expectRow = true;
        else if (c === 0x5d) {
          if (batchTo >= 0) {
            this.flushRows(text, batchFrom, batchTo);
            batchFrom = batchTo = -1;
          }
          depth = 2;
          this.inResults = false;
          copyFrom = i; // resume copying the chunk's other members from the closing bracket
        } else this.fail('expected a result row object', c);
        continue;
      }
      // depth 2 (chunk members) or deeper inside a non-results member.
      if (c === 0x22) {
        inString = true;
        if (depth === 2) keyFrom = i + 1;
      } else if (c === 0x7b || c === 0x5b) {
        depth++;
        if (depth === 3 && c === 0x5b && this.lastKey === 'results') {
          this.inResults = true;
          this.expectRow = true;
          this.rest += text.slice(copyFrom, i + 1);
          copyFrom = -1;
        }
      } else if (c === 0x7d || c === 0x5d) {
        depth--;
        if (depth === 1) {
          this.rest += text.slice(copyFrom, i + 1);
          copyFrom = -1;
          const chunk = parse(this.rest, 'result chunk');
          this.rest = '';
          if (chunk === null || typeof chunk !== 'object' || Array.isArray(chunk))
            this.fail('expected a result chunk object', c);
          this.onChunk(chunk as Record<string, unknown>);
          this.expectChunk = false;
          if (this.bare) {
            depth = 0;
            this.done = true;
          }
        }
      }
    }
    if (batchTo >= 0) this.flushRows(text, batchFrom, batchTo);
    // Carry what is unfinished into the next push.
    if (rowStart >= 0) {
      this.rowCarry += text.slice(rowStart);
      if (this.rowCarry.length > this.maxRowChars)
        throw new JsonStreamError(`a result row exceeds ${this.maxRowChars} characters`);
    }
    if (copyFrom >= 0) this.rest += text.slice(copyFrom);
    if (keyFrom >= 0) this.keyCarry += text.slice(keyFrom);
    this.inRow = rowStart >= 0;
    this.copying = copyFrom >= 0;
    this.inKey = keyFrom >= 0;
    this.depth = depth;
    this.inString = inString;
    this.escaped = escaped;
  }
}

/**
 * The index of the last `}` after `from` that is followed by `,` and `{` (whitespace allowed between): the likely end
 * of the last complete row of a push (only a guess; see rowsUpTo). -1 when there is none.
 */
function lastRowEnd(text: string, from: number): number {
  let k = text.length;
  for (;;) {
    k = text.lastIndexOf('}', k - 1);
    if (k <= from) return -1;
    let j = k + 1;
    let c = text.charCodeAt(j);
    while (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) c = text.charCodeAt(++j);
    if (c !== 0x2c) continue;
    c = text.charCodeAt(++j);
    while (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) c = text.charCodeAt(++j);
    if (c === 0x7b) return k;
  }
}

function parse(text: string, what: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new JsonStreamError(`malformed ${what}: ${(err as Error).message}`);
  }
}
