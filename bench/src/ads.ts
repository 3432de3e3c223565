// `npm run bench -- ads`: streams 1,000,000 search-term rows from the demo platform over HTTP through the real
// connector as a worker runs it (an access token from the broker, node:http, incremental JSON decoding, typed row
// batches) and reports rows/s and the reading process's peak RSS. Three processes: the demo server (ads/server.ts), the reader (ads/reader.ts: the connector
// and nothing else; its memory and CPU are the figures) and this one, which starts both and prints the results.
// Baseline, measured in the same run: reading the same response's raw bytes without parsing.
import { fork } from 'node:child_process';
import { type IncomingMessage, request as httpRequest } from 'node:http';
import { type ReportQuery, toGaql } from '@ppc/lib/ads';
import type { ReaderJob, ReaderResult } from './ads/reader.ts';
import { SERVICE_NODE_FLAGS } from '@ppc/lib/service';
import { printFigure } from './harness.ts';

const ROWS = 1_000_000;
const TARGET_ROWS_PER_S = 500_000;
const TARGET_RSS_MB = 150;

// A daily search-term report with the fields such a report needs (Google adds each row's resource name itself):
// the huge account's search terms by day over the last 30 days, the first million rows.
const query: ReportQuery = {
  from: 'search_term_view',
  select: [
    'search_term_view.search_term',
    'segments.date',
    'metrics.impressions',
    'metrics.clicks',
    'metrics.cost_micros',
    'metrics.conversions',
    'campaign.id',
    'ad_group.id',
  ],
  dateRange: { start: '2025-05-16', end: '2025-06-14' },
  limit: ROWS,
};
const CLICKS = query.select.indexOf('metrics.clicks');

/**
 * Rows per batch handed to the reader. Fewer rows held at once means fewer survivors per scavenge, so V8 grows the
 * young generation less: peak RSS was ~146 MB with 250 and ~200 MB with the connector's default of 1,000, at the
 * same speed.
 */
const BATCH_ROWS = 250;

/**
 * Node flags of the reading process: the report worker's own (SERVICE_NODE_FLAGS, what `npm start` runs it with),
 * or READER_FLAGS from the environment for experiments (`READER_FLAGS=' '` for none).
 */
const READER_FLAGS = (process.env.READER_FLAGS ?? SERVICE_NODE_FLAGS['report-worker']!.join(' '))
  .split(' ')
  .filter(Boolean);

interface Server {
  url: string;
  huge: string;
  agency: string;
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
    JSON.stringify({ query: toGaql(query) }),
  );
  let bytes = 0;
  for await (const chunk of res as AsyncIterable<Buffer>) bytes += chunk.length;
  return { bytes, seconds: (performance.now() - started) / 1000 };
}

/** Runs the connector read in its own process (see ads/reader.ts), whose peak RSS is the figure. */
async function connectorRead(server: Server): Promise<ReaderResult> {
  const reader = fork(new URL('./ads/reader.ts', import.meta.url), [], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    execArgv: [...process.execArgv, ...READER_FLAGS],
  });
  const job: ReaderJob = { ...server, query, checkColumn: CLICKS, batchRows: BATCH_ROWS };
  const answer = new Promise<{ result?: ReaderResult; error?: string }>((resolve, reject) => {
    reader.once('message', (m) => resolve(m as { result?: ReaderResult; error?: string }));
    reader.once('exit', (code) => reject(new Error(`reader exited early (${code})`)));
  });
  reader.send(job);
  const { result, error } = await answer;
  await new Promise((r) => (reader.exitCode === null ? reader.once('exit', r) : r(null)));
  if (!result) throw new Error(`reader failed: ${error}`);
  return result;
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
    // One unmeasured read first: the demo server's generator is JIT-compiled during its first stream, and the
    // figures compare the reader against the raw read, not a cold server against a warm one.
    await rawRead(server);
    const result = await connectorRead(server);
    const baseline = await rawRead(server);
    if (result.rows !== ROWS) throw new Error(`expected ${ROWS} rows, read ${result.rows}`);
    const rawRowsPerS = ROWS / baseline.seconds;
    const rowsPerS = result.rows / result.seconds;
    printFigure({
      bench: 'ads',
      figure: 'baseline_raw_http_read',
      rows: ROWS,
      bytes: baseline.bytes,
      bytes_per_row: Math.round(baseline.bytes / ROWS),
      seconds: round(baseline.seconds),
      mb_per_s: round(baseline.bytes / 1e6 / baseline.seconds),
      rows_per_s: Math.round(rawRowsPerS),
    });
    printFigure({
      bench: 'ads',
      figure: 'connector_stream_search_terms',
      query: toGaql(query),
      bytes_per_row: Math.round(baseline.bytes / ROWS),
      rows: result.rows,
      batches: result.batches,
      batch_rows: BATCH_ROWS,
      seconds: round(result.seconds),
      rows_per_s: Math.round(rowsPerS),
      target_rows_per_s: TARGET_ROWS_PER_S,
      meets_rows_target: rowsPerS >= TARGET_ROWS_PER_S,
      ratio_vs_raw_read: round(rowsPerS / rawRowsPerS),
      peak_rss_mb: round(result.vmHwmMb),
      rss_before_read_mb: round(result.rssBeforeReadMb),
      heap_total_after_mb: round(result.heapTotalAfterMb),
      reader_node_flags: READER_FLAGS.join(' ') || null,
      peak_rss_source: 'VmHWM of the reading process (its whole life)',
      target_rss_mb: TARGET_RSS_MB,
      meets_rss_target: result.vmHwmMb <= TARGET_RSS_MB,
    });
  } finally {
    child.disconnect();
    await new Promise((r) => (child.exitCode === null ? child.once('exit', r) : r(null)));
  }
}

function round(x: number): number {
  return Math.round(x * 100) / 100;
}
