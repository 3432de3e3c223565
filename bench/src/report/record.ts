// Child process of `npm run bench -- report`: streams the search-terms report's query for the demo platform's huge
// account (1,000,000 rows) through the demo connector, packs the rows into thread tasks exactly as a report run does
// (connectorSource), and records the packed batches to a file for the variants to replay. Its main-thread CPU time
// is the main thread's share of a live run (reading the HTTP stream, decoding JSON, packing); its wall time is
// mostly the demo server's, which generates a million distinct terms in its own process.
import { createDemoConnector } from '@ppc/lib/ads';
import { validateReportParams } from '@ppc/proto';
import { BatchSlots, connectorSource } from '../../../services/report-worker/src/processing/index.ts';
import { searchTerms } from '../../../services/report-worker/src/reports/index.ts';
import { openBatchWriter } from './batch-file.ts';
import { PARAMS, ROWS_PER_TASK, type RecordJob, type RecordResult, TODAY, vmHwmMb } from './common.ts';

async function record(job: RecordJob): Promise<RecordResult> {
  const connector = createDemoConnector({ url: job.url });
  const plan = searchTerms.plan(validateReportParams('search-terms', PARAMS), { today: TODAY });
  const [spec] = searchTerms.queries(plan);
  const source = connectorSource(
    connector,
    { id: job.huge, loginCustomerId: job.agency },
    { rowsPerTask: ROWS_PER_TASK },
  );
  const out = await openBatchWriter(job.path);
  try {
    const started = performance.now();
    const cpu = process.threadCpuUsage();
    let rows = 0;
    let batches = 0;
    let bytes = 0;
    const slots = new BatchSlots(1);
    for await (const batch of source(spec!, new AbortController().signal, slots.alloc)) {
      rows += batch.rows;
      batches += 1;
      bytes += batch.byteLength;
      await out.write(batch);
      slots.release(batch.buffer);
    }
    const used = process.threadCpuUsage(cpu);
    return {
      rows,
      batches,
      bytes,
      seconds: (performance.now() - started) / 1000,
      mainCpuSeconds: (used.user + used.system) / 1e6,
      vmHwmMb: vmHwmMb(),
    };
  } finally {
    await out.close();
    await connector.close();
  }
}

process.once('message', (job) => {
  record(job as RecordJob).then(
    (result) => process.send?.({ result }, () => process.exit(0)),
    (err: unknown) => process.send?.({ error: String((err as Error)?.stack ?? err) }, () => process.exit(1)),
  );
});
