import { randomInt } from 'node:crypto';
import type { OutputTarget } from '@ppc/proto';
import type { sheets_v4 } from 'googleapis/build/src/apis/sheets/v4.js';
import { PermanentError, type PpcError } from '../../errors/index.ts';
import { type CanonicalCell, type CheckedSheet, clip, serialDate } from '../cells.ts';
import { columnFormat } from '../formats.ts';
import { OutputBase, SheetBase } from '../lifecycle.ts';
import {
  type GoogleOutputDeps,
  type OpenOutputOptions,
  OutputErrorCode,
  type OutputLink,
  type SheetsLimits,
} from '../types.ts';
import { type CallOptions, GoogleClient } from './client.ts';

/**
 * Google Sheets: one spreadsheet per run (or the job's own), one tab per sheet.
 *
 * - Which spreadsheet: the target's `spreadsheetId`; else the one an earlier attempt of this run created (Drive
 *   `appProperties.ppcRunId`); else a new one, created through Drive in one call with its run tag and, when the
 *   target names a `folderId`, in that folder (so a crash cannot leave an untagged copy). `folderId` applies to
 *   spreadsheets created here; a job's own spreadsheet is never moved.
 * - Tabs: a tab of the same name is cleared (values and formats) and reused, keeping its id so references to it
 *   survive; in a spreadsheet created for the run, tabs that are not the run's sheets (the default `Sheet1`, an
 *   earlier attempt's leftovers) are deleted at the end. A job's own spreadsheet keeps its other tabs.
 * - Values: `values.update` to explicit A1 ranges, RAW (text is never parsed as a formula), in chunks of at most
 *   `maxRowsPerRequest` rows and `maxBytesPerRequest` bytes. Explicit ranges make every request idempotent, so a
 *   retry after a 429, a 5xx or a timeout can never duplicate rows. The grid is grown before it is written
 *   (doubling, within the spreadsheet's cell limit) and trimmed to the data at the end.
 * - Formats: header bold, shaded and frozen when the tab is set up; number formats per column and column widths
 *   when the sheet closes (then the row count is final).
 */

const SPREADSHEET_MIME = 'application/vnd.google-apps.spreadsheet';

export const defaultSheetsLimits: SheetsLimits = {
  maxRowsPerRequest: 10_000,
  maxBytesPerRequest: 2 * 1024 * 1024,
  maxCells: 10_000_000,
  maxCellChars: 50_000,
};

/** Bytes allowed for a values request's envelope (range, majorDimension, brackets) besides the rows. */
const ENVELOPE_BYTES = 256;

interface Tab {
  sheetId: number;
  title: string;
  rowCount: number;
  columnCount: number;
}

export function columnLetters(n: number): string {
  let s = '';
  for (let x = n; x > 0; x = Math.floor((x - 1) / 26)) s = String.fromCharCode(65 + ((x - 1) % 26)) + s;
  return s;
}

export function a1Range(title: string, firstRow: number, lastRow: number, columns: number): string {
  return `'${title.replaceAll("'", "''")}'!A${firstRow}:${columnLetters(columns)}${lastRow}`;
}

function escapeQuery(v: string): string {
  return v.replaceAll('\\', '\\\\').replaceAll("'", "\\'");
}

class GoogleSheet extends SheetBase {
  private readonly out: SheetsOutput;
  private readonly tab: Tab;
  private pending: (string | number | boolean)[][] = [];
  private pendingBytes = ENVELOPE_BYTES;
  /** Sheet rows written so far, header included. */
  private written = 0;

  constructor(out: SheetsOutput, sheet: CheckedSheet, tab: Tab) {
    super(out, sheet);
    this.out = out;
    this.tab = tab;
    const header = sheet.columns.map((c) => clip(c.header, out.limits.maxCellChars));
    this.pending.push(header);
    this.pendingBytes += Buffer.byteLength(JSON.stringify(header)) + 1;
  }

  private value(v: CanonicalCell, c: number): string | number | boolean {
    if (v === null) return '';
    if (typeof v !== 'string') return v;
    if (this.sheet.columns[c]!.type === 'date') return serialDate(v);
    return clip(v, this.out.limits.maxCellChars);
  }

  protected async write(rows: CanonicalCell[][]): Promise<void> {
    for (const row of rows) {
      const values = row.map((v, c) => this.value(v, c));
      const bytes = Buffer.byteLength(JSON.stringify(values)) + 1;
      const { maxRowsPerRequest, maxBytesPerRequest } = this.out.limits;
      if (
        this.pending.length > 0 &&
        (this.pending.length >= maxRowsPerRequest || this.pendingBytes + bytes > maxBytesPerRequest)
      ) {
        await this.flush();
      }
      this.pending.push(values);
      this.pendingBytes += bytes;
      this.out.observe(this.pendingBytes);
    }
  }

  private async flush(): Promise<void> {
    if (this.pending.length === 0) return;
    const first = this.written + 1;
    const last = this.written + this.pending.length;
    await this.out.ensureRows(this.tab, last);
    const range = a1Range(this.tab.title, first, last, this.sheet.columns.length);
    const values = this.pending;
    await this.out.client.call('sheets.spreadsheets.values.update', (o) =>
      this.out.client.sheets.spreadsheets.values.update(
        {
          spreadsheetId: this.out.spreadsheetId,
          range,
          valueInputOption: 'RAW',
          requestBody: { range, majorDimension: 'ROWS', values },
        },
        o,
      ),
    );
    this.written = last;
    this.pending = [];
    this.pendingBytes = ENVELOPE_BYTES;
  }

  protected async end(): Promise<void> {
    await this.flush();
    const { sheetId } = this.tab;
    const columns = this.sheet.columns;
    // A frozen header needs one unfrozen row below it.
    const rowCount = Math.max(this.written, 2);
    const requests: sheets_v4.Schema$Request[] = [
      {
        updateSheetProperties: {
          properties: { sheetId, gridProperties: { rowCount, columnCount: columns.length, frozenRowCount: 1 } },
          fields: 'gridProperties(rowCount,columnCount,frozenRowCount)',
        },
      },
    ];
    columns.forEach((col, c) => {
      const fmt = columnFormat(col.type, this.sheet.currency);
      if (!fmt) return;
      requests.push({
        repeatCell: {
          range: { sheetId, startRowIndex: 1, endRowIndex: rowCount, startColumnIndex: c, endColumnIndex: c + 1 },
          cell: { userEnteredFormat: { numberFormat: { type: fmt.sheetsType, pattern: fmt.pattern } } },
          fields: 'userEnteredFormat.numberFormat',
        },
      });
    });
    requests.push({
      autoResizeDimensions: {
        dimensions: { sheetId, dimension: 'COLUMNS', startIndex: 0, endIndex: columns.length },
      },
    });
    await this.out.batchUpdate(requests);
    this.tab.rowCount = rowCount;
    this.tab.columnCount = columns.length;
  }
}

export class SheetsOutput extends OutputBase {
  readonly kind = 'sheets' as const;
  readonly client: GoogleClient;
  readonly limits: SheetsLimits;
  private readonly target: Extract<OutputTarget, { kind: 'sheets' }>;
  spreadsheetId = '';
  private spreadsheetUrl = '';
  /** Created for this run (now or by an earlier attempt): its other tabs are ours to delete. */
  private owned = false;
  private tabs = new Map<string, Tab>();

  constructor(target: Extract<OutputTarget, { kind: 'sheets' }>, opts: OpenOutputOptions, deps: GoogleOutputDeps) {
    super(opts);
    this.target = target;
    this.limits = { ...defaultSheetsLimits, ...opts.sheets?.limits };
    this.client = new GoogleClient(deps, opts.sheets?.retry ?? {}, this.signal, () => {
      this.counters.requests += 1;
    });
  }

  observe(bytes: number): void {
    this.noteBuffered(bytes);
  }

  /** Finds or creates the spreadsheet and reads its tabs. */
  async locate(): Promise<void> {
    if (this.target.spreadsheetId) {
      this.spreadsheetId = this.target.spreadsheetId;
    } else {
      const found = await this.client.call('drive.files.list', (o) => this.findRequest(o));
      const existing = found.files?.[0]?.id;
      if (existing) {
        this.spreadsheetId = existing;
      } else {
        // Not simply retried: a create that timed out may have happened, so look for it before creating again.
        this.spreadsheetId = await this.client.retrying(async (n) => {
          if (n > 1) {
            const again = await this.client.once('drive.files.list', (o) => this.findRequest(o));
            const id = again.files?.[0]?.id;
            if (id) return id;
          }
          const created = await this.client.once('drive.files.create', (o) =>
            this.client.drive.files.create(
              {
                requestBody: {
                  name: this.opts.title,
                  mimeType: SPREADSHEET_MIME,
                  appProperties: { ppcRunId: this.opts.runId },
                  ...(this.target.folderId ? { parents: [this.target.folderId] } : {}),
                },
                fields: 'id',
                supportsAllDrives: true,
              },
              o,
            ),
          );
          if (!created.id) throw new PermanentError('Google drive.files.create: no file id in the answer');
          return created.id;
        });
      }
      this.owned = true;
    }
    await this.readTabs();
  }

  private findRequest(o: CallOptions) {
    const q = [
      `appProperties has { key='ppcRunId' and value='${escapeQuery(this.opts.runId)}' }`,
      `mimeType = '${SPREADSHEET_MIME}'`,
      'trashed = false',
      ...(this.target.folderId ? [`'${escapeQuery(this.target.folderId)}' in parents`] : []),
    ].join(' and ');
    return this.client.drive.files.list(
      {
        q,
        fields: 'files(id,name)',
        orderBy: 'createdTime',
        pageSize: 10,
        supportsAllDrives: true,
        includeItemsFromAllDrives: true,
        ...(this.target.folderId ? { corpora: 'allDrives' } : {}),
      },
      o,
    );
  }

  private async readTabs(): Promise<void> {
    const s = await this.client.call('sheets.spreadsheets.get', (o) =>
      this.client.sheets.spreadsheets.get(
        {
          spreadsheetId: this.spreadsheetId,
          fields: 'spreadsheetId,spreadsheetUrl,sheets.properties(sheetId,title,gridProperties(rowCount,columnCount))',
        },
        o,
      ),
    );
    this.spreadsheetUrl = s.spreadsheetUrl ?? `https://docs.google.com/spreadsheets/d/${this.spreadsheetId}/edit`;
    this.tabs = new Map();
    for (const sh of s.sheets ?? []) {
      const p = sh.properties;
      if (p?.sheetId == null || !p.title) continue;
      this.tabs.set(p.title.toLowerCase(), {
        sheetId: p.sheetId,
        title: p.title,
        rowCount: p.gridProperties?.rowCount ?? 0,
        columnCount: p.gridProperties?.columnCount ?? 0,
      });
    }
  }

  batchUpdate(requests: sheets_v4.Schema$Request[]): Promise<sheets_v4.Schema$BatchUpdateSpreadsheetResponse> {
    return this.client.call('sheets.spreadsheets.batchUpdate', (o) =>
      this.client.sheets.spreadsheets.batchUpdate({ spreadsheetId: this.spreadsheetId, requestBody: { requests } }, o),
    );
  }

  private cellsBesides(tab: Tab | undefined): number {
    let n = 0;
    for (const t of this.tabs.values()) if (t !== tab) n += t.rowCount * t.columnCount;
    return n;
  }

  private tooLarge(sheet: string, rows: number, columns: number): PpcError {
    return new PermanentError(
      `Google Sheets: sheet ${JSON.stringify(sheet)} does not fit: ${rows.toLocaleString('en')} rows × ${columns} ` +
        `columns and the other tabs exceed the ${this.limits.maxCells.toLocaleString('en')} cells a spreadsheet ` +
        'holds; deliver this report as XLSX or CSV',
      { code: OutputErrorCode.TooLarge },
    );
  }

  /** Grows the tab to at least `rows` rows: doubling to save requests, never beyond the cell limit. */
  async ensureRows(tab: Tab, rows: number): Promise<void> {
    if (rows <= tab.rowCount) return;
    const room = Math.floor((this.limits.maxCells - this.cellsBesides(tab)) / Math.max(1, tab.columnCount));
    if (rows > room) throw this.tooLarge(tab.title, rows, tab.columnCount);
    const rowCount = Math.min(room, Math.max(rows, tab.rowCount * 2));
    await this.batchUpdate([
      {
        updateSheetProperties: {
          properties: { sheetId: tab.sheetId, gridProperties: { rowCount } },
          fields: 'gridProperties.rowCount',
        },
      },
    ]);
    tab.rowCount = rowCount;
  }

  private setupRequests(tab: Tab, sheet: CheckedSheet, fresh: boolean): sheets_v4.Schema$Request[] {
    const properties = {
      sheetId: tab.sheetId,
      title: sheet.name,
      gridProperties: { rowCount: tab.rowCount, columnCount: tab.columnCount, frozenRowCount: 1 },
    };
    const header: sheets_v4.Schema$Request = {
      repeatCell: {
        range: { sheetId: tab.sheetId, startRowIndex: 0, endRowIndex: 1 },
        cell: {
          userEnteredFormat: {
            textFormat: { bold: true },
            backgroundColor: { red: 0.937, green: 0.937, blue: 0.937 },
          },
        },
        fields: 'userEnteredFormat(textFormat,backgroundColor)',
      },
    };
    if (fresh) return [{ addSheet: { properties } }, header];
    return [
      // No rows given: clears values and formats of the whole tab.
      { updateCells: { range: { sheetId: tab.sheetId }, fields: '*' } },
      {
        updateSheetProperties: {
          properties,
          fields: 'title,gridProperties(rowCount,columnCount,frozenRowCount)',
        },
      },
      header,
    ];
  }

  protected async startSheet(sheet: CheckedSheet): Promise<SheetBase> {
    const columns = sheet.columns.length;
    const besides = (t?: Tab) => this.cellsBesides(t);
    const initialRows = (t?: Tab) => {
      const room = Math.floor((this.limits.maxCells - besides(t)) / columns);
      if (room < 2) throw this.tooLarge(sheet.name, 2, columns);
      return Math.min(room, Math.max(2, this.limits.maxRowsPerRequest + 1));
    };
    let existing = this.tabs.get(sheet.name.toLowerCase());
    if (!existing) {
      const used = new Set([...this.tabs.values()].map((t) => t.sheetId));
      let sheetId = randomInt(1, 2 ** 31 - 1);
      while (used.has(sheetId)) sheetId = randomInt(1, 2 ** 31 - 1);
      const tab: Tab = { sheetId, title: sheet.name, rowCount: initialRows(), columnCount: columns };
      try {
        await this.batchUpdate(this.setupRequests(tab, sheet, true));
        this.tabs.set(sheet.name.toLowerCase(), tab);
        return new GoogleSheet(this, sheet, tab);
      } catch (err) {
        // An addSheet that timed out may have been applied; its retry then finds the name taken. Reuse the tab.
        if (
          !(
            err instanceof PermanentError &&
            err.code === OutputErrorCode.Rejected &&
            /already exists/i.test(err.message)
          )
        ) {
          throw err;
        }
        await this.readTabs();
        existing = this.tabs.get(sheet.name.toLowerCase());
        if (!existing) throw err;
      }
    }
    const tab: Tab = { ...existing, title: sheet.name, columnCount: columns, rowCount: 0 };
    tab.rowCount = initialRows(existing);
    await this.batchUpdate(this.setupRequests(tab, sheet, false));
    this.tabs.delete(existing.title.toLowerCase());
    this.tabs.set(sheet.name.toLowerCase(), tab);
    return new GoogleSheet(this, sheet, tab);
  }

  protected async complete(): Promise<OutputLink[]> {
    if (this.owned) {
      const ours = new Set(this.sheetNames.map((n) => n.toLowerCase()));
      const stale = [...this.tabs.entries()].filter(([key]) => !ours.has(key));
      if (stale.length > 0) {
        await this.batchUpdate(stale.map(([, t]) => ({ deleteSheet: { sheetId: t.sheetId } })));
        for (const [key] of stale) this.tabs.delete(key);
      }
    }
    return [{ kind: 'sheets', name: this.opts.title.slice(0, 300), url: this.spreadsheetUrl }];
  }

  /** Nothing to undo remotely: in-flight requests stop with the signal; a retried run rewrites the same tabs. */
  protected async discard(): Promise<void> {}
}

export async function openSheetsOutput(
  target: Extract<OutputTarget, { kind: 'sheets' }>,
  opts: OpenOutputOptions,
  deps: GoogleOutputDeps,
): Promise<SheetsOutput> {
  const out = new SheetsOutput(target, opts, deps);
  try {
    await out.run(() => out.locate());
  } catch (err) {
    await out.abort(err);
    throw err;
  }
  return out;
}
