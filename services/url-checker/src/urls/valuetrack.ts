import type { UrlUsage } from '@ppc/lib/ads';
import type { ValueTrackMode } from '../options.ts';

/**
 * A use of a URL, with the tracking parts Google Ads lets an advertiser add around the final URL. The connectors
 * currently yield final URLs only; when they also yield the tracking template and the final URL suffix, `resolve`
 * checks the address a click really goes to.
 */
export interface TrackedUsage extends UrlUsage {
  /** Google Ads `tracking_url_template`, e.g. `https://track.example/?u={lpurl}&kw={keyword}`. */
  trackingTemplate?: string | undefined;
  /** Google Ads `final_url_suffix`, e.g. `utm_source=google&utm_term={keyword}`. */
  finalUrlSuffix?: string | undefined;
}

/** A ValueTrack placeholder: `{keyword}`, `{_season}`, `{ifmobile:mobile}`, `{lpurl+2}`. */
const PLACEHOLDER = /\{([A-Za-z_][\w.]*(?:\+\d)?)(?::([^{}]*))?\}/g;
const HAS_PLACEHOLDER = /\{[A-Za-z_][\w.]*(?:\+\d)?(?::[^{}]*)?\}/;
const LPURL = /^(?:(?:escaped|unescaped)?lpurl(?:\+\d)?)$/i;

/**
 * What a click on the usage would send. Values the checker cannot know (device model, position, custom
 * parameters) become empty; `{random}` becomes a fixed value so equal URLs still dedupe.
 */
function placeholderValue(name: string, arg: string | undefined, use: UrlUsage): string | undefined {
  switch (name.toLowerCase()) {
    case 'campaignid':
      return use.campaignId;
    case 'adgroupid':
      return use.adGroupId ?? '';
    case 'creative':
      return use.source === 'ad' ? use.entityId : '';
    case 'keyword':
      return use.source === 'keyword' ? use.label : '';
    case 'targetid':
      return use.source === 'keyword' ? `kwd-${use.entityId}` : '';
    case 'feeditemid':
    case 'extensionid':
      return use.source === 'sitelink' ? use.entityId : '';
    case 'network':
      return 'g';
    case 'device':
      return 'c';
    case 'random':
      return '0';
    case 'ifmobile':
    case 'ifcontent':
      return '';
    case 'ifnotmobile':
    case 'ifsearch':
      return arg ?? '';
    case 'ignore':
      return '';
    default:
      return undefined;
  }
}

function resolvePlaceholders(text: string, use: UrlUsage): string {
  return text.replace(PLACEHOLDER, (_m, name: string, arg: string | undefined) =>
    encodeURIComponent(placeholderValue(name, arg, use) ?? ''),
  );
}

/** Removes every query parameter that carries a placeholder, and placeholders anywhere else. */
function stripPlaceholders(url: string): string {
  const hash = url.indexOf('#');
  const beforeHash = hash < 0 ? url : url.slice(0, hash);
  const q = beforeHash.indexOf('?');
  if (q < 0) return beforeHash.replace(PLACEHOLDER, '');
  const kept = beforeHash
    .slice(q + 1)
    .split('&')
    .filter((p) => p && !HAS_PLACEHOLDER.test(p));
  const base = beforeHash.slice(0, q).replace(PLACEHOLDER, '');
  return kept.length ? `${base}?${kept.join('&')}` : base;
}

function appendSuffix(url: string, suffix: string): string {
  const s = suffix.replace(/^[?&]+/, '');
  if (!s) return url;
  const hash = url.indexOf('#');
  const [base, frag] = hash < 0 ? [url, ''] : [url.slice(0, hash), url.slice(hash)];
  return `${base}${base.includes('?') ? (base.endsWith('?') || base.endsWith('&') ? '' : '&') : '?'}${s}${frag}`;
}

/**
 * The URL to check for one use.
 *
 * - `strip` (default): the landing page without tracking. The tracking template and final URL suffix are ignored;
 *   every query parameter of the final URL whose name or value holds a placeholder is dropped, and placeholders
 *   elsewhere are removed. Tracking rarely changes the page, and stripping lets one page used by a thousand keywords
 *   be checked once.
 * - `resolve`: the address a click goes to. The suffix is appended, placeholders get this use's values
 *   (`{campaignid}`, `{adgroupid}`, `{creative}`, `{keyword}`, `{targetid}`, `{feeditemid}`, `{network}`=g,
 *   `{device}`=c, `{ifsearch:x}`=x, `{ifmobile:x}`=''; unknown ones and custom `{_param}`s become empty), and a
 *   tracking template wraps the result through `{lpurl}` (escaped, except at the very start of the template, as
 *   Google Ads does), so the tracker's own redirects are checked too. URLs then differ per keyword or ad and dedupe
 *   less.
 */
export function applyValueTrack(use: TrackedUsage, mode: ValueTrackMode): string {
  const finalUrl = use.url.trim();
  if (mode === 'strip') return finalUrl.includes('{') ? stripPlaceholders(finalUrl) : finalUrl;
  if (!use.finalUrlSuffix && !use.trackingTemplate && !finalUrl.includes('{')) return finalUrl;
  let landing = use.finalUrlSuffix ? appendSuffix(finalUrl, resolvePlaceholders(use.finalUrlSuffix, use)) : finalUrl;
  landing = resolvePlaceholders(landing, use);
  const template = use.trackingTemplate?.trim();
  if (!template) return landing;
  return template.replace(PLACEHOLDER, (_m, name: string, arg: string | undefined, offset: number) => {
    if (!LPURL.test(name)) return encodeURIComponent(placeholderValue(name, arg, use) ?? '');
    const lower = name.toLowerCase();
    if (lower.startsWith('unescaped') || (offset === 0 && lower === 'lpurl')) return landing;
    const times = Number(/\+(\d)$/.exec(lower)?.[1] ?? '1');
    let v = landing;
    for (let i = 0; i < times; i++) v = encodeURIComponent(v);
    return v;
  });
}
