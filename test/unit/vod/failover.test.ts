import { describe, it, expect } from 'vitest';
import { keepStored } from '../../../src/vod/failover.ts';
import type { ManifestEntry } from '../../../src/vod/vod-playlist.ts';

const P = 'videos/abc/';
const init = (r: string, f = 'init-x.mp4'): ManifestEntry => ({ r, t: 'init', f, codecs: ['avc1.64001f'], b: 100 });
const seg = (r: string, n: number, extra: Partial<ManifestEntry> = {}): ManifestEntry =>
  ({ r, t: 'seg', f: `seg-x-${n}.m4s`, i: 'init-x.mp4', d: 2, b: 1000, ...extra }) as ManifestEntry;

describe('keepStored (finalizing a dead node’s recording from the store)', () => {
  it('keeps everything when every file arrived', () => {
    const entries = [init('a'), seg('a', 0), seg('a', 1), init('b'), seg('b', 0)];
    expect(keepStored(entries, () => true, P)).toEqual(entries);
  });

  it('drops what never left the dead node’s spool; the next segment after a gap is a discontinuity', () => {
    const stored = new Set([`${P}a/init-x.mp4`, `${P}a/seg-x-0.m4s`, `${P}a/seg-x-2.m4s`]);
    const out = keepStored([init('a'), seg('a', 0), seg('a', 1), seg('a', 2), seg('a', 3)], (k) => stored.has(k), P);
    expect(out.map((e) => [e.f, e.t === 'seg' ? (e.disc ?? false) : null])).toEqual([
      ['init-x.mp4', null],
      ['seg-x-0.m4s', false],
      ['seg-x-2.m4s', true],
    ]);
  });

  it('a gap before the first kept segment is not a discontinuity, and gaps are per rendition', () => {
    const stored = new Set([`${P}a/init-x.mp4`, `${P}a/seg-x-1.m4s`, `${P}b/init-x.mp4`, `${P}b/seg-x-0.m4s`, `${P}b/seg-x-1.m4s`]);
    const out = keepStored([init('a'), init('b'), seg('a', 0), seg('b', 0), seg('a', 1), seg('b', 1)], (k) => stored.has(k), P);
    expect(out.filter((e) => e.t === 'seg').map((e) => `${e.r}${e.f}${e.t === 'seg' && e.disc ? '!' : ''}`)).toEqual([
      'bseg-x-0.m4s',
      'aseg-x-1.m4s',
      'bseg-x-1.m4s',
    ]);
  });

  it('segments whose init segment is missing cannot play and are left out', () => {
    const stored = new Set([`${P}a/seg-x-0.m4s`]);
    expect(keepStored([init('a'), seg('a', 0)], (k) => stored.has(k), P)).toEqual([]);
  });

  it('keeps an existing discontinuity flag', () => {
    const entries = [init('a'), seg('a', 0), seg('a', 1, { disc: true } as Partial<ManifestEntry>)];
    expect(keepStored(entries, () => true, P)).toEqual(entries);
  });
});
