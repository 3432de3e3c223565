// Helpers for the tests that run `npm start`'s launcher for real (launcher.test.ts, burst.test.ts): a port
// offset nobody is using, the launcher as a foreground job, and stopping it the way Ctrl-C would.
import { type ChildProcess, spawn } from 'node:child_process';
import { isPortFree } from '@ppc/lib/infra';
import { planFor } from './launcher.ts';

const main = new URL('./main.ts', import.meta.url).pathname;

/** Every port a mesh launched with this offset binds. */
export function meshPorts(offset: number): number[] {
  const plan = planFor({ PPC_PORT_OFFSET: String(offset) }, '/');
  return [
    plan.nats.port,
    plan.nats.monitorPort,
    plan.postgres.port,
    plan.demoPlatform.port,
    plan.smtpSink.port,
    ...plan.services.map((s) => s.port),
  ];
}

const STRIDE = 1000;

/**
 * The residue (mod STRIDE) of lane `lane`'s offsets: lanes differ by an amount that is no difference between two
 * of the mesh's ports, so meshes of two lanes never want the same port however their offsets are drawn. Test files
 * that run at once each take their own lane; the free-port check alone would let two of them draw colliding
 * offsets before either has bound anything.
 */
function laneResidue(lane: number): number {
  const base = meshPorts(0);
  const clash = new Set(base.flatMap((p) => base.map((q) => (((p - q) % STRIDE) + STRIDE) % STRIDE)));
  const residues = [0];
  for (let r = 1; r < STRIDE && residues.length <= lane; r++) {
    if (residues.every((s) => !clash.has((((r - s) % STRIDE) + STRIDE) % STRIDE))) residues.push(r);
  }
  const residue = residues[lane];
  if (residue === undefined) throw new Error(`no port lane ${lane}`);
  return residue;
}

/** A port offset of the given lane under which every port of the mesh is free right now. */
export async function freeOffset(lane = 0): Promise<number> {
  const residue = laneResidue(lane);
  for (let attempt = 0; attempt < 50; attempt++) {
    const offset = STRIDE * (1 + Math.floor(Math.random() * 10)) + residue;
    if ((await Promise.all(meshPorts(offset).map((p) => isPortFree(p, '0.0.0.0')))).every(Boolean)) return offset;
  }
  throw new Error(`no free port offset in lane ${lane}`);
}

export interface LaunchedMesh {
  child: ChildProcess;
  /** Everything the launcher printed so far (its own lines and every service's). */
  out(): string;
  exit: Promise<number | null>;
}

/** Stops, as Ctrl-C would, whatever launchMesh started and is still running; for afterEach. */
export class MeshLaunches {
  readonly #launched: ChildProcess[] = [];

  /** `npm start`'s launcher with its data in `dataDir`, ports shifted by `offset`, and `env` added. */
  launch(opts: { dataDir: string; offset: number; env?: Record<string, string> }): LaunchedMesh {
    const child: ChildProcess = spawn(process.execPath, [main], {
      env: {
        ...process.env,
        PPC_DATA_DIR: opts.dataDir,
        PPC_PORT_OFFSET: String(opts.offset),
        NO_COLOR: '1',
        ...opts.env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
      // Its own process group, like a terminal's foreground job, so Ctrl-C can be sent to the whole group.
      detached: true,
    });
    this.#launched.push(child);
    let out = '';
    child.stdout!.on('data', (d) => {
      out += d;
    });
    child.stderr!.on('data', (d) => {
      out += d;
    });
    const exit = new Promise<number | null>((res) => child.once('exit', (code) => res(code)));
    return { child, out: () => out, exit };
  }

  /** A failed assertion must not leave a mesh running: stop whatever is still up, as Ctrl-C would. */
  async stopAll(): Promise<void> {
    for (const child of this.#launched.splice(0)) {
      if (child.exitCode !== null || child.signalCode !== null) continue;
      const exited = new Promise((res) => child.once('exit', res));
      child.kill('SIGINT');
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(timer);
    }
  }
}

/** What to show when a launch failed: the lines of the service that gave up, else the output's tail. */
export function failureLog(out: string): string {
  const name = /(\S+) (?:exited before it was ready|was not ready within)/.exec(out)?.[1];
  const lines = out.split('\n');
  const own = name ? lines.filter((l) => l.startsWith(`[${name}]`)) : [];
  return [...own.slice(-40), ...lines.slice(-5)].join('\n');
}

export const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};
