import type { MeshStatus } from '../status/collect.ts';

/** Seconds between the status page's own reloads. */
export const STATUS_PAGE_REFRESH_S = 5;

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
export const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (c) => ESCAPES[c]!);

/** `3 s`, `4 min`, `2 h 5 min`, `3 d 4 h`. */
export function age(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min`;
  const h = Math.floor(m / 60);
  if (h < 24) return `${h} h ${m % 60} min`;
  return `${Math.floor(h / 24)} d ${h % 24} h`;
}

/**
 * The page `/` shows until the SPA is built: the live mesh, reloading itself (a meta refresh, so it needs no
 * script and passes a strict Content-Security-Policy).
 */
export function renderStatusPage(status: MeshStatus, opts: { version: string; now?: number }): string {
  const now = opts.now ?? Date.now();
  const e = escapeHtml;
  const rows = status.instances
    .map(
      (i) =>
        `<tr><td>${e(i.service)}</td><td><code>${e(i.instanceId)}</code></td><td>${e(i.region)}</td>` +
        `<td class="n">${i.inFlight}</td><td class="n">${e(age(now - i.startedAt.getTime()))}</td>` +
        `<td class="n">${e(age(now - i.lastHeartbeatAt.getTime()))} ago</td><td>${i.ready ? 'ready' : 'starting'}</td></tr>`,
    )
    .join('\n');
  const queues = status.queues
    .map(
      (q) =>
        `<tr><td>${e(q.pool)}</td><td class="n">${q.pending}</td><td class="n">${q.ackPending}</td>` +
        `<td class="n">${q.backlog}</td></tr>`,
    )
    .join('\n');
  const clock = status.clock.leader ? `clock leader <code>${e(status.clock.leader)}</code>` : 'no clock leader';
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="refresh" content="${STATUS_PAGE_REFRESH_S}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>ppc-robot · mesh status</title>
<style>
body { font: 15px/1.4 system-ui, sans-serif; margin: 2rem; color: #222; }
table { border-collapse: collapse; margin: 1rem 0 2rem; }
th, td { padding: .3rem .8rem; border-bottom: 1px solid #ddd; text-align: left; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
.muted { color: #777; }
</style>
</head>
<body>
<h1>ppc-robot</h1>
<p>Version ${e(opts.version)} · ${status.instances.length} instance(s) · ${clock} · ${status.deadLetters} dead letter(s)
· <a href="/graphiql">GraphiQL</a></p>
<h2>Instances</h2>
<table id="instances">
<thead><tr><th>service</th><th>instance</th><th>region</th><th>in flight</th><th>up</th><th>heartbeat</th><th>state</th></tr></thead>
<tbody>
${rows || '<tr><td colspan="7" class="muted">no running instances</td></tr>'}
</tbody>
</table>
<h2>Queues</h2>
<table id="queues">
<thead><tr><th>pool</th><th>waiting</th><th>in progress</th><th>backlog</th></tr></thead>
<tbody>
${queues || '<tr><td colspan="4" class="muted">no worker pools</td></tr>'}
</tbody>
</table>
<p class="muted">As of ${e(status.at.toISOString())}; refreshes every ${STATUS_PAGE_REFRESH_S} s.${
    status.unavailable.length ? ` Not available now: ${e(status.unavailable.join(', '))}.` : ''
  }</p>
</body>
</html>
`;
}
