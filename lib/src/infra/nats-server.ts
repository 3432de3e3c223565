import { type ChildProcess, spawn } from 'node:child_process';
import { accessSync, constants, mkdirSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { freePort } from './ports.ts';

export class NatsServerNotInstalledError extends Error {
  override name = 'NatsServerNotInstalledError';
  constructor() {
    super('nats-server is not on PATH (install it with: apt-get install -y nats-server)');
  }
}

export function findNatsServer(): string {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/bin', '/usr/sbin', '/usr/local/bin'];
  for (const dir of dirs) {
    const candidate = join(dir, 'nats-server');
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {}
  }
  throw new NatsServerNotInstalledError();
}

export interface NatsServerOptions {
  storeDir: string;
  port?: number;
  monitorPort?: number;
  host?: string;
  /** Lines of the server's own log go here (it logs to stderr). */
  onLog?: (line: string) => void;
  /** In its own process group, so a terminal's Ctrl-C leaves it to us to stop in order. */
  detached?: boolean;
}

export interface NatsServerHandle {
  url: string;
  port: number;
  /** Graceful stop (SIGTERM), waits for exit. */
  stop(): Promise<void>;
  /** SIGKILL: a crash, for tests. */
  kill(): Promise<void>;
  /** Stops and starts again on the same port and store. */
  restart(): Promise<void>;
  pid(): number | undefined;
}

function waitReady(child: ChildProcess, onLog?: (line: string) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    let buf = '';
    let ready = false;
    const timer = setTimeout(() => reject(new Error(`nats-server did not become ready in 10 s:\n${buf}`)), 10_000);
    child.stderr?.on('data', (chunk: Buffer) => {
      const text = chunk.toString();
      if (!ready) buf += text;
      for (const line of text.split('\n')) if (line) onLog?.(line);
      if (!ready && buf.includes('Server is ready')) {
        ready = true;
        clearTimeout(timer);
        resolve();
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      if (!ready) reject(new Error(`nats-server exited with code ${code}:\n${buf}`));
    });
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

const exited = (child: ChildProcess) =>
  child.exitCode !== null || child.signalCode !== null
    ? Promise.resolve()
    : new Promise<void>((resolve) => child.once('exit', () => resolve()));

/** Starts nats-server with JetStream storing under `storeDir`. */
export async function startNatsServer(opts: NatsServerOptions): Promise<NatsServerHandle> {
  const bin = findNatsServer();
  const host = opts.host ?? '127.0.0.1';
  const port = opts.port ?? (await freePort(host));
  mkdirSync(opts.storeDir, { recursive: true });
  let child: ChildProcess;
  const launch = async () => {
    const args = ['-js', '-sd', opts.storeDir, '-p', String(port), '-a', host];
    if (opts.monitorPort) args.push('-m', String(opts.monitorPort));
    child = spawn(bin, args, { stdio: ['ignore', 'ignore', 'pipe'], detached: opts.detached ?? false });
    await waitReady(child, opts.onLog);
  };
  await launch();
  const stop = async () => {
    child.kill('SIGTERM');
    await exited(child);
  };
  return {
    url: `nats://${host}:${port}`,
    port,
    stop,
    async kill() {
      child.kill('SIGKILL');
      await exited(child);
    },
    async restart() {
      await stop();
      await launch();
    },
    pid: () => child.pid,
  };
}
