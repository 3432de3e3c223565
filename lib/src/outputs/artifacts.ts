import { type ObjectInfo, type ObjectStore, type ObjectStoreMeta, Objm, setSha256Backend } from '@nats-io/obj';
import type { NatsConnection } from '@nats-io/transport-node';
import { objectStores } from '@ppc/proto';
import { RetryableError } from '../errors/index.ts';
import { OutputErrorCode } from './types.ts';

/**
 * Files in the `artifacts` object store: one object per file under `<runId>/<file>`, streamed in as it is
 * written. A put of an existing name replaces the object only when the new one is complete (the store writes the
 * new chunks, then swaps the metadata, then purges the old chunks), so a retried run overwrites its own files and a
 * failed attempt leaves the previous complete file readable.
 */

/**
 * Opens the mesh's `artifacts` object store (provisioned by the service runtime). Also switches the object store's
 * SHA-256 (process-wide) from its pure-JS default to node:crypto, 5-10 times faster on report-sized files.
 */
export function openArtifactStore(nc: NatsConnection): Promise<ObjectStore> {
  setSha256Backend('native');
  return new Objm(nc).open(objectStores.artifacts.bucket);
}

/**
 * A file name safe on every OS, in a Content-Disposition header and as an object name; never empty. Object names
 * must be Latin-1 (@nats-io/obj keys them with `btoa`), so accents are dropped (`č` → `c`) and other characters
 * outside Latin-1 (an en dash, CJK) become `-`.
 */
export function safeFileName(base: string, ext: string): string {
  const cleaned = base
    .normalize('NFKD')
    .replace(/\p{M}+/gu, '')
    .replace(/[^\u0020-\u00ff]+/g, (m) => (/^\s+$/.test(m) ? ' ' : '-'))
    // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is replaced
    .replace(/[/\\:*?"<>|\u0000-\u001f\u007f]+/g, '-')
    .replace(/\s+/g, ' ')
    .trim()
    .replace(/[. ]+$/, '')
    .slice(0, 120)
    .trim();
  return `${cleaned || 'report'}.${ext}`;
}

export function objectName(runId: string, file: string): string {
  return `${runId}/${file}`;
}

/** Where the gateway serves the object `<runId>/<file>`. */
export function artifactUrl(runId: string, file: string): string {
  return `/artifacts/${encodeURIComponent(runId)}/${encodeURIComponent(file)}`;
}

/** Object metadata the gateway uses to serve the download. */
export function artifactMeta(runId: string, file: string, contentType: string, title: string): ObjectStoreMeta {
  return {
    name: objectName(runId, file),
    description: title.slice(0, 300),
    metadata: { runId, fileName: file, contentType },
  };
}

function storeError(err: unknown): RetryableError {
  const message = err instanceof Error ? err.message : String(err);
  return new RetryableError(`artifacts object store: ${message}`, { code: OutputErrorCode.Store, cause: err });
}

/**
 * One object being put: `write` hands bytes to the store's reader and resolves while fewer than `highWaterMark`
 * bytes wait for it (the store reads and publishes chunk by chunk), so a slow store slows the writer down instead
 * of filling memory.
 */
export class ObjectSink {
  readonly name: string;
  private controller!: ReadableStreamDefaultController<Uint8Array>;
  private readonly highWaterMark: number;
  private wakeUp: (() => void) | undefined;
  private failure: unknown;
  private closed = false;
  private readonly done: Promise<ObjectInfo>;

  constructor(store: ObjectStore, meta: ObjectStoreMeta, highWaterMark = 256 * 1024) {
    this.name = meta.name;
    this.highWaterMark = highWaterMark;
    const stream = new ReadableStream<Uint8Array>(
      {
        start: (c) => {
          this.controller = c;
        },
        pull: () => this.wake(),
      },
      new ByteLengthQueuingStrategy({ highWaterMark }),
    );
    this.done = store.put(meta, stream);
    this.done.catch((err) => {
      this.failure ??= storeError(err);
      this.wake();
    });
  }

  /** Bytes handed over and not yet taken by the store. */
  get buffered(): number {
    return Math.max(0, this.highWaterMark - (this.controller.desiredSize ?? 0));
  }

  private wake(): void {
    const w = this.wakeUp;
    this.wakeUp = undefined;
    w?.();
  }

  private check(): void {
    if (this.failure !== undefined) throw this.failure;
  }

  async write(bytes: Uint8Array): Promise<void> {
    this.check();
    if (bytes.byteLength > 0) this.controller.enqueue(bytes);
    while ((this.controller.desiredSize ?? 0) <= 0) {
      await new Promise<void>((resolve) => {
        this.wakeUp = resolve;
      });
      this.check();
    }
  }

  /** Completes the object; resolves when the store has it. */
  async end(): Promise<ObjectInfo> {
    this.check();
    if (!this.closed) {
      this.closed = true;
      this.controller.close();
    }
    try {
      return await this.done;
    } catch {
      throw this.failure;
    }
  }

  /** Abandons the object: the store purges the chunks it took; an older complete object of that name stays. */
  async abort(reason: unknown): Promise<void> {
    this.failure ??= reason;
    if (!this.closed) {
      this.closed = true;
      try {
        this.controller.error(reason);
      } catch {}
    }
    this.wake();
    await this.done.catch(() => {});
  }
}
