// Child process of `npm run bench -- ads`: the reading process. Streams the report through the connector a worker uses and
// reports its rows, time and own peak RSS over IPC. It imports the ads module and nothing else, as a worker that
// streams reports would, so its memory is the connector's and not the benchmark harness's.
import { readFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { GoogleAdsConnector, type ReportQuery } from '@ppc/lib/ads';

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

/**
 * The access token a worker would get from the credential broker (services/system): here straight from the demo
 * platform's token endpoint, once. A worker never holds a refresh token, so it never loads an OAuth client.
 */
async function brokeredToken(url: string): Promise<string> {
  // node:http, not fetch: fetch loads undici, ~15 MB of RSS a worker streaming through node:http never needs.
  const form = 'grant_type=refresh_token&refresh_token=demo&client_id=demo&client_secret=demo';
  const text = await new Promise<string>((resolve, reject) => {
    const req = httpRequest(`${url}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', 'content-length': String(form.length) },
    });
    req.once('response', (res) => {
      let data = '';
      res.setEncoding('utf8').on('data', (c: string) => (data += c));
      res.once('end', () => resolve(data));
    });
    req.once('error', reject);
    req.end(form);
  });
  const body = JSON.parse(text) as { access_token?: string };
  if (!body.access_token) throw new Error(`demo token endpoint answered without a token: ${text.slice(0, 200)}`);
  return body.access_token;
}

async function read(job: ReaderJob): Promise<ReaderResult> {
  const token = await brokeredToken(job.url);
  // The connector a worker builds from a broker grant (lib/src/credentials: openRunConnection).
  const connector = new GoogleAdsConnector({
    platform: 'demo',
    baseUrl: job.url,
    developerToken: 'demo',
    accessToken: async () => token,
    batchRows: job.batchRows,
  });
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
