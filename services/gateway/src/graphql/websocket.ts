import type { IncomingMessage } from 'node:http';
import { createRequire } from 'node:module';
import type { Duplex } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import type { ExecutionArgs, GraphQLError, GraphQLSchema, ValidationRule } from 'graphql';
import type { Context as WsContext } from 'graphql-ws';
import type { useServer as UseServer } from 'graphql-ws/use/ws';
import { WebSocket, WebSocketServer } from 'ws';
import type { Authenticator, Caller, GatewayContext, GatewayDeps } from '../context.ts';
import { formatError } from './format.ts';
import { checkVariables, graphqlCjs, type QueryLimits } from './limits.ts';
import { subscribeSharing } from './shared-execution.ts';

const { GraphQLError: CjsGraphQLError, parse, specifiedRules, validate, getOperationAST } = graphqlCjs;
// graphql-ws' CommonJS build: it must use the same graphql copy as mercurius' schema (see `graphqlCjs`).
const { useServer } = createRequire(import.meta.url)('graphql-ws/use/ws') as { useServer: typeof UseServer };

/** Operations one connection may keep open at once. */
export const MAX_SUBSCRIPTIONS_PER_CONNECTION = 100;
/** Ping interval; a client that does not answer within it is dropped. */
const KEEP_ALIVE_MS = 15_000;

/** What one connection carries: the upgrade request and, once `connection_init` passed, the caller. */
type Extra = {
  socket: WebSocket;
  request: IncomingMessage;
  caller?: Caller;
};

export interface SubscriptionServerOptions {
  path: string;
  schema: GraphQLSchema;
  /** The document limits (depth, cost, aliases), checked before graphql's own rules. */
  rules: readonly ValidationRule[];
  limits: QueryLimits;
  maxTokens: number;
  /** The client's address (as fastify's `request.ip`, forwarded headers trusted as configured). */
  clientAddress: (req: IncomingMessage) => string;
  /** Whether this address may open another connection now (a rate limit). */
  allowUpgrade: (ip: string) => Promise<boolean>;
}

const clientError = (message: string, code: string) => new CjsGraphQLError(message, { extensions: { code } });

/** A graphql-ws `next` message around an already serialised result; resolves once written (or the socket is gone). */
function sendNext(socket: WebSocket, id: string, resultJson: string): Promise<void> {
  return new Promise((resolve, reject) => {
    if (socket.readyState !== WebSocket.OPEN) return resolve();
    socket.send(`{"id":${JSON.stringify(id)},"type":"next","payload":${resultJson}}`, (err) =>
      err ? reject(err) : resolve(),
    );
  });
}

function refuseUpgrade(socket: Duplex, status: number, reason: string): void {
  socket.end(`HTTP/1.1 ${status} ${reason}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
}

/**
 * Subscriptions over graphql-ws on `path` (mercurius serves queries and mutations over HTTP on the same path).
 * graphql-ws' server instead of mercurius' own, for one reason: it lets a subscription's events be executed once for
 * every subscriber that shares them (`subscribeSharing`), which is what lets one replica fan a run's progress out to
 * thousands of browsers. Authentication is the `connection_init` payload's bearer token or the upgrade's session
 * cookie from our own origin; a refused connection closes with 4401.
 */
export function registerSubscriptionServer(
  app: FastifyInstance,
  deps: GatewayDeps,
  auth: Authenticator,
  opts: SubscriptionServerOptions,
): void {
  const wss = new WebSocketServer({ noServer: true, maxPayload: deps.config.bodyLimitBytes });
  const format = (errors: readonly GraphQLError[]) => errors.map((e) => formatError(e, deps).toJSON());
  // Each operation's way to its subscriber's socket, for results shared by many subscribers (`subscribeSharing`).
  const directSends = new WeakMap<object, (json: string) => Promise<void>>();

  const server = useServer<Record<string, unknown> | undefined, Extra>(
    {
      schema: opts.schema,
      async onConnect(ctx: WsContext<Record<string, unknown> | undefined, Extra>) {
        const { request, socket } = ctx.extra;
        const cookies = app.parseCookie(request.headers.cookie ?? '');
        const caller = await auth.fromConnectionInit(ctx.connectionParams, { headers: request.headers, cookies });
        if (!caller) {
          // graphql-ws' close code for "Unauthorized": clients stop instead of retrying.
          socket.close(4401, 'Unauthorized');
          return false;
        }
        ctx.extra.caller = caller;
        return true;
      },
      // The whole check of an operation (graphql-ws validates nothing itself when this returns execution arguments):
      // parse with a token limit, our limits, graphql's rules, the cost with the variables. Errors returned here reach
      // the client through onError.
      onSubscribe(ctx, id, payload) {
        if (Object.keys(ctx.subscriptions).length > MAX_SUBSCRIPTIONS_PER_CONNECTION) {
          return [
            clientError(
              `too many operations on one connection: at most ${MAX_SUBSCRIPTIONS_PER_CONNECTION}`,
              'RATE_LIMITED',
            ),
          ];
        }
        let document: ExecutionArgs['document'];
        try {
          document = parse(payload.query, { maxTokens: opts.maxTokens });
        } catch (err) {
          return [err as GraphQLError];
        }
        // The limits first: they are cheap, and an abusive document should not reach the costlier specified rules.
        const overLimits = validate(opts.schema, document, opts.rules);
        if (overLimits.length) return overLimits;
        const invalid = validate(opts.schema, document, specifiedRules);
        if (invalid.length) return invalid;
        const operation = getOperationAST(document, payload.operationName);
        if (operation?.operation !== 'subscription') {
          return [
            clientError(
              'only subscriptions over WebSocket: send queries and mutations to POST /graphql',
              'BAD_REQUEST',
            ),
          ];
        }
        const costly = checkVariables(opts.schema, document, opts.limits, payload.variables ?? undefined);
        if (costly.length) return costly;
        const contextValue: GatewayContext = { deps, caller: ctx.extra.caller ?? null };
        directSends.set(contextValue, (json) => sendNext(ctx.extra.socket, id, json));
        return {
          schema: opts.schema,
          document,
          operationName: payload.operationName,
          variableValues: payload.variables,
          contextValue,
        };
      },
      subscribe: (args) =>
        subscribeSharing(args, { sendShared: directSends.get(args.contextValue as object) }) as never,
      onNext(_ctx, _id, _payload, _args, result) {
        return result.errors ? { ...result, errors: format(result.errors) } : undefined;
      },
      onError(_ctx, _id, _payload, errors) {
        return format(errors);
      },
    },
    wss,
    KEEP_ALIVE_MS,
  );

  const onUpgrade = (request: IncomingMessage, socket: Duplex, head: Buffer) => {
    const path = (request.url ?? '').split('?')[0];
    if (path !== opts.path) return refuseUpgrade(socket, 404, 'Not Found');
    opts.allowUpgrade(opts.clientAddress(request)).then(
      (allowed) => {
        if (!allowed) return refuseUpgrade(socket, 429, 'Too Many Requests');
        wss.handleUpgrade(request, socket, head, (ws) => wss.emit('connection', ws, request));
      },
      () => refuseUpgrade(socket, 500, 'Internal Server Error'),
    );
  };
  app.server.on('upgrade', onUpgrade);
  app.addHook('preClose', async () => {
    app.server.off('upgrade', onUpgrade);
    await server.dispose();
  });
}
