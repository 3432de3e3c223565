import type { IncomingHttpHeaders } from 'node:http';
import { brotliDecompressSync, constants, gunzipSync, inflateSync } from 'node:zlib';

/** Pages whose text is worth searching: HTML, XHTML, plain text, or no content type at all. */
export function isTextual(contentType: string | string[] | undefined): boolean {
  if (contentType === undefined) return true;
  const t = (Array.isArray(contentType) ? contentType[0] : contentType)?.toLowerCase() ?? '';
  return t === '' || t.startsWith('text/') || t.includes('html') || t.includes('xml');
}

/** HTML's named entities for accented letters follow one pattern: the letter, then the accent's name. */
const ACCENTS: Record<string, string> = {
  acute: '\u0301',
  grave: '\u0300',
  circ: '\u0302',
  tilde: '\u0303',
  uml: '\u0308',
  ring: '\u030A',
  caron: '\u030C',
  cedil: '\u0327',
  ogon: '\u0328',
  dblac: '\u030B',
};
const NAMED: Record<string, string> = {
  nbsp: ' ',
  amp: '&',
  lt: '<',
  gt: '>',
  quot: '"',
  apos: "'",
  szlig: 'ß',
  ndash: '–',
  mdash: '—',
  rsquo: '’',
  lsquo: '‘',
};

function entity(name: string): string | undefined {
  if (name.startsWith('#')) {
    const code = name[1] === 'x' || name[1] === 'X' ? Number.parseInt(name.slice(2), 16) : Number(name.slice(1));
    return Number.isInteger(code) && code > 0 && code <= 0x10ffff ? String.fromCodePoint(code) : undefined;
  }
  const named = NAMED[name];
  if (named) return named;
  const accent = ACCENTS[name.slice(1)];
  if (accent && /^[A-Za-z]$/.test(name[0]!)) {
    const composed = (name[0]! + accent).normalize('NFC');
    if (composed.length === 1) return composed;
  }
  return undefined;
}

/** Lower case, composed (NFC), every run of white space one space: the canonical form of a phrase. */
export function foldText(s: string): string {
  return s.normalize('NFC').toLowerCase().replace(/\s+/g, ' ').trim();
}

function charsetOf(headers: IncomingHttpHeaders | undefined, body: Buffer): string {
  const fromHeader = /charset=["']?([\w.:-]+)/i.exec(String(headers?.['content-type'] ?? ''))?.[1];
  if (fromHeader) return fromHeader;
  const head = body.subarray(0, 2048).toString('latin1');
  return /<meta[^>]+charset=["']?([\w.:-]+)/i.exec(head)?.[1] ?? 'utf-8';
}

/** Undoes a content encoding the server used although we asked for none; as much as the partial body allows. */
function decoded(headers: IncomingHttpHeaders | undefined, body: Buffer): Buffer {
  const encoding = String(headers?.['content-encoding'] ?? '')
    .trim()
    .toLowerCase();
  if (!encoding || encoding === 'identity') return body;
  try {
    if (encoding === 'gzip' || encoding === 'x-gzip') return gunzipSync(body, { finishFlush: constants.Z_SYNC_FLUSH });
    if (encoding === 'deflate') return inflateSync(body, { finishFlush: constants.Z_SYNC_FLUSH });
    if (encoding === 'br') return brotliDecompressSync(body, { finishFlush: constants.BROTLI_OPERATION_FLUSH });
  } catch {
    // A cut-off stream may not decode at all: then there is no text to search.
  }
  return Buffer.alloc(0);
}

/**
 * The visible text of the start of a page: decoded by its charset (header, else `<meta charset>`, else UTF-8),
 * without scripts, styles, comments and tags, entities resolved, composed (NFC). Scripts are left out because
 * single-page apps ship every message they might show, "Page not found" included.
 */
export function pageText(body: Buffer, headers: IncomingHttpHeaders | undefined): string {
  const bytes = decoded(headers, body);
  let text: string;
  try {
    text = new TextDecoder(charsetOf(headers, bytes)).decode(bytes);
  } catch {
    text = new TextDecoder('utf-8').decode(bytes);
  }
  text = text
    .replace(/<(script|style|noscript|template)\b[\s\S]*?(?:<\/\1\s*>|$)/gi, ' ')
    .replace(/<!--[\s\S]*?(?:-->|$)/g, ' ')
    .replace(/<[^>]*>?/g, ' ');
  if (text.includes('&')) {
    text = text.replace(/&(#\d{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z]{2,8});?/g, (m, name: string) => entity(name) ?? m);
  }
  // Only decomposed accents (a letter, then a combining mark) need composing; most pages have none.
  return /[\u0300-\u036f]/.test(text) ? text.normalize('NFC') : text;
}

const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/**
 * Finds the first configured phrase in a page's text: case-insensitively (Unicode case folding, so "VYPRODÁNO"
 * matches "vyprodáno"), with any run of white space, non-breaking spaces and tags between two words. One pass for
 * every phrase's longest word comes first: most pages are ruled out by that single scan, and on the others only the
 * phrases whose word was seen are tried.
 */
export class PhraseMatcher {
  private readonly phrases: readonly string[];
  /** Each phrase's longest word, folded. */
  private readonly keys: readonly string[];
  private readonly anyKey: RegExp;
  private readonly patterns: readonly RegExp[];

  constructor(phrases: readonly string[]) {
    this.phrases = phrases;
    const words = phrases.map((p) => foldText(p).split(' '));
    this.keys = words.map((w) => w.reduce((a, b) => (b.length > a.length ? b : a)));
    this.anyKey = new RegExp([...new Set(this.keys)].map(escapeRegExp).join('|'), 'giu');
    this.patterns = words.map((w) => new RegExp(w.map(escapeRegExp).join('\\s+'), 'iu'));
  }

  get enabled(): boolean {
    return this.phrases.length > 0;
  }

  /** The phrase as configured, or undefined. */
  find(body: Buffer, headers: IncomingHttpHeaders | undefined): string | undefined {
    if (!this.phrases.length) return undefined;
    const text = pageText(body, headers);
    const present = new Set<string>();
    this.anyKey.lastIndex = 0;
    for (let m = this.anyKey.exec(text); m; m = this.anyKey.exec(text)) present.add(m[0].toLowerCase());
    if (!present.size) return undefined;
    for (let i = 0; i < this.phrases.length; i++) {
      if (present.has(this.keys[i]!) && this.patterns[i]!.test(text)) return this.phrases[i];
    }
    return undefined;
  }
}
