import { createServer } from 'node:net';

/** An ephemeral port nobody listens on right now. */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, host, () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

export function isPortFree(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, host, () => srv.close(() => resolve(true)));
  });
}

export class PortInUseError extends Error {
  override name = 'PortInUseError';
  readonly port: number;
  readonly wantedBy: string;
  constructor(port: number, wantedBy: string) {
    super(`port ${port} is already in use; ${wantedBy} needs it. Stop whatever listens there or choose another port.`);
    this.port = port;
    this.wantedBy = wantedBy;
  }
}

/** Checks every port before anything starts, so a clash is reported by name rather than as a crash later. */
export async function assertPortsFree(wanted: ReadonlyArray<{ port: number; wantedBy: string }>): Promise<void> {
  for (const w of wanted) {
    if (!(await isPortFree(w.port))) throw new PortInUseError(w.port, w.wantedBy);
  }
}
