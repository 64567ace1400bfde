/**
 * The `Range` header of a GET (RFC 9110 14.2), for one representation of `size` bytes. Only one
 * range is served: a multi-range request gets the whole body (200), which the RFC allows, and a
 * header that does not parse is ignored likewise. A range wholly past the end is 416.
 */
export type RangeDecision =
  | { kind: 'full' }
  | { kind: 'partial'; start: number; end: number }
  | { kind: 'unsatisfiable' };

const SPEC = /^(\d{0,16})-(\d{0,16})$/;

export function parseRangeHeader(header: string | undefined, size: number): RangeDecision {
  if (header === undefined) return { kind: 'full' };
  const text = header.trim();
  if (!/^bytes=/i.test(text) || text.length > 200) return { kind: 'full' };
  const specs = text.slice(6).split(',');
  if (specs.length !== 1) return { kind: 'full' };
  const m = SPEC.exec((specs[0] ?? '').trim());
  if (!m || (m[1] === '' && m[2] === '')) return { kind: 'full' };
  if (m[1] === '') {
    // bytes=-N: the last N bytes.
    const suffix = Number(m[2]);
    if (suffix === 0 || size === 0) return { kind: 'unsatisfiable' };
    return { kind: 'partial', start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(m[1]);
  if (m[2] !== '' && Number(m[2]) < start) return { kind: 'full' }; // invalid: ignored (RFC 9110 14.1.1)
  if (start >= size) return { kind: 'unsatisfiable' };
  const end = m[2] === '' ? size - 1 : Number(m[2]);
  return { kind: 'partial', start, end: Math.min(end, size - 1) };
}

/**
 * If-Range: the range applies only when the validator still names this representation. Only a
 * strong ETag can match (dates are not kept for these objects).
 */
export function ifRangeMatches(ifRange: string | undefined, etag: string): boolean {
  if (ifRange === undefined) return true;
  return ifRange.trim() === etag;
}

/** If-None-Match lists the current ETag (or `*`): a conditional GET gets 304. */
export function ifNoneMatchHits(header: string | undefined, etag: string): boolean {
  if (header === undefined) return false;
  return header.split(',').some((t) => {
    const tag = t.trim();
    return tag === '*' || tag === etag || tag === `W/${etag}`;
  });
}
