import type { FastifyInstance } from 'fastify';
import { registerArtifactRoutes } from './artifacts/routes.ts';
import { createAuthenticator } from './auth/authenticator.ts';
import { registerSecurity } from './auth/security.ts';
import { registerOAuthRoutes } from './connections/oauth-routes.ts';
import type { GatewayDeps } from './context.ts';
import { registerGraphQL } from './graphql/index.ts';
import { registerUi } from './ui/plugin.ts';

/** Every public feature of the gateway, registered on the service's HTTP server (which already has health routes). */
export async function registerGateway(app: FastifyInstance, deps: GatewayDeps): Promise<void> {
  const auth = createAuthenticator(deps);
  // How long the gateway itself spent on a response (browser devtools show it; the benchmark separates it from the
  // client's own time).
  app.addHook('onSend', async (_req, reply, payload) => {
    reply.header('server-timing', `app;dur=${reply.elapsedTime.toFixed(2)}`);
    return payload;
  });
  await registerSecurity(app, deps, auth);
  await registerGraphQL(app, deps, auth);
  await registerOAuthRoutes(app, deps, auth);
  await registerArtifactRoutes(app, deps, auth);
  await registerUi(app, deps);
}
