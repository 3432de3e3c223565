// Packed batches on disk: the search-terms rows recorded once from the demo platform, replayed into every variant of
// `npm run bench -- report`. Each record: a 4-byte little-endian header length, the header (JSON: the batch without
// its buffer), then the batch's bytes. Reading puts each batch where the run's allocator says (its recycled shared
// slots), as packing does in a live run.
import { closeSync, openSync, readSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { type BatchAllocator, ownBuffer, type PackedBatch } from '../../../services/report-worker/src/reports/index.ts';

type Header = Omit<PackedBatch, 'buffer' | 'byteOffset'>;

export async function openBatchWriter(path: string): Promise<{
  write(batch: PackedBatch): Promise<void>;
  close(): Promise<void>;
}> {
  const file = await open(path, 'w');
  return {
    async write(batch) {
      const { buffer, byteOffset, ...rest } = batch;
      const header = Buffer.from(JSON.stringify(rest satisfies Header));
      const length = Buffer.alloc(4);
      length.writeUInt32LE(header.length);
      await file.write(length);
      await file.write(header);
      await file.write(new Uint8Array(buffer, byteOffset, batch.byteLength));
    },
    close: () => file.close(),
  };
}

function readFully(fd: number, into: Uint8Array): boolean {
  let done = 0;
  while (done < into.length) {
    const n = readSync(fd, into, done, into.length - done, null);
    if (n === 0) return false;
    done += n;
  }
  return true;
}

/**
 * The recorded batches, one at a time (only the batches being processed are in memory). Reads are synchronous: a
 * few milliseconds per batch from the page cache, without a round trip through libuv's thread pool, which on a busy
 * machine waits for a core like any other thread.
 */
export async function* readBatches(path: string, alloc: BatchAllocator = ownBuffer): AsyncGenerator<PackedBatch> {
  const fd = openSync(path, 'r');
  try {
    const length = new Uint8Array(4);
    while (readFully(fd, length)) {
      const header = new Uint8Array(Buffer.from(length.buffer).readUInt32LE(0));
      if (!readFully(fd, header)) throw new Error(`${path}: truncated header`);
      const meta = JSON.parse(Buffer.from(header).toString()) as Header;
      const { buffer, byteOffset } = alloc(meta.byteLength);
      if (!readFully(fd, new Uint8Array(buffer, byteOffset, meta.byteLength)))
        throw new Error(`${path}: truncated batch`);
      yield { ...meta, buffer, byteOffset };
    }
  } finally {
    closeSync(fd);
  }
}
