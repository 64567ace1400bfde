import { describe, it, expect } from 'vitest';
import {
  parseThumbnailQuery,
  parseTime,
  resolveTime,
  scaleFilters,
  thumbnailCacheName,
  type GifParams,
  type JpegParams,
} from '../../../src/vod/thumbnail-params.ts';

const jpg = (q: Record<string, string | string[]>) => parseThumbnailQuery('jpg', q);
const gif = (q: Record<string, string | string[]>) => parseThumbnailQuery('gif', q);

describe('thumbnail time', () => {
  it.each([
    ['0', 0],
    ['68', 68],
    ['68s', 68],
    ['2.5s', 2.5],
    ['1m', 60],
    ['1m8s', 68],
    ['1h2m3.5s', 3723.5],
    ['1h', 3600],
    ['24h', 86400],
  ])('%s is %d s', (text, seconds) => {
    expect(parseTime(text)).toEqual({ ok: true, value: { seconds } });
  });

  it.each([['0%', 0], ['25%', 0.25], ['100%', 1], ['12.5%', 0.125]])('%s is a fraction %d', (text, fraction) => {
    expect(parseTime(text)).toEqual({ ok: true, value: { fraction } });
  });

  it.each(['', 's', 'abc', '-1', '1s1m', '1m1h', '1.2345s', '1e3', '0x10', ' 1', '1 s', '101%', '%', '1d', '24h1s', '9'.repeat(40), 'NaN', 'Infinity'])(
    'refuses %j',
    (text) => {
      expect(parseTime(text).ok).toBe(false);
    },
  );
});

describe('parseThumbnailQuery', () => {
  it('applies the defaults', () => {
    expect(jpg({})).toEqual({ ok: true, value: { format: 'jpg', time: undefined, width: undefined, height: undefined, fit: 'crop' } });
    expect(gif({})).toEqual({
      ok: true,
      value: { format: 'gif', time: undefined, width: undefined, height: 240, fit: 'crop', duration: 5, fps: 8 },
    });
    // One side given: the other follows the aspect ratio, no default height is forced on it.
    expect((gif({ width: '320' }) as { value: GifParams }).value).toMatchObject({ width: 320, height: undefined });
  });

  it('reads every parameter and ignores the token', () => {
    expect(jpg({ time: '3s', width: '320', height: '180', fit: 'fill', token: 'abc' })).toEqual({
      ok: true,
      value: { format: 'jpg', time: { seconds: 3 }, width: 320, height: 180, fit: 'fill' },
    });
    expect(gif({ time: '1m', duration: '2.5s', fps: '12.5', height: '100' })).toMatchObject({
      ok: true,
      value: { duration: 2.5, fps: 12.5, height: 100, time: { seconds: 60 } },
    });
  });

  it.each([
    [{ width: '0' }, /width must be a whole number of pixels from 16 to 1920/],
    [{ width: '15' }, /width/],
    [{ width: '1921' }, /width/],
    [{ width: '1.5' }, /width/],
    [{ width: '0100' }, /width/],
    [{ width: '+100' }, /width/],
    [{ width: '' }, /width/],
    [{ height: '-5' }, /height/],
    [{ height: '99999999999' }, /height/],
    [{ fit: 'cover' }, /fit must be one of crop, clip, scale, fill/],
    [{ fit: 'CROP' }, /fit/],
    [{ time: 'later' }, /time must look like/],
    [{ width: ['100', '200'] }, /"width" is given more than once/],
    [{ fps: '8' }, /unknown parameter "fps" for thumbnail.jpg/],
    [{ ['x'.repeat(500)]: '1' }, /unknown parameter "x{40}…"/],
    [{ ['\u0000evil']: '1' }, /unknown parameter "\?evil"/],
  ])('jpg refuses %j', (query, reason) => {
    const r = jpg(query as Record<string, string>);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.message).toMatch(reason);
  });

  it.each([
    [{ fps: '0' }, /fps must be a number from 1 to 15/],
    [{ fps: '16' }, /fps/],
    [{ fps: '8fps' }, /fps/],
    [{ fps: '-1' }, /fps/],
    [{ duration: '0' }, /duration must be more than 0 s and at most 15 s/],
    [{ duration: '16s' }, /duration/],
    [{ duration: '10%' }, /duration/],
    [{ duration: 'long' }, /duration: time must look like/],
    [{ width: '641' }, /width must be a whole number of pixels from 16 to 640/],
  ])('gif refuses %j', (query, reason) => {
    const r = gif(query as Record<string, string>);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.message).toMatch(reason);
  });
});

describe('resolveTime', () => {
  it('uses the default fraction when no time is given', () => {
    expect(resolveTime(undefined, 0, 10)).toBe(0);
    expect(resolveTime(undefined, 0.5, 10)).toBe(5);
  });
  it('keeps the very end a frame inside the video', () => {
    expect(resolveTime({ fraction: 1 }, 0, 10)).toBeCloseTo(9.95);
    expect(resolveTime({ seconds: 10 }, 0, 10)).toBeCloseTo(9.95);
  });
  it('refuses a time past the end', () => {
    expect(resolveTime({ seconds: 10.01 }, 0, 10)).toBeUndefined();
    expect(resolveTime({ seconds: 3 }, 0, 10)).toBe(3);
  });
});

describe('scaleFilters and the cache name', () => {
  const p = (width?: number, height?: number, fit: JpegParams['fit'] = 'crop') => ({ width, height, fit });
  it('has one filter chain per fit', () => {
    expect(scaleFilters(p())).toEqual([]);
    expect(scaleFilters(p(320))).toEqual(['scale=320:-2', 'setsar=1']);
    expect(scaleFilters(p(undefined, 90))).toEqual(['scale=-2:90', 'setsar=1']);
    expect(scaleFilters(p(200, 100, 'scale'))).toEqual(['scale=200:100', 'setsar=1']);
    expect(scaleFilters(p(200, 100, 'crop'))).toEqual(['scale=200:100:force_original_aspect_ratio=increase', 'crop=200:100', 'setsar=1']);
    expect(scaleFilters(p(200, 100, 'clip'))).toEqual(['scale=200:100:force_original_aspect_ratio=decrease', 'setsar=1']);
    expect(scaleFilters(p(200, 100, 'fill'))[1]).toBe('pad=200:100:(ow-iw)/2:(oh-ih)/2:black');
  });
  it('names equal pictures alike and different ones apart, with key-safe characters', () => {
    const a = (jpg({ time: '3s', width: '320' }) as { value: JpegParams }).value;
    const b = (jpg({ time: '3.001s', width: '320' }) as { value: JpegParams }).value;
    expect(thumbnailCacheName(a, 3)).toBe('t300-w320-h0-crop.jpg');
    expect(thumbnailCacheName(b, 3.001)).toBe(thumbnailCacheName(a, 3));
    const g = (gif({ duration: '2s', fps: '5' }) as { value: GifParams }).value;
    expect(thumbnailCacheName(g, 1.5)).toBe('t150-w0-h240-crop-d2000-f500.gif');
    expect(thumbnailCacheName(g, 1.5)).toMatch(/^[A-Za-z0-9._-]+$/);
  });
});
