// `npm run bench -- ads`: streams 1,000,000 search-term rows from the demo platform over HTTP through the real
// connector (OAuth, undici, incremental JSON parsing, typed row batches) and reports rows/s and the reading
// process's peak RSS. The demo server runs in a child process, so this process's memory and CPU are the reader's.
// Baseline, measured in the same run: reading the same response's raw bytes without parsing.
import { fork } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { type IncomingMessage, request as httpRequest } from 'node:http';
import { createDemoConnector, type ReportQuery } from '@ppc/lib/ads';
import { printFigure } from './harness.ts';

const ROWS = 1_000_000;
const TARGET_ROWS_PER_S = 500_000;
const TARGET_RSS_MB = 150;

const query: ReportQuery = {
  from: 'search_term_view',
  select: [
    'search_term_view.search_term',
    'search_term_view.status',
    'campaign.id',
    'ad_group.id',
    'metrics.impressions',
    'metrics.clicks',
    'metrics.cost_micros',
    'metrics.conversions',
    'metrics.conversions_value',
  ],
};

interface Server {
  url: string;
  huge: string;
  agency: string;
}

function vmHwmMb(): number | undefined {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) / 1024 : undefined;
}

/** Samples RSS every 5 ms while `fn` runs (timers run between body chunks). */
async function withPeakRss<T>(fn: () => Promise<T>): Promise<{ result: T; peakMb: number }> {
  let peak = process.memoryUsage.rss();
  const timer = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage.rss());
  }, 5);
  try {
    const result = await fn();
    peak = Math.max(peak, process.memoryUsage.rss());
    return { result, peakMb: peak / 1024 / 1024 };
  } finally {
    clearInterval(timer);
  }
}

/** POSTs with node:http and returns the response stream (the connector's transport, without the connector). */
function post(url: string, headers: Record<string, string>, body: string): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, {
      method: 'POST',
      headers: { ...headers, 'content-length': String(Buffer.byteLength(body)) },
    });
    req.once('response', resolve);
    req.once('error', reject);
    req.end(body);
  });
}

async function rawRead(server: Server): Promise<{ bytes: number; seconds: number }> {
  const tokenRes = await post(
    `${server.url}/token`,
    { 'content-type': 'application/x-www-form-urlencoded' },
    'grant_type=refresh_token&refresh_token=demo&client_id=demo&client_secret=demo',
  );
  const parts: Buffer[] = [];
  for await (const c of tokenRes as AsyncIterable<Buffer>) parts.push(c);
  const { access_token } = JSON.parse(Buffer.concat(parts).toString()) as { access_token: string };
  const started = performance.now();
  const res = await post(
    `${server.url}/v21/customers/${server.huge}/googleAds:searchStream`,
    {
      authorization: `Bearer ${access_token}`,
      'developer-token': 'demo',
      'login-customer-id': server.agency,
      'content-type': 'application/json',
    },
    JSON.stringify({ query: `SELECT ${query.select.join(', ')} FROM ${query.from}` }),
  );
  let bytes = 0;
  for await (const chunk of res as AsyncIterable<Buffer>) bytes += chunk.length;
  return { bytes, seconds: (performance.now() - started) / 1000 };
}

async function connectorRead(server: Server): Promise<{ rows: number; batches: number; seconds: number }> {
  const connector = createDemoConnector({ url: server.url });
  try {
    const started = performance.now();
    let rows = 0;
    let batches = 0;
    let clicks = 0;
    for await (const batch of connector.streamReport({ id: server.huge, loginCustomerId: server.agency }, query)) {
      batches += 1;
      rows += batch.rows.length;
      for (const r of batch.rows) clicks += r[5] as number; // touch the data, as a consumer would
    }
    if (clicks <= 0) throw new Error('no clicks read: the rows are not what they should be');
    return { rows, batches, seconds: (performance.now() - started) / 1000 };
  } finally {
    await connector.close();
  }
}

export async function run(args: string[]): Promise<void> {
  const child = fork(new URL('./ads/server.ts', import.meta.url), [args[0] ?? '1'], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  try {
    const server = await new Promise<Server>((resolve, reject) => {
      child.once('message', (m) => resolve(m as Server));
      child.once('exit', (code) => reject(new Error(`demo platform exited early (${code})`)));
    });
    // The connector read goes first, so its peak RSS is not inflated by the baseline's buffers.
    const before = process.memoryUsage();
    const { result, peakMb } = await withPeakRss(() => connectorRead(server));
    const after = process.memoryUsage();
    const baseline = await rawRead(server);
    if (result.rows !== ROWS) throw new Error(`expected ${ROWS} rows, read ${result.rows}`);
    const rawRowsPerS = ROWS / baseline.seconds;
    const rowsPerS = result.rows / result.seconds;
    printFigure({
      bench: 'ads',
      figure: 'baseline_raw_http_read',
      rows: ROWS,
      bytes: baseline.bytes,
      seconds: round(baseline.seconds),
      mb_per_s: round(baseline.bytes / 1e6 / baseline.seconds),
      rows_per_s: Math.round(rawRowsPerS),
    });
    printFigure({
      bench: 'ads',
      figure: 'connector_stream_search_terms',
      rows: result.rows,
      batches: result.batches,
      seconds: round(result.seconds),
      rows_per_s: Math.round(rowsPerS),
      target_rows_per_s: TARGET_ROWS_PER_S,
      meets_rows_target: rowsPerS >= TARGET_ROWS_PER_S,
      ratio_vs_raw_read: round(rowsPerS / rawRowsPerS),
      peak_rss_mb: round(peakMb),
      rss_before_read_mb: round(before.rss / 1048576),
      heap_used_after_mb: round(after.heapUsed / 1048576),
      heap_total_after_mb: round(after.heapTotal / 1048576),
      process_vm_hwm_mb: round(vmHwmMb() ?? Number.NaN),
      target_rss_mb: TARGET_RSS_MB,
      meets_rss_target: peakMb <= TARGET_RSS_MB,
    });
  } finally {
    child.disconnect();
    await new Promise((r) => (child.exitCode === null ? child.once('exit', r) : r(null)));
  }
}

function round(x: number): number {
  return Math.round(x * 100) / 100;
}
