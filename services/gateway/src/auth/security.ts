import cookie from '@fastify/cookie';
import type { FastifyInstance } from 'fastify';
import type { Authenticator, GatewayDeps } from '../context.ts';

// PLACEHOLDER (partly): helmet, rate limits and login throttling arrive with the auth work.
export async function registerSecurity(app: FastifyInstance, _deps: GatewayDeps, _auth: Authenticator): Promise<void> {
  await app.register(cookie);
}
