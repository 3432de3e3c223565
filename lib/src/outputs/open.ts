import type { OutputTarget } from '@ppc/proto';
import { checkCurrency, invalid } from './cells.ts';
import type { OpenOutputOptions, Output } from './types.ts';

/**
 * Opens the output a run's target asks for. Each kind's writer is loaded on first use, so a process that only
 * writes CSV never loads exceljs (~33 MB) or the Google API surfaces (~26 MB).
 *
 * For `sheets` this already finds or creates the spreadsheet, so a wrong `spreadsheetId`, a missing folder or a
 * refused token fails here, before any data is fetched.
 */
export async function openOutput(target: OutputTarget, opts: OpenOutputOptions): Promise<Output> {
  opts.signal?.throwIfAborted();
  if (typeof opts.runId !== 'string' || !/^[A-Za-z0-9_-]{1,200}$/.test(opts.runId)) {
    throw invalid(`output: runId ${JSON.stringify(opts.runId)} must be 1 to 200 letters, digits, _ or -`);
  }
  if (typeof opts.title !== 'string' || opts.title.trim().length === 0 || opts.title.length > 300) {
    throw invalid('output: title must be 1 to 300 characters');
  }
  checkCurrency(opts.currency, 'output: currency');
  switch (target.kind) {
    case 'csv': {
      if (!opts.deps.objectStore) throw invalid('output csv: deps.objectStore (the artifacts store) is required');
      const { CsvOutput } = await import('./csv.ts');
      return new CsvOutput(opts, opts.deps.objectStore);
    }
    case 'xlsx': {
      if (!opts.deps.objectStore) throw invalid('output xlsx: deps.objectStore (the artifacts store) is required');
      const { XlsxOutput } = await import('./xlsx.ts');
      return new XlsxOutput(opts, opts.deps.objectStore);
    }
    case 'sheets': {
      if (!opts.deps.google) throw invalid('output sheets: deps.google (an access-token provider) is required');
      const { openSheetsOutput } = await import('./google/sheets-output.ts');
      return openSheetsOutput(target, opts, opts.deps.google);
    }
    default:
      throw invalid(`output: unknown target kind ${JSON.stringify((target as { kind?: unknown }).kind)}`);
  }
}
