import { describe, it, expect } from 'vitest';
import { buildVodPlaylists, parseManifestEntries, type ManifestEntry } from '../../../src/vod/vod-playlist.ts';

const init = (r: string, f: string, h: number): ManifestEntry => ({
  r, t: 'init', f, codecs: ['avc1.64001f', 'mp4a.40.2'], w: Math.round((h * 16) / 9), h, b: 800,
});
const seg = (r: string, f: string, i: string, d: number, b: number, disc?: boolean): ManifestEntry => ({
  r, t: 'seg', f, i, d, b, ...(disc ? { disc } : {}),
});

describe('VOD playlists from a recording manifest', () => {
  it('renders a VOD media playlist with EXT-X-MAP per init and a discontinuity at a reconnect', () => {
    const vod = buildVodPlaylists([
      init('source', 'init-aaaa1111.mp4', 720),
      seg('source', 'seg-aaaa1111-0.m4s', 'init-aaaa1111.mp4', 2, 250_000),
      seg('source', 'seg-aaaa1111-1.m4s', 'init-aaaa1111.mp4', 2.5, 250_000),
      init('source', 'init-bbbb2222.mp4', 720),
      seg('source', 'seg-bbbb2222-0.m4s', 'init-bbbb2222.mp4', 1.5, 100_000, true),
    ]);
    expect(vod?.media.get('source')).toBe(
      [
        '#EXTM3U',
        '#EXT-X-VERSION:6',
        '#EXT-X-TARGETDURATION:3',
        '#EXT-X-MEDIA-SEQUENCE:0',
        '#EXT-X-PLAYLIST-TYPE:VOD',
        '#EXT-X-INDEPENDENT-SEGMENTS',
        '#EXT-X-MAP:URI="init-aaaa1111.mp4"',
        '#EXTINF:2.00000,',
        'seg-aaaa1111-0.m4s',
        '#EXTINF:2.50000,',
        'seg-aaaa1111-1.m4s',
        '#EXT-X-DISCONTINUITY',
        '#EXT-X-MAP:URI="init-bbbb2222.mp4"',
        '#EXTINF:1.50000,',
        'seg-bbbb2222-0.m4s',
        '#EXT-X-ENDLIST',
        '',
      ].join('\n'),
    );
    expect(vod?.duration).toBe(6);
    expect(vod?.size).toBe(600_000 + 1600);
    expect(vod?.renditions).toEqual([
      { name: 'source', width: 1280, height: 720, bandwidth: 1_000_000, averageBandwidth: 800_000, codecs: 'avc1.64001f,mp4a.40.2' },
    ]);
  });

  it('orders variants highest first whatever order the renditions were recorded in', () => {
    const vod = buildVodPlaylists([
      init('360p', 'init-cccc3333.mp4', 360),
      seg('360p', 'seg-cccc3333-0.m4s', 'init-cccc3333.mp4', 2, 100_000),
      init('source', 'init-cccc3333.mp4', 720),
      seg('source', 'seg-cccc3333-0.m4s', 'init-cccc3333.mp4', 2, 400_000),
    ]);
    expect(vod?.master).toBe(
      [
        '#EXTM3U',
        '#EXT-X-INDEPENDENT-SEGMENTS',
        '#EXT-X-STREAM-INF:BANDWIDTH=1600000,AVERAGE-BANDWIDTH=1600000,CODECS="avc1.64001f,mp4a.40.2",RESOLUTION=1280x720',
        'source/index.m3u8',
        '#EXT-X-STREAM-INF:BANDWIDTH=400000,AVERAGE-BANDWIDTH=400000,CODECS="avc1.64001f,mp4a.40.2",RESOLUTION=640x360',
        '360p/index.m3u8',
        '',
      ].join('\n'),
    );
    expect(vod?.input).toEqual({ width: 1280, height: 720 });
  });

  it('drops a leading discontinuity, skips segments without their init and marks the gap they leave', () => {
    const vod = buildVodPlaylists([
      seg('source', 'seg-dddd4444-0.m4s', 'init-dddd4444.mp4', 2, 10, true),
      init('source', 'init-eeee5555.mp4', 720),
      seg('source', 'seg-eeee5555-0.m4s', 'init-eeee5555.mp4', 2, 10, true),
      seg('source', 'seg-eeee5555-1.m4s', 'init-ffff6666.mp4', 2, 10),
      seg('source', 'seg-eeee5555-2.m4s', 'init-eeee5555.mp4', 2, 10),
    ]);
    const text = vod?.media.get('source') ?? '';
    expect(text).not.toContain('seg-dddd4444-0.m4s');
    expect(text).not.toContain('seg-eeee5555-1.m4s');
    expect(text.split('\n').filter((l) => l === '#EXT-X-DISCONTINUITY')).toHaveLength(1);
    expect(text.indexOf('#EXT-X-DISCONTINUITY')).toBeGreaterThan(text.indexOf('seg-eeee5555-0.m4s'));
    expect(vod?.duration).toBe(4);
  });

  it('gives nothing for a recording without a complete segment', () => {
    expect(buildVodPlaylists([])).toBeUndefined();
    expect(buildVodPlaylists([init('source', 'init-aaaa1111.mp4', 720)])).toBeUndefined();
  });

  it('keeps only well-formed manifest entries (names are checked before they become keys)', () => {
    const good = seg('source', 'seg-aaaa1111-0.m4s', 'init-aaaa1111.mp4', 2, 10);
    const entries = parseManifestEntries([
      good,
      init('source', 'init-aaaa1111.mp4', 720),
      { ...good, f: '../../etc/passwd' },
      { ...good, r: 'a/b' },
      { ...good, d: 'long' },
      { ...good, t: 'other' },
      null,
      'text',
    ]);
    expect(entries).toHaveLength(2);
  });
});
