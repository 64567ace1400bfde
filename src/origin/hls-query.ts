/**
 * The delivery directives of a media playlist request (rfc8216bis 6.2.5): `_HLS_msn`,
 * `_HLS_part`, `_HLS_skip`. Pure and strict: read from the raw query string so that repeated
 * parameters are seen, values must be plain decimal-integers (no sign, exponent or encoding) up
 * to 2^53 - 1. Other parameters (cache busters, tokens) are ignored.
 */

export interface HlsDirectives {
  msn?: number;
  part?: number;
  skip?: 'YES' | 'v2';
}

export type HlsQueryResult = { ok: true; directives: HlsDirectives } | { ok: false; message: string };

const DECIMAL_INTEGER = /^[0-9]{1,16}$/;
const DIRECTIVES = new Set(['_HLS_msn', '_HLS_part', '_HLS_skip']);

/** Parses a query string (what follows `?` in the request URL). */
export function parseHlsQuery(query: string): HlsQueryResult {
  const seen = new Map<string, string>();
  for (const pair of query.split('&')) {
    if (pair === '') continue;
    const eq = pair.indexOf('=');
    const name = eq >= 0 ? pair.slice(0, eq) : pair;
    if (!DIRECTIVES.has(name)) continue;
    if (seen.has(name)) return { ok: false, message: `${name} is repeated` };
    seen.set(name, eq >= 0 ? pair.slice(eq + 1) : '');
  }

  const directives: HlsDirectives = {};
  for (const name of ['_HLS_msn', '_HLS_part'] as const) {
    const raw = seen.get(name);
    if (raw === undefined) continue;
    const value = DECIMAL_INTEGER.test(raw) ? Number(raw) : NaN;
    if (!Number.isSafeInteger(value)) return { ok: false, message: `${name} must be a decimal integer below 2^53` };
    if (name === '_HLS_msn') directives.msn = value;
    else directives.part = value;
  }
  // 6.2.5.2: _HLS_part without _HLS_msn is a Bad Request.
  if (directives.part !== undefined && directives.msn === undefined) {
    return { ok: false, message: '_HLS_part requires _HLS_msn' };
  }
  const skip = seen.get('_HLS_skip');
  if (skip !== undefined) {
    if (skip !== 'YES' && skip !== 'v2') return { ok: false, message: '_HLS_skip must be YES or v2' };
    directives.skip = skip;
  }
  return { ok: true, directives };
}
