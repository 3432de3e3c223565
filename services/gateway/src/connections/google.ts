import { randomBytes } from 'node:crypto';
import { openSecret, sealSecret } from '@ppc/lib/db';
import type { GatewayConfig } from '../config.ts';

/**
 * Google Ads connections by OAuth2's authorization-code flow (web server apps: offline access, consent forced so a
 * refresh token is always returned). The `state` parameter is sealed (AES-GCM under the keyring: confidential and
 * tamper-proof) and carries who started the flow and until when it is good; the callback accepts it only from the
 * same signed-in user of the same organization.
 */

export const CALLBACK_PATH = '/oauth/google/callback';
export const STATE_TTL_MS = 10 * 60_000;
const STATE_PURPOSE = 'ppc.oauth-state.google';

/** Ads API access, plus Sheets and Drive (files it creates) for Sheets outputs, plus the e-mail for the label. */
export const GOOGLE_SCOPES = [
  'https://www.googleapis.com/auth/adwords',
  'https://www.googleapis.com/auth/spreadsheets',
  'https://www.googleapis.com/auth/drive.file',
  'openid',
  'email',
];

export interface OAuthState {
  org: string;
  user: string;
  nonce: string;
  /** Epoch ms. */
  exp: number;
}

export class OAuthStateError extends Error {
  override name = 'OAuthStateError';
}

export const googleConfigured = (config: GatewayConfig): boolean =>
  config.googleClientId !== '' && config.googleClientSecret !== '';

export const redirectUri = (config: GatewayConfig): string => `${config.publicUrl.replace(/\/$/, '')}${CALLBACK_PATH}`;

export function sealState(config: GatewayConfig, who: { org: string; user: string }, now = Date.now()): string {
  const state: OAuthState & { p: string } = {
    p: STATE_PURPOSE,
    org: who.org,
    user: who.user,
    nonce: randomBytes(16).toString('base64url'),
    exp: now + STATE_TTL_MS,
  };
  return sealSecret(JSON.stringify(state), config.keyring);
}

/** The state's contents; throws OAuthStateError when it was not sealed by us for this flow or has expired. */
export function openState(config: GatewayConfig, sealed: string, now = Date.now()): OAuthState {
  let value: Partial<OAuthState & { p: string }>;
  try {
    value = JSON.parse(openSecret(sealed, config.keyring));
  } catch {
    throw new OAuthStateError('the state parameter is not one this server issued');
  }
  if (
    value.p !== STATE_PURPOSE ||
    typeof value.org !== 'string' ||
    typeof value.user !== 'string' ||
    typeof value.exp !== 'number'
  ) {
    throw new OAuthStateError('the state parameter is not one this server issued');
  }
  if (value.exp <= now) throw new OAuthStateError('the sign-in with Google took too long; start connecting again');
  return { org: value.org, user: value.user, nonce: value.nonce ?? '', exp: value.exp };
}

export function authorizationUrl(config: GatewayConfig, state: string): string {
  const url = new URL(config.googleAuthUrl);
  url.searchParams.set('client_id', config.googleClientId);
  url.searchParams.set('redirect_uri', redirectUri(config));
  url.searchParams.set('response_type', 'code');
  url.searchParams.set('scope', GOOGLE_SCOPES.join(' '));
  url.searchParams.set('access_type', 'offline');
  url.searchParams.set('prompt', 'consent');
  url.searchParams.set('include_granted_scopes', 'true');
  url.searchParams.set('state', state);
  return url.toString();
}

export class TokenExchangeError extends Error {
  override name = 'TokenExchangeError';
}

export interface ExchangedGrant {
  refreshToken: string;
  /** The Google account's e-mail, from the ID token, when the `email` scope was granted. */
  email: string | undefined;
}

/** The e-mail claim of an ID token received straight from the token endpoint over TLS (no signature check needed). */
function emailOf(idToken: unknown): string | undefined {
  if (typeof idToken !== 'string') return undefined;
  try {
    const payload = JSON.parse(Buffer.from(idToken.split('.')[1] ?? '', 'base64url').toString('utf8'));
    return typeof payload.email === 'string' ? payload.email.slice(0, 300) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Exchanges an authorization code at the token endpoint (form-encoded POST, `grant_type=authorization_code`).
 * Errors carry the endpoint's `error: error_description`, never the code or the client secret.
 */
export async function exchangeCode(config: GatewayConfig, code: string, timeoutMs = 15_000): Promise<ExchangedGrant> {
  let res: Response;
  try {
    res = await fetch(config.googleTokenUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
      body: new URLSearchParams({
        grant_type: 'authorization_code',
        code,
        client_id: config.googleClientId,
        client_secret: config.googleClientSecret,
        redirect_uri: redirectUri(config),
      }),
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (err) {
    throw new TokenExchangeError(`Google's token endpoint did not answer (${(err as Error).name})`);
  }
  const body = (await res.json().catch(() => ({}))) as Record<string, unknown>;
  if (!res.ok) {
    const what = typeof body.error === 'string' ? body.error : `HTTP ${res.status}`;
    const why = typeof body.error_description === 'string' ? `: ${body.error_description}` : '';
    throw new TokenExchangeError(`Google refused the authorization (${what}${why})`);
  }
  if (typeof body.refresh_token !== 'string' || body.refresh_token === '') {
    throw new TokenExchangeError('Google granted no offline access (no refresh token); connect again and allow access');
  }
  return { refreshToken: body.refresh_token, email: emailOf(body.id_token) };
}
