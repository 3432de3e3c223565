// Child process of `npm run bench -- urlcheck`: the landing pages of 50 hosts (127.0.0.2–127.0.0.51), each page
// answering after 20–200 ms. Runs apart from the checker so its CPU and memory are not the checker's. Over IPC it
// sends its origins, and on request the most requests each host had in progress at once (then resets).
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { FIRST_HOST, HOSTS, pageDelayMs, pageKind } from './shared.ts';

const filler = '<p>Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor.</p>'.repeat(20);
const page = (title: string, body: string) =>
  `<!doctype html><html><head><meta charset="utf-8"><title>${title}</title></head><body><h1>${title}</h1>${body}${filler}</body></html>`;

const active = new Array<number>(HOSTS).fill(0);
const maxActive = new Array<number>(HOSTS).fill(0);
let requests = 0;
const origins: string[] = [];

for (let h = 0; h < HOSTS; h++) {
  const server = createServer((req, res) => {
    requests++;
    active[h]!++;
    maxActive[h] = Math.max(maxActive[h]!, active[h]!);
    let done = false;
    const end = () => {
      if (!done) {
        done = true;
        active[h]!--;
      }
    };
    res.on('finish', end);
    res.on('close', end);
    const m = /^\/product\/(\d+)\/[\w-]+\?ref=ppc(&moved=1)?$/.exec(req.url ?? '');
    if (!m) {
      res.writeHead(404).end();
      return;
    }
    const n = Number(m[1]);
    const timer = setTimeout(() => {
      const kind = pageKind(n);
      if (kind === 'redirect' && !m[2]) {
        res.writeHead(301, { location: `${req.url}&moved=1` }).end();
      } else if (kind === 'not-found') {
        res
          .writeHead(404, { 'content-type': 'text/html; charset=utf-8' })
          .end(page('Not found', '<p>Nothing here.</p>'));
      } else {
        const availability = kind === 'out-of-stock' ? 'Out of stock' : 'In stock — ships tomorrow';
        res
          .writeHead(200, { 'content-type': 'text/html; charset=utf-8' })
          .end(page(`Item ${n}`, `<p class="price">$19.00</p><p>${availability}</p>`));
      }
    }, pageDelayMs(n));
    res.on('close', () => clearTimeout(timer));
  });
  server.keepAliveTimeout = 30_000;
  const address = `127.0.0.${FIRST_HOST + h}`;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, address, () => resolve());
  });
  origins.push(`http://${address}:${(server.address() as AddressInfo).port}`);
}

process.send?.({ origins });
process.on('message', (m: { type: string }) => {
  if (m.type === 'stats') {
    process.send?.({ maxActivePerHost: Math.max(...maxActive), requests });
    maxActive.fill(0);
    requests = 0;
  }
});
process.on('disconnect', () => process.exit(0));
