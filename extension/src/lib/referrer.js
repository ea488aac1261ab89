// The referrer the page's own load of an image sent, so that the extension's read of the same image can
// send it too (a site that serves the real image only to its own pages then gives the extension that one).

export const POLICIES = new Set([
  'no-referrer', 'no-referrer-when-downgrade', 'same-origin', 'origin', 'strict-origin',
  'origin-when-cross-origin', 'strict-origin-when-cross-origin', 'unsafe-url',
]);
export const DEFAULT_POLICY = 'strict-origin-when-cross-origin'; // the HTML default since 2020
// <meta name="referrer"> also takes these older words (HTML's "legacy" values).
const LEGACY = { never: 'no-referrer', default: DEFAULT_POLICY, always: 'unsafe-url', 'origin-when-crossorigin': 'origin-when-cross-origin' };
const MAX_REFERRER = 4096; // longer referrers are cut to their origin (Referrer Policy, "determine request's referrer")

/** A policy token as `<meta name="referrer" content>` or `referrerpolicy` give it; '' when not one. */
export function parsePolicy(value) {
  const token = String(value ?? '').trim().toLowerCase();
  if (POLICIES.has(token)) return token;
  return LEGACY[token] ?? '';
}

/**
 * The policy a `Referrer-Policy` response header sets (`value`: its values joined by commas): the last token
 * that is a policy, else ''. Unknown tokens (newer policies) are skipped, so that a site can list a fallback
 * first; case is ignored, as Chromium and Firefox do; the older meta words are not policies here.
 */
export function headerPolicy(value) {
  let policy = '';
  for (const token of String(value ?? '').split(',')) {
    const word = token.trim().toLowerCase();
    if (POLICIES.has(word)) policy = word;
  }
  return policy;
}

/**
 * The document's policy as its markup says: the last valid `<meta name="referrer">`, else ''.
 * A `Referrer-Policy` response header is not visible to scripts, so it is not seen here.
 */
export function documentPolicy(doc) {
  let policy = '';
  for (const meta of doc.querySelectorAll('meta[name="referrer" i]')) policy = parsePolicy(meta.content) || policy;
  return policy;
}

/** Is a request to this URL "potentially trustworthy" (no downgrade)? https, and the local hosts. */
function trustworthy(url) {
  if (url.protocol === 'https:') return true;
  const host = url.hostname;
  return host === 'localhost' || host.endsWith('.localhost') || host === '[::1]' || /^127(\.\d{1,3}){3}$/.test(host);
}

/**
 * The Referer a browser sends when `page` loads `target` under `policy` (Referrer Policy spec, section
 * "determine request's referrer", steps for each policy), or null for none. Only http(s) pages and targets.
 */
export function referrerFor(target, page, policy) {
  let to;
  let from;
  try {
    to = new URL(target);
    from = new URL(page);
  } catch {
    return null;
  }
  if (!/^https?:$/.test(to.protocol) || !/^https?:$/.test(from.protocol)) return null;
  from.username = '';
  from.password = '';
  from.hash = '';
  const origin = `${from.origin}/`;
  const full = from.href.length > MAX_REFERRER ? origin : from.href;
  const sameOrigin = to.origin === from.origin;
  const downgrade = from.protocol === 'https:' && !trustworthy(to);
  switch (parsePolicy(policy) || DEFAULT_POLICY) {
    case 'no-referrer': return null;
    case 'unsafe-url': return full;
    case 'origin': return origin;
    case 'same-origin': return sameOrigin ? full : null;
    case 'origin-when-cross-origin': return sameOrigin ? full : origin;
    case 'no-referrer-when-downgrade': return downgrade ? null : full;
    case 'strict-origin': return downgrade ? null : origin;
    default: return sameOrigin ? full : downgrade ? null : origin; // strict-origin-when-cross-origin
  }
}

/**
 * A declarativeNetRequest session rule that sets `Referer: referrer` on the extension's own GET of `url`
 * and on nothing else: only requests from no tab (`tabIds: [-1]`) whose initiator is the extension
 * (`extensionHost`: its origin's host, the ID in Chromium, the internal UUID in Firefox), as `fetch`
 * makes them, to that exact address (a `*` or `^` in it matches like characters too).
 */
export function referrerRule(id, url, referrer, extensionHost) {
  const address = new URL(url);
  address.hash = ''; // never part of a request
  return {
    id,
    priority: 1,
    action: { type: 'modifyHeaders', requestHeaders: [{ header: 'Referer', operation: 'set', value: referrer }] },
    condition: {
      urlFilter: `|${address.href}|`,
      initiatorDomains: [extensionHost],
      tabIds: [-1],
      resourceTypes: ['xmlhttprequest'],
      requestMethods: ['get'],
    },
  };
}
