/**
 * The output contract: one call shape for every target kind of `OutputTarget` (Google Sheets, XLSX, CSV).
 *
 * A report is a list of sheets written one after another. Each sheet declares typed columns, then receives its
 * rows in chunks (arrays in column order) and is closed; the output is finished once, which returns the links for
 * the run's `succeeded` event. Nothing holds a whole sheet: memory is bounded by one chunk plus a fixed buffer.
 *
 * Rules every implementation keeps:
 * - One sheet open at a time: close it before adding the next (an XLSX file is one zip stream, written in order).
 *   `append` calls are awaited one by one; `append` resolves once the rows are buffered within the limits (it waits
 *   while the destination catches up, which is the back-pressure).
 * - Idempotent per run: names are derived from `runId`, `title` and sheet names, so a retried run overwrites what
 *   an earlier attempt wrote (object store objects under `<runId>/`, the spreadsheet tagged with the run id, the
 *   same tabs) and never adds a second copy. `title` and sheet names must therefore be the same in every attempt.
 * - Errors: `RetryableError`/`PermanentError` with a code from {@link OutputErrorCode}; Google's own message is
 *   kept. An abort through `signal` rejects with the signal's reason. After any failure the output is unusable:
 *   call `abort()`, which discards what this attempt had not finished (an earlier attempt's complete file stays).
 */
import type { RunOutput } from '@ppc/proto';
import type { Static } from '@sinclair/typebox';
import type { ObjectStore } from '@nats-io/obj';

/** Codes carried by the typed errors of this module; stable, so callers and tests can match on them. */
export const OutputErrorCode = {
  /** A sheet spec, a row or a call order is invalid (names the sheet, row, column and reason). Permanent. */
  Invalid: 'OUTPUT_INVALID',
  /** The destination refused the request as malformed (HTTP 400 from Google). Permanent. */
  Rejected: 'OUTPUT_REJECTED',
  /** More cells than a spreadsheet can hold (10,000,000 in Google Sheets). Permanent. */
  TooLarge: 'OUTPUT_TOO_LARGE',
  /** No access to the spreadsheet or folder, or the API is not enabled (HTTP 403). Permanent. */
  Forbidden: 'OUTPUT_FORBIDDEN',
  /** The spreadsheet or folder does not exist (HTTP 404). Permanent. */
  NotFound: 'OUTPUT_NOT_FOUND',
  /** The Drive owner's storage is full. Permanent until someone frees space. */
  StorageFull: 'OUTPUT_STORAGE_FULL',
  /** The access token was refused (HTTP 401); a later attempt gets a fresh token. Retryable. */
  Unauthenticated: 'OUTPUT_UNAUTHENTICATED',
  /** Rate limit or quota (HTTP 429, Drive's 403 rate-limit reasons); `retryAfterMs` when Google says. Retryable. */
  Quota: 'OUTPUT_QUOTA',
  /** Google failed or is unreachable (HTTP 5xx, connection errors). Retryable. */
  Unavailable: 'OUTPUT_UNAVAILABLE',
  /** No answer within the request timeout. Retryable. */
  Timeout: 'OUTPUT_TIMEOUT',
  /** The artifacts object store failed (NATS unavailable, timeout). Retryable. */
  Store: 'OUTPUT_STORE',
} as const;
export type OutputErrorCode = (typeof OutputErrorCode)[keyof typeof OutputErrorCode];

/** The link of one delivered file or spreadsheet, as in the run's `succeeded` event. */
export type OutputLink = Static<typeof RunOutput>;

/**
 * How a column's values are given and shown:
 * - `string`, `url`: strings (numbers and booleans are turned into strings).
 * - `integer`: whole numbers; `number`: any finite number; shown with thousands separators and 0 / 2 decimals.
 * - `money`: finite numbers in currency units (not micros), shown in the sheet's currency with its minor digits.
 * - `percent`: ratios (0.25 is shown as 25.00%).
 * - `date`: `YYYY-MM-DD` strings or `Date`s (their UTC day).
 * - `boolean`: `true`/`false`.
 * `null` and `undefined` are empty cells in every type; anything else that does not fit is an error.
 */
export type OutputColumnType = 'string' | 'integer' | 'number' | 'money' | 'percent' | 'date' | 'url' | 'boolean';

export interface OutputColumn {
  /** Identifies the column in error messages; unique within the sheet. */
  key: string;
  /** The header cell's text. */
  header: string;
  type: OutputColumnType;
  /** XLSX column width in characters; default by type. Google Sheets sizes columns to fit. */
  width?: number;
}

export type OutputCell = string | number | boolean | Date | null | undefined;
export type OutputRow = readonly OutputCell[];

export interface SheetSpec {
  /**
   * Tab name (XLSX worksheet, Google Sheets tab) and CSV file name (`<name>.csv`): 1 to 31 characters, none of
   * `[ ] : * ? / \`, not starting or ending with `'`, not `History` (reserved by Excel), unique
   * (case-insensitively) within the output.
   */
  name: string;
  columns: readonly OutputColumn[];
  /** ISO 4217 code for `money` columns; default the output's `currency`; without either, plain 2-decimal numbers. */
  currency?: string;
}

export interface OutputSheet {
  readonly name: string;
  /** Data rows accepted so far (the header not counted). */
  readonly rows: number;
  /** Adds rows (arrays in column order). Validates every cell; a bad one rejects naming sheet, row and column. */
  append(rows: readonly OutputRow[]): Promise<void>;
  /** Writes what is buffered and completes the sheet (formats, final size). Idempotent. */
  close(): Promise<void>;
}

export interface Output {
  readonly kind: OutputLink['kind'];
  /** Starts the next sheet; the previous one must be closed. */
  addSheet(spec: SheetSpec): Promise<OutputSheet>;
  /** Closes an open sheet, completes the output, and returns its links (one per file, or the spreadsheet). */
  finish(): Promise<OutputLink[]>;
  /** Stops and discards this attempt's unfinished work; never throws. Safe after `finish` or a failure. */
  abort(reason?: unknown): Promise<void>;
  /** Buffering and request counters, for progress logs, tests and benchmarks. */
  stats(): OutputStats;
}

/** Google access for the Sheets target. */
export interface GoogleOutputDeps {
  /** A valid OAuth2 access token with the Sheets and Drive (`drive.file`) scopes; called before every request. */
  accessToken: () => Promise<string>;
  /** Replaces both `https://sheets.googleapis.com/` and `https://www.googleapis.com/` (Drive); for stand-ins. */
  rootUrl?: string;
  /** Per-request timeout; default 60 s. */
  timeoutMs?: number;
}

export interface OutputDeps {
  /** The `artifacts` object store (see `openArtifactStore`); needed for `xlsx` and `csv`. */
  objectStore?: ObjectStore;
  /** Needed for `sheets`. */
  google?: GoogleOutputDeps;
}

export interface RetryPolicy {
  /** Attempts per request in total, the first included. */
  maxAttempts: number;
  initialDelayMs: number;
  maxDelayMs: number;
  /**
   * The longest Retry-After still waited out in-process; a longer one is thrown as a RetryableError with that
   * `retryAfterMs`, so the worker naks the task instead of holding a slot.
   */
  maxInlineDelayMs: number;
}

export interface SheetsLimits {
  /** Most rows in one values request. */
  maxRowsPerRequest: number;
  /** Most bytes of JSON values in one request (Google recommends at most 2 MB per request). */
  maxBytesPerRequest: number;
  /** Cells a spreadsheet may hold (Google: 10,000,000); checked before growing a tab. */
  maxCells: number;
  /** Characters a cell may hold (Google: 50,000); longer text is cut and ends with `…`. */
  maxCellChars: number;
}

export interface CsvOptions {
  /**
   * Start each file with a UTF-8 byte order mark. Off by default: RFC 4180 consumers (scripts, pandas, BigQuery,
   * Google Sheets import) read a BOM as part of the first header; turn it on for users who open CSVs by
   * double-clicking in Excel on Windows, which otherwise decodes UTF-8 as the ANSI code page.
   */
  bom?: boolean;
  /**
   * Prefix text cells starting with `=`, `+`, `-`, `@`, tab or CR with `'`, so a spreadsheet program does not run
   * them as formulas (CSV injection; search terms are typed by strangers). Default true.
   */
  formulaGuard?: boolean;
}

export interface OpenOutputOptions {
  /** The run this output belongs to; objects go under `<runId>/`, the spreadsheet is tagged with it. */
  runId: string;
  /** Spreadsheet title and XLSX file name; must be the same in every attempt of the run. */
  title: string;
  /** Default ISO 4217 currency for `money` columns (the account's currency). */
  currency?: string;
  deps: OutputDeps;
  /** Aborts whatever is in flight; calls then reject with the signal's reason. */
  signal?: AbortSignal;
  csv?: CsvOptions;
  /** XLSX: most bytes of generated file waiting for the object store before `append` waits; default 1 MiB. */
  maxBufferedBytes?: number;
  sheets?: { limits?: Partial<SheetsLimits>; retry?: Partial<RetryPolicy> };
}

/** What a writer reports about its buffering, for tests and benchmarks. */
export interface OutputStats {
  /** The most bytes ever waiting between the writer and its destination after an `append` returned. */
  peakBufferedBytes: number;
  /** Requests (Sheets) or object puts (files) made. */
  requests: number;
}
