# syntax=docker/dockerfile:1
# One image for every ppc-robot service; the first argument names the service:
#   docker build -t ppc-robot:0.1.0 .
#   docker run --rm -e NATS_URL=nats://host.docker.internal:4222 ppc-robot:0.1.0 clock
# Services run from their TypeScript source (Node 24 strips the types), so nothing is compiled: the
# first stage installs the production dependencies of every workspace, the second adds the source.
ARG NODE_IMAGE=node:24-bookworm-slim

FROM ${NODE_IMAGE} AS deps
WORKDIR /app
# Every workspace's manifest, so `npm ci` resolves exactly the tree in the lockfile.
COPY package.json package-lock.json ./
COPY proto/package.json proto/
COPY lib/package.json lib/
COPY services/gateway/package.json services/gateway/
COPY services/report-worker/package.json services/report-worker/
COPY services/url-checker/package.json services/url-checker/
COPY services/system/package.json services/system/
COPY services/autoscaler/package.json services/autoscaler/
COPY services/clock/package.json services/clock/
COPY bench/package.json bench/
# No install scripts: nothing at run time needs a native build, and none runs as root here.
RUN --mount=type=cache,target=/root/.npm \
    npm ci --omit=dev --ignore-scripts --no-audit --no-fund

FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production
WORKDIR /app
# node_modules with the workspace links (node_modules/@ppc/* → the folders copied below).
COPY --from=deps /app /app
COPY proto proto
COPY lib lib
COPY services services
COPY scripts/deploy scripts/deploy
# The source stays root-owned and read-only to the service; `node` (uid 1000) runs it.
USER node
EXPOSE 8080 9101 9102 9103 9104 9105
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "/app/scripts/deploy/healthcheck.ts"]
# Through sh, so the script needs no executable bit; it execs Node, which becomes PID 1.
ENTRYPOINT ["sh", "/app/scripts/deploy/entrypoint.sh"]
CMD ["gateway"]
