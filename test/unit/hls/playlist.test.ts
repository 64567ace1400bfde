import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { renderMasterPlaylist, renderMediaPlaylist } from '../../../src/hls/playlist.ts';
import type { MediaPlaylistModel, PlaylistPart, PlaylistSegment } from '../../../src/hls/playlist.ts';

const golden = (name: string) => readFileSync(new URL(`../../fixtures/hls/${name}`, import.meta.url), 'utf8');

const T0 = Date.parse('2024-03-01T12:00:00.000Z');
const init = 'init-ab12cd34.mp4';
const seg = (msn: number, duration: number, offsetMs: number, extra: Partial<PlaylistSegment> = {}): PlaylistSegment => ({
  uri: `seg-ab12cd34-${msn}.m4s`,
  duration,
  mapUri: init,
  programDateTime: T0 + offsetMs,
  ...extra,
});
const part = (msn: number, index: number, duration: number, independent = index === 0): PlaylistPart => ({
  uri: `part-ab12cd34-${msn}-${index}.m4s`,
  duration,
  independent,
});
const llBase: Omit<MediaPlaylistModel, 'segments'> = {
  mediaSequence: 100,
  targetDuration: 2,
  partTarget: 0.5,
  serverControl: { canBlockReload: true, partHoldBack: 1.5, canSkipUntil: 12 },
};

describe('renderMediaPlaylist', () => {
  it('renders a live window (golden live.m3u8)', () => {
    const text = renderMediaPlaylist({
      mediaSequence: 5,
      targetDuration: 2,
      segments: [seg(5, 2, 0), seg(6, 2, 2000), seg(7, 59 / 30, 4017)],
    });
    expect(text).toBe(golden('live.m3u8'));
  });

  it('renders an ended stream with a discontinuity and a new init (golden ended-discontinuity.m3u8)', () => {
    const text = renderMediaPlaylist({
      mediaSequence: 20,
      discontinuitySequence: 2,
      targetDuration: 2,
      playlistType: 'VOD',
      endList: true,
      segments: [
        seg(20, 2, 0, { mapUri: 'init-ab12cd34-2.mp4' }),
        seg(21, 0.5, 2000, { mapUri: 'init-ab12cd34-2.mp4' }),
        seg(22, 2.4, 7250, { mapUri: 'init-ab12cd34-3.mp4', discontinuity: true }),
      ],
    });
    expect(text).toBe(golden('ended-discontinuity.m3u8'));
  });

  it('renders LL-HLS parts, preload hint and rendition reports (golden low-latency.m3u8)', () => {
    const text = renderMediaPlaylist({
      ...llBase,
      segments: [
        seg(100, 2, 0),
        seg(101, 2, 2000, { parts: [part(101, 0, 0.5), part(101, 1, 0.5), part(101, 2, 0.5), part(101, 3, 0.5)] }),
      ],
      openParts: [part(102, 0, 0.5), part(102, 1, 0.48)],
      preloadHint: { type: 'PART', uri: 'part-ab12cd34-102-2.m4s' },
      renditionReports: [
        { uri: '../360p/index.m3u8', lastMsn: 102, lastPart: 1 },
        { uri: '../1080p/index.m3u8', lastMsn: 102, lastPart: 0 },
      ],
    });
    expect(text).toBe(golden('low-latency.m3u8'));
  });

  it('renders a delta update with EXT-X-SKIP and version 9 (golden delta-skip.m3u8)', () => {
    const text = renderMediaPlaylist({
      ...llBase,
      skippedSegments: 6,
      segments: [seg(106, 2, 12000)],
      openParts: [part(107, 0, 0.5)],
      preloadHint: { type: 'PART', uri: 'part-ab12cd34-107-1.m4s' },
    });
    expect(text).toBe(golden('delta-skip.m3u8'));
  });

  it.each([
    [[2, 2.6], 2, 3],
    [[2, 2.4], 2, 2], // the spec rounds to the nearest integer
    [[2.0000004, 1.9], 2, 2], // rendered as 2.00000: no reason to announce 3
    [[1.2], 4, 4], // the configured target is a floor, kept stable across reloads
    [[6.5, 2], undefined, 7],
  ])('EXT-X-TARGETDURATION for segments %j and target %s is %i', (durations, targetDuration, expected) => {
    const text = renderMediaPlaylist({
      mediaSequence: 0,
      targetDuration,
      segments: durations.map((d, i) => seg(i, d, i * 2000)),
    });
    expect(text).toContain(`\n#EXT-X-TARGETDURATION:${expected}\n`);
  });

  it('puts EXT-X-MAP before the open parts when the new init has no complete segment yet', () => {
    const text = renderMediaPlaylist({
      mediaSequence: 3,
      segments: [seg(3, 2, 0)],
      openMapUri: 'init-ab12cd34-1.mp4',
      openParts: [part(4, 0, 0.5)],
    });
    expect(text.split('\n').slice(-3)).toEqual([
      '#EXT-X-MAP:URI="init-ab12cd34-1.mp4"',
      '#EXT-X-PART:DURATION=0.50000,URI="part-ab12cd34-4-0.m4s",INDEPENDENT=YES',
      '',
    ]);
  });

  it('refuses values that would break the playlist syntax', () => {
    expect(() => renderMediaPlaylist({ mediaSequence: 0, segments: [seg(0, 2, 0, { uri: 'a\n#EXT-X-ENDLIST' })] })).toThrow(
      RangeError,
    );
    expect(() => renderMediaPlaylist({ mediaSequence: 0, segments: [seg(0, 2, 0, { mapUri: 'x".mp4' })] })).toThrow(
      RangeError,
    );
    expect(() => renderMediaPlaylist({ mediaSequence: -1, segments: [] })).toThrow(RangeError);
  });
});

describe('renderMasterPlaylist', () => {
  it('renders variants with quoted CODECS and bare numbers (golden master.m3u8)', () => {
    const text = renderMasterPlaylist({
      variants: [
        {
          uri: '1080p/index.m3u8',
          bandwidth: 5_400_000,
          averageBandwidth: 4_500_000,
          codecs: ['avc1.640028', 'mp4a.40.2'],
          resolution: { width: 1920, height: 1080 },
          frameRate: 30,
        },
        {
          uri: '720p/index.m3u8',
          bandwidth: 2_700_000.4, // measured rates are fractional; BANDWIDTH must be an integer, rounded up
          averageBandwidth: 2_000_000,
          codecs: ['avc1.64001f', 'mp4a.40.2'],
          resolution: { width: 1280, height: 720 },
          frameRate: 30000 / 1001,
        },
        { uri: 'audio/index.m3u8', bandwidth: 64_000, codecs: ['mp4a.40.2'] },
      ],
    });
    expect(text).toBe(golden('master.m3u8'));
  });
});
