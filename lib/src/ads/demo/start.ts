import type { DemoPlatform, DemoPlatformOptions } from './server.ts';

export type { DemoPlatform, DemoPlatformOptions };

/**
 * Starts the demo platform (see server.ts). The server's modules (and the synthetic world's) load on the first call,
 * so a process that only reads from the platform, through createDemoConnector, does not load them.
 */
export async function startDemoPlatform(opts: DemoPlatformOptions): Promise<DemoPlatform> {
  const server = await import('./server.ts');
  return server.startDemoPlatform(opts);
}
