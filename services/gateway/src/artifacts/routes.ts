import type { FastifyInstance } from 'fastify';
import type { Authenticator, GatewayDeps } from '../context.ts';

// PLACEHOLDER: replaced by the feature.
export async function registerArtifactRoutes(
  _app: FastifyInstance,
  _deps: GatewayDeps,
  _auth: Authenticator,
): Promise<void> {}
