/** A URL ready to check, or why it cannot be. */
export type NormalizedUrl = { ok: true; url: string; host: string } | { ok: false; url: string; reason: string };

const UNRESERVED = /^[A-Za-z0-9\-._~]$/;

/** `%7e` → `~`, `%2f` → `%2F`: percent-encodings of unreserved characters decoded, the others in upper case (RFC 3986 §6.2.2). */
function normalizePercent(s: string): string {
  if (!s.includes('%')) return s;
  return s.replace(/%([0-9A-Fa-f]{2})/g, (_m, hex: string) => {
    const ch = String.fromCharCode(Number.parseInt(hex, 16));
    return UNRESERVED.test(ch) ? ch : `%${hex.toUpperCase()}`;
  });
}

/**
 * The form two uses of the same page share, so they are checked once. Only changes that cannot change what a server
 * sees: scheme and host in lower case and IDN hosts in punycode, default ports dropped, a trailing dot on the host
 * dropped, `/` for an empty path, the fragment dropped (never sent), an empty `?` dropped, and percent-encoding made
 * canonical. Query parameters keep their order: servers may read repeated or positional parameters in order, and a
 * false merge would hide a broken variant, while keeping the order costs at most an extra request. Path case and a
 * trailing slash are kept for the same reason.
 */
export function normalizeUrl(raw: string): NormalizedUrl {
  const text = raw.trim();
  if (!text) return { ok: false, url: raw, reason: 'empty URL' };
  let u: URL;
  try {
    u = new URL(text);
  } catch {
    return { ok: false, url: text, reason: 'not a valid absolute URL' };
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') {
    return { ok: false, url: text, reason: `not an http(s) URL (${u.protocol.slice(0, -1)})` };
  }
  if (!u.hostname) return { ok: false, url: text, reason: 'no host' };
  // Each setter re-parses the URL: only call the ones that change something.
  if (u.hostname.endsWith('.')) u.hostname = u.hostname.replace(/\.+$/, '');
  if (u.hash || u.href.endsWith('#')) u.hash = '';
  if (u.pathname.includes('%')) u.pathname = normalizePercent(u.pathname);
  if (u.search === '') {
    if (u.href.endsWith('?')) u.search = '';
  } else if (u.search.includes('%')) u.search = normalizePercent(u.search);
  return { ok: true, url: u.href, host: u.hostname };
}

/** The host name a request to `url` goes to (the politeness key), or undefined for an unusable URL. */
export function hostOf(url: string): string | undefined {
  try {
    const u = new URL(url);
    return u.protocol === 'http:' || u.protocol === 'https:' ? u.hostname : undefined;
  } catch {
    return undefined;
  }
}
