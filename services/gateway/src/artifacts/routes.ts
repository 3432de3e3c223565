/**
 * `GET /artifacts/<runId>/<name>`: a report file, streamed from the `artifacts` object store after the same checks
 * the API makes: a signed-in caller (session cookie or bearer token) with the `read` scope, a run of the caller's
 * organization, and `name` one of that run's file outputs. Anything else is 404, with the same answer whether the
 * run does not exist or belongs to another organization.
 */
import { Readable } from 'node:stream';
import type { FastifyInstance, FastifyReply } from 'fastify';
import type { Authenticator, GatewayDeps } from '../context.ts';
import { loadRunView } from '../runs/queries.ts';
import { FILE_OUTPUT_KINDS } from '../runs/view.ts';
import { objectReadable } from './object-stream.ts';

const SAFE_CONTENT_TYPE = /^[a-z0-9!#$&^_.+-]+\/[a-z0-9!#$&^_.+-]+(;\s*charset=[a-z0-9_-]+)?$/i;

/** `attachment` with an ASCII fallback name and the exact name in RFC 5987 form. */
export function contentDisposition(fileName: string): string {
  const ascii =
    fileName
      // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is replaced
      .replace(/[^\x20-\x7e]|["\\%\u0000-\u001f]/g, '_')
      .trim() || 'download';
  const encoded = encodeURIComponent(fileName).replace(
    /['()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
  return `attachment; filename="${ascii}"; filename*=UTF-8''${encoded}`;
}

function notFound(reply: FastifyReply) {
  return reply.code(404).type('application/json').send({ error: 'not found' });
}

export async function registerArtifactRoutes(
  app: FastifyInstance,
  deps: GatewayDeps,
  auth: Authenticator,
): Promise<void> {
  app.get<{ Params: { runId: string; name: string } }>('/artifacts/:runId/:name', async (req, reply) => {
    const caller = await auth.fromRequest(req);
    if (!caller) {
      return reply
        .code(401)
        .header('www-authenticate', 'Bearer')
        .type('application/json')
        .send({ error: 'sign in first: no valid session or API token' });
    }
    if (!caller.scopes.has('read')) {
      return reply.code(403).type('application/json').send({ error: 'needs the read scope' });
    }
    const { runId, name } = req.params;
    const sql = deps.sql.tenant({ organizationId: caller.organizationId, userId: caller.userId });
    const run = await loadRunView(sql, caller.organizationId, runId);
    if (!run?.outputs.some((o) => FILE_OUTPUT_KINDS.has(o.kind) && o.name === name)) return notFound(reply);
    // The object store encodes names with btoa: a name it could not have stored throws instead of missing.
    const info = await deps.artifacts.info(`${run.id}/${name}`).catch((err: Error) => {
      if (err.name === 'InvalidCharacterError') return null;
      throw err;
    });
    if (!info || info.deleted || info.options?.link) return notFound(reply);

    const meta = info.metadata ?? {};
    const type =
      meta.contentType && SAFE_CONTENT_TYPE.test(meta.contentType) ? meta.contentType : 'application/octet-stream';
    const etag = `"${info.digest.replace(/^SHA-256=/, '').replace(/=+$/, '')}"`;
    reply
      .header('content-type', type)
      .header('content-disposition', contentDisposition(meta.fileName || name))
      .header('etag', etag)
      .header('last-modified', new Date(info.mtime).toUTCString())
      // The answer depends on who asks: never kept by a shared cache, always revalidated.
      .header('cache-control', 'private, no-cache')
      .header('x-content-type-options', 'nosniff');
    const inm = req.headers['if-none-match'];
    if (inm?.split(',').some((t) => t.trim() === etag || t.trim() === `W/${etag}`)) {
      return reply.code(304).send();
    }
    reply.header('content-length', String(info.size));
    // Fastify's HEAD route keeps our Content-Length only for a stream payload (and drains it): an empty one.
    if (req.method === 'HEAD') return reply.send(Readable.from([]));
    deps.log.debug({ runId: run.id, name, size: info.size, userId: caller.userId }, 'artifact download');
    return reply.send(objectReadable(deps.js, info));
  });
}
