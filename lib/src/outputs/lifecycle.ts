import { type CanonicalCell, type CheckedSheet, canonicalRows, checkSheet, invalid } from './cells.ts';
import type { OpenOutputOptions, Output, OutputLink, OutputRow, OutputSheet, OutputStats, SheetSpec } from './types.ts';

/**
 * The call-order rules every target shares (one open sheet, sequential appends, finish once, fail once), so the
 * writers only implement what differs: starting a sheet, writing checked rows, ending a sheet, completing, and
 * discarding.
 */
export abstract class OutputBase implements Output {
  abstract readonly kind: OutputLink['kind'];
  protected readonly opts: OpenOutputOptions;
  /** Aborted by `abort()` and by the caller's signal; writers pass it to every request. */
  protected readonly abortController = new AbortController();
  protected readonly counters: OutputStats = { peakBufferedBytes: 0, requests: 0 };
  private failure: unknown;
  private openSheet: SheetBase | undefined;
  private readonly names: string[] = [];
  private finished = false;
  private aborted = false;
  private readonly onAbort = () => void this.abort(this.opts.signal?.reason);

  constructor(opts: OpenOutputOptions) {
    this.opts = opts;
    opts.signal?.addEventListener('abort', this.onAbort, { once: true });
  }

  protected abstract startSheet(sheet: CheckedSheet): Promise<SheetBase>;
  protected abstract complete(): Promise<OutputLink[]>;
  /** Stops in-flight work and drops what this attempt had not completed. */
  protected abstract discard(reason: unknown): Promise<void>;

  stats(): OutputStats {
    return { ...this.counters };
  }

  protected noteBuffered(bytes: number): void {
    if (bytes > this.counters.peakBufferedBytes) this.counters.peakBufferedBytes = bytes;
  }

  get signal(): AbortSignal {
    return this.abortController.signal;
  }

  /** `p`, or the abort reason as soon as the output is aborted (for waits that do not take a signal). */
  protected untilAborted<T>(p: Promise<T>): Promise<T> {
    const signal = this.abortController.signal;
    if (signal.aborted) return Promise.reject(signal.reason);
    return new Promise<T>((resolve, reject) => {
      const onAbort = () => reject(signal.reason);
      signal.addEventListener('abort', onAbort, { once: true });
      p.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
    });
  }

  /** Throws if the output can no longer be used. */
  guard(): void {
    if (this.failure !== undefined) throw this.failure;
    if (this.opts.signal?.aborted) throw this.opts.signal.reason;
    if (this.finished) throw invalid('output: already finished');
  }

  /** Runs a write; its failure (or the abort reason) makes the output unusable. */
  async run<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      this.failure ??= this.abortController.signal.aborted ? this.abortController.signal.reason : err;
      throw this.failure;
    }
  }

  async addSheet(spec: SheetSpec): Promise<OutputSheet> {
    this.guard();
    if (this.openSheet) {
      throw invalid(
        `sheet ${JSON.stringify(spec?.name)}: sheet ${JSON.stringify(this.openSheet.name)} is still open; close it first`,
      );
    }
    const checked = checkSheet(spec, this.names, this.opts.currency);
    this.names.push(checked.name);
    const sheet = await this.run(() => this.startSheet(checked));
    this.openSheet = sheet;
    return sheet;
  }

  sheetClosed(sheet: SheetBase): void {
    if (this.openSheet === sheet) this.openSheet = undefined;
  }

  /** Names of the sheets started so far, in order. */
  protected get sheetNames(): readonly string[] {
    return this.names;
  }

  async finish(): Promise<OutputLink[]> {
    this.guard();
    if (this.openSheet) await this.openSheet.close();
    if (this.names.length === 0) throw invalid('output: no sheets were added');
    const links = await this.run(() => this.complete());
    this.finished = true;
    this.opts.signal?.removeEventListener('abort', this.onAbort);
    return links;
  }

  async abort(reason?: unknown): Promise<void> {
    if (this.aborted) return;
    this.aborted = true;
    this.opts.signal?.removeEventListener('abort', this.onAbort);
    const why = reason ?? new DOMException('The output was aborted', 'AbortError');
    this.failure ??= why;
    this.abortController.abort(why);
    if (this.finished) return;
    await this.discard(why).catch(() => {});
  }
}

export abstract class SheetBase implements OutputSheet {
  protected readonly output: OutputBase;
  readonly sheet: CheckedSheet;
  private count = 0;
  private closed = false;
  private busy = false;

  constructor(output: OutputBase, sheet: CheckedSheet) {
    this.output = output;
    this.sheet = sheet;
  }

  protected abstract write(rows: CanonicalCell[][]): Promise<void>;
  protected abstract end(): Promise<void>;

  get name(): string {
    return this.sheet.name;
  }

  get rows(): number {
    return this.count;
  }

  private enter(what: string): void {
    this.output.guard();
    if (this.closed) throw invalid(`sheet ${JSON.stringify(this.name)}: ${what} after close`);
    if (this.busy) {
      throw invalid(`sheet ${JSON.stringify(this.name)}: ${what} while an append is still running; await each call`);
    }
  }

  async append(rows: readonly OutputRow[]): Promise<void> {
    this.enter('append');
    const checked = canonicalRows(this.sheet, rows, this.count + 1);
    if (checked.length === 0) return;
    this.busy = true;
    try {
      await this.output.run(() => this.write(checked));
      this.count += checked.length;
    } finally {
      this.busy = false;
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.enter('close');
    this.busy = true;
    try {
      await this.output.run(() => this.end());
      this.closed = true;
      this.output.sheetClosed(this);
    } finally {
      this.busy = false;
    }
  }
}
