import type { OutputTarget } from '@ppc/proto';
import { PermanentError } from '../errors/index.ts';
import type { NatsConnection } from '../nats/connect.ts';
import type { RunCredentials } from './connector.ts';
import { requestAccessToken } from './request.ts';

/**
 * Google access for a run's Sheets output: the run's own connection, whose OAuth grant includes the Sheets and
 * Drive scopes, through the broker. Undefined for file outputs; a PermanentError for a Sheets output of a demo
 * account, whose tokens mean nothing to Google.
 */
export function sheetsAccessFor(
  nc: NatsConnection,
  run: RunCredentials & { output: OutputTarget },
  signal?: AbortSignal,
): { accessToken: () => Promise<string> } | undefined {
  if (run.output.kind !== 'sheets') return undefined;
  if (run.platform !== 'google-ads') {
    throw new PermanentError(
      'a Google Sheets output needs a Google Ads connection; choose XLSX or CSV for demo accounts',
      {
        code: 'OUTPUT_NEEDS_GOOGLE',
      },
    );
  }
  return { accessToken: async () => (await requestAccessToken(nc, run, signal ? { signal } : {})).accessToken };
}
