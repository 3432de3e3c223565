// Child process of `npm run bench -- ads`: the reading process. Streams the report through the demo connector and
// reports its rows, time and own peak RSS over IPC. It imports the ads module and nothing else, as a worker that
// streams reports would, so its memory is the connector's and not the benchmark harness's.
import { readFileSync } from 'node:fs';
import { createDemoConnector, type ReportQuery } from '@ppc/lib/ads';

export interface ReaderJob {
  url: string;
  huge: string;
  agency: string;
  query: ReportQuery;
  /** Column summed to check the rows are real. */
  checkColumn: number;
  /** Rows per batch the connector hands out (and the most rows it holds at once). */
  batchRows: number;
}

export interface ReaderResult {
  rows: number;
  batches: number;
  seconds: number;
  /** The kernel's high-water mark of this process's RSS (VmHWM), from its start to the end of the read. */
  vmHwmMb: number;
  rssBeforeReadMb: number;
  heapTotalAfterMb: number;
}

const mb = (bytes: number): number => bytes / 1048576;

function vmHwmMb(): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) / 1024 : Number.NaN;
}

async function read(job: ReaderJob): Promise<ReaderResult> {
  const connector = createDemoConnector({ url: job.url, batchRows: job.batchRows });
  const before = process.memoryUsage.rss();
  try {
    const started = performance.now();
    let rows = 0;
    let batches = 0;
    let check = 0;
    for await (const batch of connector.streamReport({ id: job.huge, loginCustomerId: job.agency }, job.query)) {
      batches += 1;
      rows += batch.rows.length;
      for (const r of batch.rows) check += r[job.checkColumn] as number; // touch the data, as a consumer would
    }
    const seconds = (performance.now() - started) / 1000;
    if (!(check > 0)) throw new Error('nothing read in the check column: the rows are not what they should be');
    return {
      rows,
      batches,
      seconds,
      vmHwmMb: vmHwmMb(),
      rssBeforeReadMb: mb(before),
      heapTotalAfterMb: mb(process.memoryUsage().heapTotal),
    };
  } finally {
    await connector.close();
  }
}

process.once('message', (job) => {
  read(job as ReaderJob).then(
    (result) => process.send?.({ result }, () => process.exit(0)),
    (err: unknown) => process.send?.({ error: String((err as Error)?.stack ?? err) }, () => process.exit(1)),
  );
});
