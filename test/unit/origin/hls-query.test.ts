import { describe, expect, it } from 'vitest';
import { parseHlsQuery } from '../../../src/origin/hls-query.ts';

describe('parseHlsQuery', () => {
  it.each([
    ['', {}],
    ['_HLS_msn=12', { msn: 12 }],
    ['_HLS_msn=12&_HLS_part=3', { msn: 12, part: 3 }],
    ['_HLS_part=0&_HLS_msn=0', { msn: 0, part: 0 }],
    ['_HLS_skip=YES', { skip: 'YES' }],
    ['_HLS_msn=5&_HLS_skip=v2', { msn: 5, skip: 'v2' }],
    ['_HLS_msn=9007199254740991', { msn: 9007199254740991 }],
    ['token=abc&_HLS_msn=1&x=%20', { msn: 1 }], // other parameters are not ours
    ['_HLS_msn=1&&', { msn: 1 }],
  ])('accepts %j', (query, directives) => {
    expect(parseHlsQuery(query)).toEqual({ ok: true, directives });
  });

  it.each([
    ['_HLS_part=1', /requires _HLS_msn/],
    ['_HLS_msn=', /decimal integer/],
    ['_HLS_msn', /decimal integer/],
    ['_HLS_msn=-1', /decimal integer/],
    ['_HLS_msn=+1', /decimal integer/],
    ['_HLS_msn=1.5', /decimal integer/],
    ['_HLS_msn=1e3', /decimal integer/],
    ['_HLS_msn=0x10', /decimal integer/],
    ['_HLS_msn=%31', /decimal integer/],
    ['_HLS_msn= 1', /decimal integer/],
    ['_HLS_msn=9007199254740992', /decimal integer/], // 2^53
    ['_HLS_msn=99999999999999999999', /decimal integer/],
    ['_HLS_msn=1&_HLS_part=x', /_HLS_part must be/],
    ['_HLS_msn=1&_HLS_msn=2', /repeated/],
    ['_HLS_msn=1&_HLS_part=1&_HLS_part=1', /repeated/],
    ['_HLS_skip=yes', /YES or v2/],
    ['_HLS_skip=NO', /YES or v2/],
    ['_HLS_skip=YES&_HLS_skip=YES', /repeated/],
  ])('refuses %j', (query, message) => {
    const result = parseHlsQuery(query);
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.message).toMatch(message);
  });
});
