/**
 * What a browser gets outside the API. With the SPA built (`PPC_UI_DIST`, default `<repo>/ui/dist`, containing
 * `index.html`): its files, precompressed variants (`.br`, `.gz`) when the browser accepts them, hashed assets under
 * `/assets/` cached for a year as immutable, and `index.html` (never cached) for any other GET that accepts HTML,
 * so client-side routes survive a reload. Without it: `/` is a small server-rendered page of the live mesh.
 *
 * `/` also answers clients that do not ask for HTML (scripts, `curl`, the launcher's test) with the instances as
 * JSON, as it did before the API existed. The API's own paths are never shadowed.
 */
import { existsSync } from 'node:fs';
import { join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { GatewayDeps } from '../context.ts';
import { statusOf } from '../status/collect.ts';
import { renderStatusPage } from './status-page.ts';

/** Paths of the API and the service: the SPA's history fallback leaves them alone. */
export const RESERVED_PATHS = ['/graphql', '/graphiql', '/healthz', '/readyz', '/metrics', '/artifacts', '/oauth'];

export const DEFAULT_UI_DIST = fileURLToPath(new URL('../../../../ui/dist', import.meta.url));

const IMMUTABLE = 'public, max-age=31536000, immutable';

export const isReserved = (path: string) => RESERVED_PATHS.some((p) => path === p || path.startsWith(`${p}/`));

const wantsHtml = (req: FastifyRequest) => (req.headers.accept ?? '').includes('text/html');

export async function registerUi(app: FastifyInstance, deps: GatewayDeps): Promise<void> {
  const dist = resolve(deps.config.uiDist || DEFAULT_UI_DIST);
  const spa = existsSync(join(dist, 'index.html'));

  // Encapsulated, so `reply.sendFile` is this plugin's own decoration.
  await app.register(async (ui) => {
    if (spa) {
      await ui.register(fastifyStatic, {
        root: dist,
        // A route per built file (the build is fixed while the gateway runs); no catch-all that could shadow the API.
        wildcard: false,
        index: false,
        preCompressed: true,
        cacheControl: false,
        setHeaders(reply, path) {
          const rel = relative(dist, path).split(sep).join('/');
          if (rel.startsWith('assets/')) reply.header('cache-control', IMMUTABLE);
          else if (rel.startsWith('index.html')) reply.header('cache-control', 'no-cache');
          else reply.header('cache-control', 'public, max-age=3600');
        },
      });
    }

    const sendIndex = (reply: FastifyReply) => reply.sendFile('index.html');

    ui.get('/', async (req, reply) => {
      if (!wantsHtml(req)) {
        const status = await statusOf(deps);
        return reply.header('cache-control', 'no-store').send({
          name: 'ppc-robot',
          version: deps.version,
          instances: status.instances.map((i) => i.heartbeat),
        });
      }
      if (spa) return sendIndex(reply);
      const status = await statusOf(deps);
      return reply
        .type('text/html; charset=utf-8')
        .header('cache-control', 'no-store')
        .send(renderStatusPage(status, { version: deps.version }));
    });

    if (spa) {
      // History fallback: routes of the SPA (`/jobs/42`) load the app, which reads the path itself.
      ui.get('/*', async (req, reply) => {
        const path = req.url.split('?')[0] ?? '/';
        if (isReserved(path) || !wantsHtml(req)) return reply.callNotFound();
        return sendIndex(reply);
      });
    }
  });
}
