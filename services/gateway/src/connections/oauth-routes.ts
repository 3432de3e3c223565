import { Connection, sealSecret, tenantEm, User } from '@ppc/lib/db';
import type { FastifyInstance, FastifyReply } from 'fastify';
import type { Authenticator, GatewayDeps } from '../context.ts';
import {
  CALLBACK_PATH,
  exchangeCode,
  googleConfigured,
  OAuthStateError,
  openState,
  TokenExchangeError,
} from './google.ts';

interface CallbackQuery {
  code?: string;
  state?: string;
  error?: string;
}

const refuse = (reply: FastifyReply, status: number, message: string) =>
  reply.code(status).type('text/plain; charset=utf-8').send(message);

/**
 * `GET /oauth/google/callback?code&state`: where Google sends the browser back. Checks the state (sealed by
 * `startGoogleConnection`, unexpired, started by the same signed-in user of the same organization), exchanges the
 * code for a refresh token, stores it sealed as a connection, and returns the browser to the connections page.
 * A state that fails is refused (400) with nothing stored; a refusal by Google returns to the page with `error`.
 */
export async function registerOAuthRoutes(app: FastifyInstance, deps: GatewayDeps, auth: Authenticator): Promise<void> {
  const connectionsPage = `${deps.config.publicUrl.replace(/\/$/, '')}/connections`;
  const back = (reply: FastifyReply, error?: string) =>
    reply.redirect(error ? `${connectionsPage}?error=${encodeURIComponent(error)}` : connectionsPage);

  app.get<{ Querystring: CallbackQuery }>(CALLBACK_PATH, async (req, reply) => {
    const { code, state, error } = req.query;
    if (typeof state !== 'string' || state === '') return refuse(reply, 400, 'missing state parameter');
    let started: ReturnType<typeof openState>;
    try {
      started = openState(deps.config, state);
    } catch (err) {
      if (err instanceof OAuthStateError) return refuse(reply, 400, err.message);
      throw err;
    }
    const caller = await auth.fromRequest(req);
    if (!caller) return refuse(reply, 401, 'sign in first, then connect Google Ads again');
    if (caller.userId !== started.user || caller.organizationId !== started.org) {
      return refuse(reply, 400, 'this sign-in with Google was started by another user or organization');
    }
    if (!caller.scopes.has('write')) return refuse(reply, 403, 'your role does not allow adding connections');
    // The user declined on Google's consent screen (access_denied) or Google refused the request.
    if (typeof error === 'string' && error !== '') return back(reply, error);
    if (typeof code !== 'string' || code === '') return refuse(reply, 400, 'missing code parameter');
    if (!googleConfigured(deps.config))
      return refuse(reply, 409, 'Google Ads connections are not set up on this server');

    let grant: Awaited<ReturnType<typeof exchangeCode>>;
    try {
      grant = await exchangeCode(deps.config, code);
    } catch (err) {
      if (!(err instanceof TokenExchangeError)) throw err;
      req.log.warn({ err: err.message, orgId: caller.organizationId }, 'Google authorization code exchange failed');
      return back(reply, 'token_exchange_failed');
    }

    const sealed = sealSecret(grant.refreshToken, deps.config.keyring);
    const em = tenantEm(deps.orm, { organizationId: caller.organizationId, userId: caller.userId });
    await em.transactional(async (tx) => {
      // The same Google identity connected again (after a revocation): the connection comes back with its accounts.
      const existing = grant.email
        ? await tx.findOne(Connection, {
            organization: caller.organizationId,
            platform: 'google-ads',
            label: grant.email,
          })
        : null;
      if (existing) {
        existing.sealedRefreshToken = sealed;
        existing.keyId = deps.config.keyring.currentKeyId;
        existing.status = 'active';
        existing.lastError = null;
        existing.lastErrorAt = null;
        existing.owner = tx.getReference(User, caller.userId);
      } else {
        tx.create(Connection, {
          organization: caller.organizationId,
          owner: caller.userId,
          platform: 'google-ads',
          label: grant.email ?? 'Google Ads',
          sealedRefreshToken: sealed,
          keyId: deps.config.keyring.currentKeyId,
          status: 'active',
        });
      }
    });
    return back(reply);
  });
}
