import type { IncomingMessage, ServerResponse } from 'node:http';

/**
 * The landing pages behind the demo ads' URLs, `/lp/<customerId>/<n>/<slug>`. Page `n`'s behaviour is fixed by
 * `n` alone, with exact proportions over every 100 consecutive page numbers (see README.md).
 */
export type LandingKind =
  | 'ok'
  | 'redirect-301'
  | 'redirect-302-chain'
  | 'redirect-loop'
  | 'not-found'
  | 'gone'
  | 'server-error'
  | 'slow'
  | 'timeout'
  | 'soft-404'
  | 'out-of-stock';

/** Pages per 100 of each kind; sums to 100. */
export const LANDING_PROPORTIONS: Readonly<Record<LandingKind, number>> = {
  ok: 60,
  'redirect-301': 6,
  'redirect-302-chain': 4,
  'redirect-loop': 2,
  'not-found': 6,
  gone: 3,
  'server-error': 4,
  slow: 4,
  timeout: 2,
  'soft-404': 4,
  'out-of-stock': 5,
};

const SLOTS: LandingKind[] = Object.entries(LANDING_PROPORTIONS).flatMap(([k, n]) =>
  Array.from({ length: n }, () => k as LandingKind),
);

/** 37 is coprime with 100, so n → slot is a permutation of each block of 100: kinds are spread, counts exact. */
export function landingKind(n: number): LandingKind {
  return SLOTS[(((n * 37 + 11) % 100) + 100) % 100]!;
}

export interface LandingOptions {
  /** How long a `slow` page takes to answer. */
  slowMs: number;
  /** Pending `timeout` pages, so the server can drop them on close. */
  hanging: Set<ServerResponse>;
}

function page(title: string, body: string): string {
  return `<!doctype html><html><head><meta charset="utf-8"><title>${title}</title></head><body><h1>${title}</h1>${body}</body></html>`;
}

function send(res: ServerResponse, status: number, html: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store', ...headers });
  res.end(html);
}

const productPage = (slug: string): string =>
  page(
    slug.replace(/-/g, ' ').replace(/\b\w/g, (c) => c.toUpperCase()),
    '<p class="price">$89.00</p><p class="availability">In stock — ships in 1–2 days.</p><button>Add to cart</button>',
  );

/** Serves one landing page; `rest` is the path after `/lp/`. Returns false when the path is not a landing page. */
export function serveLanding(req: IncomingMessage, res: ServerResponse, rest: string, opts: LandingOptions): boolean {
  const m = /^(\d+)\/(\d+)(?:\/([\w-]*))?$/.exec(rest.split('?')[0]!);
  if (!m) return false;
  const [, customer, nText, slugText] = m;
  const n = Number(nText);
  const slug = slugText ?? 'page';
  const hop = Number(new URL(req.url ?? '/', 'http://x').searchParams.get('hop') ?? '0');
  const self = `/lp/${customer}/${n}/${slug}`;
  switch (landingKind(n)) {
    case 'ok':
      send(res, 200, productPage(slug));
      return true;
    case 'redirect-301':
      // One permanent hop to the product's new address.
      if (hop === 0) send(res, 301, '', { location: `${self}?hop=1` });
      else send(res, 200, productPage(slug));
      return true;
    case 'redirect-302-chain':
      // Three temporary hops, then the page.
      if (hop < 3) send(res, 302, '', { location: `${self}?hop=${hop + 1}` });
      else send(res, 200, productPage(slug));
      return true;
    case 'redirect-loop':
      send(res, 302, '', { location: `${self}?hop=${hop === 0 ? 1 : 0}` });
      return true;
    case 'not-found':
      send(res, 404, page('Not Found', '<p>The requested URL was not found on this server.</p>'));
      return true;
    case 'gone':
      send(res, 410, page('Gone', '<p>This product has been discontinued.</p>'));
      return true;
    case 'server-error':
      send(res, 500, page('Internal Server Error', '<p>Something went wrong.</p>'));
      return true;
    case 'slow': {
      const t = setTimeout(() => send(res, 200, productPage(slug)), opts.slowMs);
      res.on('close', () => clearTimeout(t));
      return true;
    }
    case 'timeout':
      // Never answers; the connection is dropped when the client gives up or the server closes.
      opts.hanging.add(res);
      res.on('close', () => opts.hanging.delete(res));
      return true;
    case 'soft-404':
      send(
        res,
        200,
        page(
          'Oops!',
          '<p>Page not found. Sorry, we couldn\'t find the page you were looking for.</p><a href="/">Home</a>',
        ),
      );
      return true;
    case 'out-of-stock':
      send(
        res,
        200,
        page(slug.replace(/-/g, ' '), '<p class="price">$89.00</p><p class="availability">Out of stock</p>'),
      );
      return true;
  }
}
