import { describe, it, expect } from 'vitest';
import { ifNoneMatchHits, ifRangeMatches, parseRangeHeader } from '../../../src/origin/byte-range.ts';

describe('parseRangeHeader', () => {
  const size = 1000;
  it.each([
    ['bytes=0-99', 0, 99],
    ['bytes=500-', 500, 999],
    ['bytes=-100', 900, 999],
    ['bytes=-5000', 0, 999],
    ['bytes=990-5000', 990, 999],
    ['bytes=999-999', 999, 999],
    ['BYTES=0-0', 0, 0],
    ['bytes= 10-20 ', 10, 20],
  ])('%s → %d-%d', (header, start, end) => {
    expect(parseRangeHeader(header, size)).toEqual({ kind: 'partial', start, end });
  });

  it.each(['bytes=1000-', 'bytes=1000-2000', 'bytes=-0', 'bytes=5000-'])('%s is unsatisfiable', (header) => {
    expect(parseRangeHeader(header, size)).toEqual({ kind: 'unsatisfiable' });
  });

  it.each([undefined, '', 'bytes=', 'bytes=-', 'bytes=abc', 'bytes=5-1', 'items=0-1', 'bytes=0-1,5-9', 'bytes=1.5-2', `bytes=0-${'9'.repeat(300)}`, 'bytes=99999999999999999-'])(
    '%j is ignored: the whole body',
    (header) => {
      expect(parseRangeHeader(header, size)).toEqual({ kind: 'full' });
    },
  );

  it('an empty file has no satisfiable range', () => {
    expect(parseRangeHeader('bytes=0-', 0)).toEqual({ kind: 'unsatisfiable' });
    expect(parseRangeHeader('bytes=-1', 0)).toEqual({ kind: 'unsatisfiable' });
  });
});

describe('conditional headers', () => {
  const etag = '"abc-10"';
  it('If-Range applies the range only for the current ETag', () => {
    expect(ifRangeMatches(undefined, etag)).toBe(true);
    expect(ifRangeMatches(etag, etag)).toBe(true);
    expect(ifRangeMatches('"old"', etag)).toBe(false);
    expect(ifRangeMatches('Tue, 24 Nov 2026 04:00:00 GMT', etag)).toBe(false);
  });
  it('If-None-Match hits on the ETag, a weak form of it, or *', () => {
    expect(ifNoneMatchHits(undefined, etag)).toBe(false);
    expect(ifNoneMatchHits(etag, etag)).toBe(true);
    expect(ifNoneMatchHits(`"x", ${etag}`, etag)).toBe(true);
    expect(ifNoneMatchHits(`W/${etag}`, etag)).toBe(true);
    expect(ifNoneMatchHits('*', etag)).toBe(true);
    expect(ifNoneMatchHits('"other"', etag)).toBe(false);
  });
});
