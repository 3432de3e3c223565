import type { OutputTarget } from '@ppc/proto';
import { openOutput } from './open.ts';
import type { OpenOutputOptions, OutputCell, OutputColumnType, OutputLink } from './types.ts';

/** A finished sheet of a report, its rows produced in batches as they are written. */
export interface ReportSheetSource {
  name: string;
  columns: readonly { key: string; header: string; type: OutputColumnType }[];
  rows: AsyncIterable<OutputCell[][]> | Iterable<OutputCell[][]>;
  currency?: string;
}

export interface WrittenReport {
  links: OutputLink[];
  /** Data rows per sheet name. */
  rows: Record<string, number>;
}

/**
 * Writes a report's sheets one after another to its output target and returns the links. Any failure aborts the
 * output (no partial file replaces a previous attempt's) and is rethrown; the report worker and the URL checker share
 * this, so both deliver the same way.
 */
export async function writeReport(
  target: OutputTarget,
  opts: OpenOutputOptions,
  sheets: Iterable<ReportSheetSource> | AsyncIterable<ReportSheetSource>,
  onSheet?: (index: number, name: string, rows: number) => void,
): Promise<WrittenReport> {
  const out = await openOutput(target, opts);
  const rows: Record<string, number> = {};
  try {
    let index = 0;
    for await (const source of sheets) {
      index += 1;
      const sheet = await out.addSheet({
        name: source.name,
        columns: source.columns.map((c) => ({ key: c.key, header: c.header, type: c.type })),
        ...(source.currency && { currency: source.currency }),
      });
      for await (const batch of source.rows) {
        if (batch.length > 0) await sheet.append(batch);
      }
      await sheet.close();
      rows[source.name] = sheet.rows;
      onSheet?.(index, source.name, sheet.rows);
    }
    return { links: await out.finish(), rows };
  } catch (err) {
    await out.abort(err);
    throw err;
  }
}
