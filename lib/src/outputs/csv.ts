import type { ObjectStore } from '@nats-io/obj';
import { artifactMeta, artifactUrl, ObjectSink, safeFileName } from './artifacts.ts';
import { type CanonicalCell, type CheckedSheet, invalid } from './cells.ts';
import { OutputBase, SheetBase } from './lifecycle.ts';
import type { OpenOutputOptions, OutputColumnType, OutputLink } from './types.ts';

/**
 * CSV: one object per sheet, `<runId>/<sheet>.csv`, RFC 4180 (CRLF line ends, fields with `"`, `,`, CR or LF
 * quoted, quotes doubled), UTF-8, a header line first. Numbers keep their full value (15 significant digits, no
 * grouping, `.` decimal point), since a CSV is read by programs more than by people; dates are `YYYY-MM-DD`.
 */

const BOM = new Uint8Array([0xef, 0xbb, 0xbf]);
const encoder = new TextEncoder();

function quote(field: string): string {
  return /[",\r\n]/.test(field) ? `"${field.replaceAll('"', '""')}"` : field;
}

function plainNumber(n: number): string {
  return Number.isInteger(n) ? String(n) : String(Number(n.toPrecision(15)));
}

export function csvField(v: CanonicalCell, type: OutputColumnType, formulaGuard: boolean): string {
  if (v === null) return '';
  if (typeof v === 'number') return plainNumber(v);
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  const text = formulaGuard && (type === 'string' || type === 'url') && /^[=+\-@\t\r]/.test(v) ? `'${v}` : v;
  return quote(text);
}

class CsvSheet extends SheetBase {
  private readonly sink: ObjectSink;
  private readonly csv: CsvOutput;
  readonly file: string;

  constructor(output: CsvOutput, sheet: CheckedSheet, sink: ObjectSink, file: string) {
    super(output, sheet);
    this.csv = output;
    this.sink = sink;
    this.file = file;
  }

  async begin(bom: boolean): Promise<void> {
    if (bom) await this.sink.write(BOM);
    await this.sink.write(encoder.encode(`${this.sheet.columns.map((c) => quote(c.header)).join(',')}\r\n`));
  }

  protected async write(rows: CanonicalCell[][]): Promise<void> {
    const { columns } = this.sheet;
    const guard = this.csv.formulaGuard;
    let text = '';
    for (const row of rows) {
      for (let c = 0; c < row.length; c++) {
        if (c > 0) text += ',';
        text += csvField(row[c]!, columns[c]!.type, guard);
      }
      text += '\r\n';
    }
    const bytes = encoder.encode(text);
    this.csv.observe(this.sink.buffered + bytes.byteLength);
    await this.sink.write(bytes);
  }

  protected async end(): Promise<void> {
    await this.sink.end();
    this.csv.delivered(this);
  }

  abandon(reason: unknown): Promise<void> {
    return this.sink.abort(reason);
  }
}

export class CsvOutput extends OutputBase {
  readonly kind = 'csv' as const;
  readonly formulaGuard: boolean;
  private readonly store: ObjectStore;
  private current: CsvSheet | undefined;
  private readonly links: OutputLink[] = [];
  private readonly files = new Set<string>();

  constructor(opts: OpenOutputOptions, store: ObjectStore) {
    super(opts);
    this.store = store;
    this.formulaGuard = opts.csv?.formulaGuard ?? true;
  }

  observe(buffered: number): void {
    this.noteBuffered(buffered);
  }

  protected async startSheet(sheet: CheckedSheet): Promise<SheetBase> {
    const file = safeFileName(sheet.name, 'csv');
    if (this.files.has(file.toLowerCase())) {
      throw invalid(`sheet ${JSON.stringify(sheet.name)}: its file name ${file} is taken by an earlier sheet`);
    }
    this.files.add(file.toLowerCase());
    const sink = new ObjectSink(this.store, artifactMeta(this.opts.runId, file, 'text/csv; charset=utf-8', sheet.name));
    this.counters.requests += 1;
    const s = new CsvSheet(this, sheet, sink, file);
    this.current = s;
    await s.begin(this.opts.csv?.bom ?? false);
    return s;
  }

  delivered(sheet: CsvSheet): void {
    this.links.push({ kind: 'csv', name: sheet.file, url: artifactUrl(this.opts.runId, sheet.file) });
    if (this.current === sheet) this.current = undefined;
  }

  protected async complete(): Promise<OutputLink[]> {
    return [...this.links];
  }

  protected async discard(reason: unknown): Promise<void> {
    await this.current?.abandon(reason);
  }
}
