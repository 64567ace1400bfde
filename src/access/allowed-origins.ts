/**
 * `allowedOrigins` of a live input or video: which sites may embed / play it, matched against the
 * request's Origin header (or Referer when there is no Origin). Pure.
 *
 * Decisions (Cloudflare's documented behaviour where it has one):
 * - An empty list allows every request.
 * - Entries are host names; scheme, port and path are ignored on both sides: `example.com` allows
 *   `http://example.com:8080/page` and `https://example.com`, but not `www.example.com`.
 *   (An entry written as a URL, `https://example.com/`, is reduced to its host.)
 * - `*.example.com` allows any subdomain at any depth but NOT the bare `example.com` — list both
 *   when both are wanted. (Cloudflare's dashboard also lets the wildcard cover the bare domain; we
 *   keep the two explicit.) A lone `*` allows every origin that is present.
 * - A request with neither Origin nor Referer is allowed: native players (AVPlayer, ExoPlayer,
 *   VLC, ffmpeg) and privacy settings (`Referrer-Policy: no-referrer`) send neither, so refusing
 *   them would break playback without stopping anyone (the header is trivially forged outside a
 *   browser). Use signed URLs for real access control. An Origin of `null` (sandboxed iframe,
 *   file://) or an unparseable header is refused when a list is set.
 */
export function originAllowed(allowedOrigins: readonly string[], originOrRefererHeader: string | undefined): boolean {
  if (allowedOrigins.length === 0) return true;
  if (originOrRefererHeader === undefined || originOrRefererHeader.trim() === '') return true;
  const host = hostOfHeader(originOrRefererHeader);
  if (host === undefined) return false;
  for (const entry of allowedOrigins) {
    const pattern = normalisePattern(entry);
    if (pattern === undefined) continue;
    if (pattern === '*') return true;
    if (pattern.startsWith('*.')) {
      const suffix = pattern.slice(1);
      if (host.length > suffix.length && host.endsWith(suffix)) return true;
    } else if (host === pattern) {
      return true;
    }
  }
  return false;
}

function hostOfHeader(value: string): string | undefined {
  if (value.length > 4096) return undefined;
  try {
    const url = new URL(value.trim());
    if (url.protocol !== 'http:' && url.protocol !== 'https:') return undefined;
    return stripDot(url.hostname.toLowerCase());
  } catch {
    return undefined;
  }
}

const patternCache = new Map<string, string | undefined>();

/** `Example.COM.` → `example.com`; `*.bücher.de` → `*.xn--bcher-kva.de`; undefined when unusable. */
export function normalisePattern(entry: string): string | undefined {
  const hit = patternCache.get(entry);
  if (hit !== undefined || patternCache.has(entry)) return hit;
  const result = computePattern(entry);
  // Entries come from a few stored records; the bound only guards against a pathological store.
  if (patternCache.size > 10_000) patternCache.clear();
  patternCache.set(entry, result);
  return result;
}

function computePattern(entry: string): string | undefined {
  let text = entry.trim();
  if (text === '*') return '*';
  if (text.includes('://')) {
    try {
      text = new URL(text).hostname;
    } catch {
      return undefined;
    }
  }
  const wildcard = text.startsWith('*.');
  const hostPart = wildcard ? text.slice(2) : text;
  if (hostPart === '' || hostPart.includes('*')) return undefined;
  try {
    // Lower-cases, applies IDNA (punycode) and rejects characters no host name may have.
    const url = new URL(`http://${hostPart}/`);
    const host = stripDot(url.hostname);
    if (host === '') return undefined;
    return wildcard ? `*.${host}` : host;
  } catch {
    return undefined;
  }
}

function stripDot(host: string): string {
  return host.endsWith('.') ? host.slice(0, -1) : host;
}
