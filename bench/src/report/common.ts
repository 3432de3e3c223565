// What every process of `npm run bench -- report` agrees on: the report, its parameters, the demo clock.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Sheet } from '../../../services/report-worker/src/reports/index.ts';

export const REPORT = 'search-terms';
/** The defaults, spelled out: candidates over 10 currency units and 5 clicks without conversions, 1-3-grams. */
export const PARAMS = {
  period: 'last_30_days',
  minCost: 10,
  minClicks: 5,
  maxConversions: 0,
  candidatesLimit: 1000,
  ngramSizes: [1, 2, 3],
  ngramLimit: 1000,
};
/** The demo platform's clock in bench/src/ads/server.ts. */
export const TODAY = '2025-06-15';
/** The worker's default task size. */
export { DEFAULT_ROWS_PER_TASK as ROWS_PER_TASK } from '../../../services/report-worker/src/processing/index.ts';

/** The kernel's high-water mark of this process's RSS (VmHWM, threads included), in MB. */
export function vmHwmMb(): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) / 1024 : Number.NaN;
}

/** A digest of every sheet's rows: the variants must produce the same report. */
export function digest(sheets: Sheet[]): string {
  const h = createHash('sha256');
  for (const s of sheets) h.update(JSON.stringify([s.name, s.rows]));
  return h.digest('hex').slice(0, 16);
}

export interface VariantJob {
  path: string;
  mode: 'baseline' | 'pool';
  threads: number;
}

export interface VariantResult {
  rows: number;
  seconds: number;
  vmHwmMb: number;
  rssBeforeMb: number;
  digest: string;
  tasks: number;
  maxTasksInFlight: number;
  /** CPU seconds of the main thread during the run, and of the pool's threads on its tasks (0 for the baseline). */
  mainCpuSeconds: number;
  threadsCpuSeconds: number;
}

export interface RecordJob {
  url: string;
  huge: string;
  agency: string;
  path: string;
}

export interface RecordResult {
  rows: number;
  batches: number;
  bytes: number;
  seconds: number;
  mainCpuSeconds: number;
  vmHwmMb: number;
}
