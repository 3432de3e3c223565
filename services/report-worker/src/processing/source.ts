/**
 * Where packed batches come from. A run pulls from its source only when a thread slot is free, so a source must be
 * lazy: the connector source reads the platform's stream one batch at a time (and the platform's response waits in
 * the socket, by TCP flow control, while the threads are busy).
 */
import type { AccountRef, AdPlatformConnector } from '@ppc/lib/ads';
import { type BatchAllocator, BatchPacker, type PackedBatch, type QuerySpec } from '../reports/index.ts';

/**
 * The batches of one query, at most `rowsPerTask` rows each. A source should pack each batch into memory from
 * `alloc` (the run's recycled slots) when it hands the batch out; a batch in memory of its own is moved to the
 * thread instead, which costs the main thread an allocation per batch.
 */
export type BatchSource = (query: QuerySpec, signal: AbortSignal, alloc: BatchAllocator) => AsyncIterable<PackedBatch>;

export interface ConnectorSourceOptions {
  rowsPerTask: number;
  /** Passed to the connector: the longest silence a stream may have (see CallOptions.timeoutMs). */
  timeoutMs?: number;
}

/** Streams each query from an ad-platform connector and packs its rows into tasks of `rowsPerTask` rows. */
export function connectorSource(
  connector: Pick<AdPlatformConnector, 'streamReport'>,
  account: AccountRef,
  opts: ConnectorSourceOptions,
): BatchSource {
  return async function* (spec, signal, alloc) {
    let packer: BatchPacker | null = null;
    const stream = connector.streamReport(account, spec.query, {
      signal,
      ...(opts.timeoutMs ? { timeoutMs: opts.timeoutMs } : {}),
    });
    for await (const batch of stream) {
      packer ??= new BatchPacker(batch.schema, opts.rowsPerTask);
      for (const row of batch.rows) {
        packer.add(row);
        if (packer.full) yield packer.finish(alloc);
      }
    }
    if (packer && packer.rows > 0) yield packer.finish(alloc);
  };
}
