// Test support, not part of the service.
import { once } from 'node:events';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { freePort } from '@ppc/lib/infra';

export interface TokenCall {
  grantType: string | null;
  refreshToken: string | null;
  clientId: string | null;
  clientSecret: string | null;
}

/**
 * A STAND-IN FOR GOOGLE'S OAUTH2 TOKEN ENDPOINT (https://oauth2.googleapis.com/token, refresh-token grant, as
 * documented in https://developers.google.com/identity/protocols/oauth2/web-server#offline): form-encoded POST with
 * `grant_type=refresh_token`, `refresh_token`, `client_id`, `client_secret`; answers `{access_token, expires_in,
 * scope, token_type}`, or HTTP 400/401 with `{error, error_description}` (`invalid_grant` for a revoked or expired
 * refresh token, `invalid_client` for a wrong client).
 *
 * What it does per refresh token is up to the test: `revoke(rt)`, `rotate(rt)` (each refresh returns a new refresh
 * token and retires the old, as providers with rotation do), `fail(status)`, `hold()` (answers wait until
 * `release()`). It counts calls per refresh token and the most requests it had open at once.
 */
export class GoogleTokenStandIn {
  server!: Server;
  url = '';
  readonly calls: TokenCall[] = [];
  clientId = 'client-1';
  clientSecret = 'secret-1';
  expiresIn = 3599;
  /** Refresh tokens answered with invalid_grant. */
  readonly revoked = new Set<string>();
  /** Refresh tokens that rotate on use. */
  readonly rotating = new Set<string>();
  /** When set, every request fails with this status (and `Retry-After` when given). */
  failure: { status: number; retryAfter?: string; body?: unknown } | undefined;
  open = 0;
  maxOpen = 0;
  #issued = 0;
  #gate: PromiseWithResolvers<void> | undefined;

  async start(): Promise<this> {
    this.server = createServer((req, res) => {
      const parts: Buffer[] = [];
      req.on('data', (c: Buffer) => parts.push(c));
      req.on('end', () => {
        this.open += 1;
        this.maxOpen = Math.max(this.maxOpen, this.open);
        void this.#answer(new URLSearchParams(Buffer.concat(parts).toString()), res).finally(() => {
          this.open -= 1;
        });
      });
    });
    this.server.listen(await freePort(), '127.0.0.1');
    await once(this.server, 'listening');
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/token`;
    return this;
  }

  /** Token requests made with this refresh token. */
  callsWith(refreshToken: string): number {
    return this.calls.filter((c) => c.refreshToken === refreshToken).length;
  }

  /** Answers wait until `release()`. */
  hold(): void {
    this.#gate = Promise.withResolvers<void>();
  }

  release(): void {
    this.#gate?.resolve();
    this.#gate = undefined;
  }

  async #answer(form: URLSearchParams, res: ServerResponse): Promise<void> {
    const call: TokenCall = {
      grantType: form.get('grant_type'),
      refreshToken: form.get('refresh_token'),
      clientId: form.get('client_id'),
      clientSecret: form.get('client_secret'),
    };
    this.calls.push(call);
    await this.#gate?.promise;
    const json = (status: number, body: unknown, headers: Record<string, string> = {}) => {
      res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', ...headers });
      res.end(JSON.stringify(body));
    };
    if (this.failure) {
      const { status, retryAfter, body } = this.failure;
      json(status, body ?? { error: 'internal_failure' }, retryAfter ? { 'retry-after': retryAfter } : {});
      return;
    }
    if (call.grantType !== 'refresh_token' || !call.refreshToken) {
      json(400, { error: 'unsupported_grant_type', error_description: `Invalid grant_type: ${call.grantType}` });
      return;
    }
    if (call.clientId !== this.clientId || call.clientSecret !== this.clientSecret) {
      json(401, { error: 'invalid_client', error_description: 'The OAuth client was not found.' });
      return;
    }
    if (this.revoked.has(call.refreshToken)) {
      json(400, { error: 'invalid_grant', error_description: 'Token has been expired or revoked.' });
      return;
    }
    this.#issued += 1;
    const body: Record<string, unknown> = {
      access_token: `ya29.stand-in-${this.#issued}`,
      expires_in: this.expiresIn,
      scope: 'https://www.googleapis.com/auth/adwords',
      token_type: 'Bearer',
    };
    if (this.rotating.has(call.refreshToken)) {
      const next = `${call.refreshToken.replace(/~\d+$/, '')}~${this.#issued}`;
      this.rotating.delete(call.refreshToken);
      this.revoked.add(call.refreshToken);
      this.rotating.add(next);
      body.refresh_token = next;
    }
    json(200, body);
  }

  async stop(): Promise<void> {
    this.release();
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}
