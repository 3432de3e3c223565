import { artifactUrl } from '@ppc/lib/outputs';
import type { RunStatus } from '@ppc/lib/db';

/** One output of a run as the API shows it: Sheets links as stored, files as the gateway's download URL. */
export interface RunOutputView {
  kind: string;
  name: string;
  url: string;
}

/** The GraphQL `Run` object. Other modules that return a run (e.g. `runJob`) build it with `loadRunView`. */
export interface RunView {
  id: string;
  job: { id: string; name: string };
  trigger: string;
  status: RunStatus;
  phase: string | null;
  progress: number;
  attempt: number;
  queuedAt: Date;
  startedAt: Date | null;
  finishedAt: Date | null;
  timings: Record<string, number> | null;
  rowCounts: Record<string, number> | null;
  errorCode: string | null;
  errorMessage: string | null;
  workerInstance: string | null;
  outputs: RunOutputView[];
}

/** Output kinds whose files live in the `artifacts` object store and are served under `/artifacts`. */
export const FILE_OUTPUT_KINDS: ReadonlySet<string> = new Set(['xlsx', 'csv']);

export function outputViews(runId: string, links: readonly { kind: string; name: string; url: string }[] | null) {
  return (links ?? []).map((o) => ({
    kind: o.kind,
    name: o.name,
    // Stored links of files are relative already; rebuilt so the API never depends on what a worker wrote.
    url: FILE_OUTPUT_KINDS.has(o.kind) ? artifactUrl(runId, o.name) : o.url,
  }));
}

/** A row of RUN_COLUMNS (see queries.ts). */
export interface RunRow {
  id: string;
  job_id: string;
  job_name: string;
  trigger: string;
  status: RunStatus;
  phase: string | null;
  progress: number;
  attempt: number;
  queued_at: Date;
  /** `queued_at` with microseconds, for the cursor (a JS Date keeps only milliseconds). */
  queued_key: string;
  started_at: Date | null;
  finished_at: Date | null;
  timings: Record<string, number> | null;
  row_counts: Record<string, number> | null;
  error_code: string | null;
  error_message: string | null;
  worker_instance: string | null;
  output_links: { kind: string; name: string; url: string }[] | null;
}

const asDate = (v: Date | string | null): Date | null => (v === null ? null : v instanceof Date ? v : new Date(v));

export function runView(r: RunRow): RunView {
  return {
    id: r.id,
    job: { id: r.job_id, name: r.job_name },
    trigger: r.trigger,
    status: r.status,
    phase: r.phase,
    progress: Number(r.progress),
    attempt: r.attempt,
    queuedAt: asDate(r.queued_at)!,
    startedAt: asDate(r.started_at),
    finishedAt: asDate(r.finished_at),
    timings: r.timings,
    rowCounts: r.row_counts,
    errorCode: r.error_code,
    errorMessage: r.error_message,
    workerInstance: r.worker_instance,
    outputs: outputViews(r.id, r.output_links),
  };
}
