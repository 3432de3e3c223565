import { Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ObjectStore } from '@nats-io/obj';
import ExcelJS from 'exceljs';
import { artifactMeta, artifactUrl, ObjectSink, safeFileName } from './artifacts.ts';
import { type CanonicalCell, type CheckedSheet, clip } from './cells.ts';
import { columnFormat, defaultWidth } from './formats.ts';
import { OutputBase, SheetBase } from './lifecycle.ts';
import type { OpenOutputOptions, OutputColumn, OutputLink } from './types.ts';

/**
 * XLSX through exceljs' streaming WorkbookWriter, piped straight into one object `<runId>/<title>.xlsx`: each row
 * is committed as it comes, never kept. Header row bold, filled, frozen and filtered; number formats per column
 * type (money in the sheet's currency); URLs as HYPERLINK formulas with the URL as cached value (not as exceljs
 * hyperlinks, which the writer keeps in memory until the sheet ends).
 *
 * Back-pressure: exceljs writes a sheet's XML into its own buffer and forwards it to the zip without waiting
 * (StreamBuf ignores `write()`'s answer), so with a slow object store the XML would pile up in memory. After each
 * append the writer measures what waits between exceljs and the store (the sheet's buffer, the zip entry's input
 * stream, the bridge and the store's queue) and waits until it is under `maxBufferedBytes`. The measure reads
 * exceljs 4.4's internals (pinned exactly); `pipelineOf` fails loudly if they change.
 */

const XLSX_TYPE = 'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet';
const MAX_CELL_CHARS = 32_767;
/** Excel refuses string literals longer than this inside a formula. */
const MAX_FORMULA_STRING = 255;
const HEADER_STYLE: Partial<ExcelJS.Style> = {
  font: { bold: true },
  fill: { type: 'pattern', pattern: 'solid', fgColor: { argb: 'FFEFEFEF' } },
  border: { bottom: { style: 'thin', color: { argb: 'FF999999' } } },
};
const LINK_FONT: Partial<ExcelJS.Font> = { color: { argb: 'FF0563C1' }, underline: true };

interface StreamState {
  length: number;
}
interface SheetStreamInternals {
  buffers: Array<{ length: number }>;
  pipes: Array<{ _writableState?: StreamState; _readableState?: StreamState }>;
}

/** The sheet's XML buffer inside exceljs (see the module comment). */
function pipelineOf(ws: ExcelJS.Worksheet): SheetStreamInternals {
  const s = (ws as unknown as { stream?: Partial<SheetStreamInternals> }).stream;
  if (!s || !Array.isArray(s.buffers) || !Array.isArray(s.pipes) || s.pipes.length !== 1) {
    throw new Error('exceljs internals changed: outputs/xlsx.ts cannot measure its buffer; update pipelineOf');
  }
  return s as SheetStreamInternals;
}

function pipelineBytes(p: SheetStreamInternals): number {
  let n = 0;
  for (const b of p.buffers) n += b.length;
  const entry = p.pipes[0];
  n += (entry?._writableState?.length ?? 0) + (entry?._readableState?.length ?? 0);
  return n;
}

function styleOf(col: OutputColumn, currency: string | undefined): Partial<ExcelJS.Style> {
  const fmt = columnFormat(col.type, currency);
  const style: Partial<ExcelJS.Style> = {};
  if (fmt) style.numFmt = fmt.pattern;
  if (col.type === 'url') style.font = LINK_FONT;
  return style;
}

function excelValue(v: CanonicalCell, col: OutputColumn): ExcelJS.CellValue {
  if (v === null) return null;
  switch (col.type) {
    case 'date':
      return new Date(`${v as string}T00:00:00Z`);
    case 'url': {
      const url = v as string;
      return url.length <= MAX_FORMULA_STRING
        ? { formula: `HYPERLINK("${url.replaceAll('"', '""')}")`, result: url }
        : clip(url, MAX_CELL_CHARS);
    }
    case 'string':
      return clip(v as string, MAX_CELL_CHARS);
    default:
      return v;
  }
}

class XlsxSheet extends SheetBase {
  private readonly xlsx: XlsxOutput;
  private readonly ws: ExcelJS.Worksheet;
  private readonly styles: Partial<ExcelJS.Style>[];

  constructor(output: XlsxOutput, sheet: CheckedSheet, ws: ExcelJS.Worksheet, styles: Partial<ExcelJS.Style>[]) {
    super(output, sheet);
    this.xlsx = output;
    this.ws = ws;
    this.styles = styles;
  }

  protected async write(rows: CanonicalCell[][]): Promise<void> {
    const { columns } = this.sheet;
    const values: ExcelJS.CellValue[] = new Array(columns.length);
    const styles = this.styles;
    for (const row of rows) {
      for (let c = 0; c < row.length; c++) values[c] = excelValue(row[c]!, columns[c]!);
      const r = this.ws.addRow(values);
      // One shared style object per column: exceljs caches a style's id by object identity, while the copy each
      // new cell gets would be serialised and looked up again, cell by cell (a third of the write time).
      for (let c = 0; c < styles.length; c++) r.getCell(c + 1).style = styles[c]!;
      r.commit();
    }
    await this.xlsx.drain(this.ws);
  }

  protected async end(): Promise<void> {
    this.ws.commit();
    await this.xlsx.drain(this.ws);
  }
}

export class XlsxOutput extends OutputBase {
  readonly kind = 'xlsx' as const;
  readonly file: string;
  private readonly sink: ObjectSink;
  private readonly bridge: Writable;
  private readonly wb: ExcelJS.stream.xlsx.WorkbookWriter;
  private readonly maxBuffered: number;
  private pipelineFailure: unknown;

  constructor(opts: OpenOutputOptions, store: ObjectStore) {
    super(opts);
    this.maxBuffered = opts.maxBufferedBytes ?? 1024 * 1024;
    this.file = safeFileName(opts.title, 'xlsx');
    this.sink = new ObjectSink(store, artifactMeta(opts.runId, this.file, XLSX_TYPE, opts.title));
    this.counters.requests += 1;
    const sink = this.sink;
    this.bridge = new Writable({
      highWaterMark: 64 * 1024,
      write(chunk: Buffer, _enc, cb) {
        sink.write(chunk).then(() => cb(), cb);
      },
    });
    // Failures surface through `drain` and `complete`; an unheard 'error' event would end the process.
    this.bridge.on('error', (err) => {
      this.pipelineFailure ??= err;
    });
    this.wb = new ExcelJS.stream.xlsx.WorkbookWriter({ stream: this.bridge, useStyles: true, useSharedStrings: false });
    const zip = (this.wb as unknown as { zip: NodeJS.EventEmitter }).zip;
    zip.on('error', (err) => {
      this.pipelineFailure ??= err;
    });
  }

  protected async startSheet(sheet: CheckedSheet): Promise<SheetBase> {
    const ws = this.wb.addWorksheet(sheet.name, {
      views: [{ state: 'frozen', xSplit: 0, ySplit: 1, topLeftCell: 'A2', activeCell: 'A2' }],
    });
    pipelineOf(ws);
    const styles = sheet.columns.map((c) => styleOf(c, sheet.currency));
    ws.columns = sheet.columns.map((c, i) => ({
      key: c.key,
      width: c.width ?? defaultWidth(c.type, c.header),
      style: styles[i]!,
    }));
    ws.autoFilter = { from: { row: 1, column: 1 }, to: { row: 1, column: sheet.columns.length } };
    const header = ws.addRow(sheet.columns.map((c) => c.header));
    header.eachCell((cell) => {
      cell.style = HEADER_STYLE;
    });
    header.commit();
    return new XlsxSheet(this, sheet, ws, styles);
  }

  /** Waits until what the writer produced is mostly in the object store (see the module comment). */
  async drain(ws: ExcelJS.Worksheet): Promise<void> {
    const p = pipelineOf(ws);
    const buffered = () => pipelineBytes(p) + this.bridge.writableLength + this.sink.buffered;
    this.noteBuffered(buffered());
    while (buffered() > this.maxBuffered) {
      if (this.pipelineFailure !== undefined) throw this.pipelineFailure;
      await sleep(2, undefined, { signal: this.signal });
    }
    if (this.pipelineFailure !== undefined) throw this.pipelineFailure;
  }

  protected async complete(): Promise<OutputLink[]> {
    await this.untilAborted(this.wb.commit());
    if (this.pipelineFailure !== undefined) throw this.pipelineFailure;
    await this.sink.end();
    return [{ kind: 'xlsx', name: this.file, url: artifactUrl(this.opts.runId, this.file) }];
  }

  protected async discard(reason: unknown): Promise<void> {
    await this.sink.abort(reason);
    this.bridge.destroy();
    (this.wb as unknown as { zip: { abort(): void } }).zip.abort();
  }
}
