// Container health check (docker-compose.yml, Dockerfile): exits 0 when the service on this container's
// PORT answers /readyz with 200 within two seconds. Node is all the image has; no curl or wget.
const port = Number(process.env.PORT);
if (!Number.isInteger(port) || port <= 0) {
  process.stderr.write('healthcheck: PORT is not set\n');
  process.exit(1);
}
try {
  const res = await fetch(`http://127.0.0.1:${port}/readyz`, { signal: AbortSignal.timeout(2000) });
  process.exit(res.ok ? 0 : 1);
} catch (err) {
  process.stderr.write(`healthcheck: ${(err as Error).message}\n`);
  process.exit(1);
}
