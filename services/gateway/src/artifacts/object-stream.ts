import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import type { JetStreamClient } from '@nats-io/jetstream';
import type { ObjectInfo } from '@nats-io/obj';

export class ObjectReadError extends Error {
  override name = 'ObjectReadError';
}

export interface ObjectStreamOptions {
  /** Chunks asked for at a time; at most this many (plus the stream's buffer) are held while the client reads. */
  batch?: number;
  /** How long one batch may take to arrive. */
  batchTimeoutMs?: number;
}

/**
 * The object's chunks, fetched a few at a time as they are read. The object store's own `get()` pushes every chunk
 * into memory as fast as the server sends it, whatever the HTTP client's pace; this reads with an ordered pull
 * consumer on the object's chunk subject, so a slow download holds a few chunks, not the file. The SHA-256 digest
 * and size are checked at the end: a mismatch errors the stream (the client sees a broken download, never a
 * silently wrong file).
 */
export async function* objectChunks(
  js: JetStreamClient,
  info: Pick<ObjectInfo, 'bucket' | 'nuid' | 'chunks' | 'size' | 'digest'>,
  opts: ObjectStreamOptions = {},
): AsyncGenerator<Uint8Array> {
  if (info.size === 0) return;
  const batch = opts.batch ?? 4;
  const consumer = await js.consumers.get(`OBJ_${info.bucket}`, {
    filter_subjects: `$O.${info.bucket}.C.${info.nuid}`,
  });
  const hash = createHash('sha256');
  let chunks = 0;
  let bytes = 0;
  try {
    while (chunks < info.chunks) {
      let got = 0;
      const messages = await consumer.fetch({
        max_messages: Math.min(batch, info.chunks - chunks),
        expires: opts.batchTimeoutMs ?? 5000,
      });
      for await (const m of messages) {
        got += 1;
        chunks += 1;
        bytes += m.data.length;
        hash.update(m.data);
        yield m.data;
      }
      if (got === 0) throw new ObjectReadError(`no chunk of ${info.nuid} arrived in time`);
    }
  } finally {
    consumer.delete().catch(() => {});
  }
  const expected = Buffer.from(info.digest.replace(/^SHA-256=/, ''), 'base64url');
  if (bytes !== info.size || !expected.equals(hash.digest())) {
    throw new ObjectReadError(`object ${info.nuid} is corrupt: size or SHA-256 digest does not match its metadata`);
  }
}

/** `objectChunks` as a byte stream with a bounded buffer, for an HTTP response. */
export function objectReadable(
  js: JetStreamClient,
  info: Pick<ObjectInfo, 'bucket' | 'nuid' | 'chunks' | 'size' | 'digest'>,
  opts: ObjectStreamOptions = {},
): Readable {
  return Readable.from(objectChunks(js, info, opts), { objectMode: false, highWaterMark: 256 * 1024 });
}
