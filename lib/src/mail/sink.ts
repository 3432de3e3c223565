import { randomBytes } from 'node:crypto';
import { appendFile, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { simpleParser } from 'mailparser';
import { SMTPServer, type SMTPServerDataStream, type SMTPServerSession } from 'smtp-server';

/**
 * A local SMTP server that accepts every message and keeps it on disk: what `npm start` runs on port 2525
 * instead of a real mail server, and what the tests send to. Each message is one `.eml` file (the raw
 * message, as received), written under a temporary name and renamed, so a reader never sees half a
 * message; then one JSON line in `index.jsonl` (see `StoredMessage`). No TLS, any login accepted.
 */
export interface SmtpSinkOptions {
  /** Default 127.0.0.1 (the sink relays nothing, but it also authenticates nobody). */
  host?: string;
  /** Default 0: any free port. */
  port?: number;
  /** Where messages are stored; created when missing. */
  dir: string;
  /** Larger messages are refused with 552; default 25 MB. */
  maxMessageBytes?: number;
  /** How long `close()` lets open connections finish; default 1 s. */
  closeTimeoutMs?: number;
  /** Connection-level errors after start (a client dropping its socket); ignored by default. */
  onError?: (err: Error) => void;
}

export interface SmtpSink {
  host: string;
  port: number;
  /** `smtp://host:port`, ready for `createMailer`. */
  url: string;
  dir: string;
  /** Stops accepting connections and resolves once the server is closed. */
  close(): Promise<void>;
}

/** One line of `index.jsonl`. */
export interface StoredMessage {
  /** File name of the `.eml`, relative to the sink's directory. */
  file: string;
  receivedAt: string;
  /** The SMTP envelope (not the headers). */
  from: string;
  to: string[];
  size: number;
  /** From the headers, decoded; absent when the message has none or cannot be parsed. */
  subject?: string;
  messageId?: string;
}

export const SINK_INDEX = 'index.jsonl';

/** Every message the sink in `dir` has stored, oldest first; empty when there is none yet. */
export async function readSinkIndex(dir: string): Promise<StoredMessage[]> {
  let text: string;
  try {
    text = await readFile(join(dir, SINK_INDEX), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as StoredMessage);
}

const MB = 1024 * 1024;

export async function startSmtpSink(opts: SmtpSinkOptions): Promise<SmtpSink> {
  const host = opts.host ?? '127.0.0.1';
  const dir = opts.dir;
  await mkdir(dir, { recursive: true });
  // Index lines are appended one at a time, so two messages finishing together never interleave.
  let indexQueue: Promise<void> = Promise.resolve();

  async function store(raw: Buffer, session: SMTPServerSession): Promise<string> {
    const receivedAt = new Date();
    const file = `${receivedAt.toISOString().replace(/[:.]/g, '-')}-${randomBytes(4).toString('hex')}.eml`;
    const tmp = join(dir, `.${file}.tmp`);
    await writeFile(tmp, raw);
    await rename(tmp, join(dir, file));
    const headers = await simpleParser(raw, {
      skipHtmlToText: true,
      skipTextToHtml: true,
      skipImageLinks: true,
      skipTextLinks: true,
    }).catch(() => undefined);
    const entry: StoredMessage = {
      file,
      receivedAt: receivedAt.toISOString(),
      from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
      to: session.envelope.rcptTo.map((r) => r.address),
      size: raw.length,
      subject: headers?.subject,
      messageId: headers?.messageId,
    };
    const line = `${JSON.stringify(entry)}\n`;
    const appended = indexQueue.then(() => appendFile(join(dir, SINK_INDEX), line));
    indexQueue = appended.catch(() => {});
    await appended;
    return file;
  }

  const server = new SMTPServer({
    logger: false,
    banner: 'ppc-robot SMTP sink: every message is stored, none is delivered',
    authOptional: true,
    allowInsecureAuth: true,
    hideSTARTTLS: true,
    disabledCommands: ['STARTTLS'],
    disableReverseLookup: true,
    size: opts.maxMessageBytes ?? 25 * MB,
    rejectOversized: true,
    closeTimeout: opts.closeTimeoutMs ?? 1000,
    onAuth(_auth, _session, callback) {
      callback(null, { user: 'sink' });
    },
    onData(stream: SMTPServerDataStream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('error', (err) => callback(err));
      stream.on('end', () => {
        if (stream.sizeExceeded) return callback(Object.assign(new Error('message too large'), { responseCode: 552 }));
        store(Buffer.concat(chunks), session).then(
          (file) => callback(null, `stored as ${file}`),
          (err: Error) =>
            callback(Object.assign(new Error(`could not store the message: ${err.message}`), { responseCode: 451 })),
        );
      });
    },
  });

  // Listening fails through this listener; afterwards it hears connection-level errors (a client resetting its
  // socket), which must not take the process down with them.
  let listening = false;
  await new Promise<void>((resolve, reject) => {
    server.on('error', (err) => (listening ? opts.onError?.(err) : reject(err)));
    server.listen(opts.port ?? 0, host, () => {
      listening = true;
      resolve();
    });
  });
  const port = (server.server.address() as AddressInfo).port;
  const urlHost = host.includes(':') ? `[${host}]` : host;
  return {
    host,
    port,
    url: `smtp://${urlHost}:${port}`,
    dir,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
