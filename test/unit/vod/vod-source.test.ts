import { describe, it, expect } from 'vitest';
import { parseMasterRenditions, parseMediaSegments, segmentsCovering } from '../../../src/vod/vod-source.ts';
import { decodableRuns } from '../../../src/vod/downloads.ts';
import { pickRendition } from '../../../src/vod/thumbnails.ts';
import { Semaphore, SemaphoreFullError } from '../../../src/lib/semaphore.ts';

const MASTER = `#EXTM3U
#EXT-X-VERSION:7
#EXT-X-STREAM-INF:BANDWIDTH=300000,AVERAGE-BANDWIDTH=250000,RESOLUTION=320x180,CODECS="avc1.64000d"
180p/index.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=1500000,RESOLUTION=1280x720
720p/index.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=5000000,RESOLUTION=3840x2160
source/index.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=1
../../etc/index.m3u8
`;

const MEDIA = `#EXTM3U
#EXT-X-PLAYLIST-TYPE:VOD
#EXT-X-MAP:URI="init-aaaa.mp4"
#EXTINF:2.000,
seg-aaaa-0.m4s
#EXTINF:2.000,
seg-aaaa-1.m4s
#EXTINF:1.500,
../escape.m4s
#EXT-X-DISCONTINUITY
#EXT-X-MAP:URI="init-bbbb.mp4"
#EXTINF:2.000,
seg-bbbb-0.m4s
#EXTINF:1.000,
seg-bbbb-1.m4s
#EXT-X-ENDLIST
`;

describe('VOD source parsing', () => {
  it('reads the renditions of a master playlist, highest first, and skips foreign URIs', () => {
    expect(parseMasterRenditions(MASTER).map((r) => `${r.name} ${r.width}x${r.height} ${r.bandwidth}`)).toEqual([
      'source 3840x2160 5000000',
      '720p 1280x720 1500000',
      '180p 320x180 300000',
    ]);
  });

  it('reads segments with start times, inits and discontinuities; unsafe names are skipped', () => {
    const segs = parseMediaSegments(MEDIA);
    expect(segs.map((s) => [s.uri, s.map, s.start, s.duration, s.discontinuity])).toEqual([
      ['seg-aaaa-0.m4s', 'init-aaaa.mp4', 0, 2, false],
      ['seg-aaaa-1.m4s', 'init-aaaa.mp4', 2, 2, false],
      ['seg-bbbb-0.m4s', 'init-bbbb.mp4', 4, 2, true],
      ['seg-bbbb-1.m4s', 'init-bbbb.mp4', 6, 1, false],
    ]);
  });

  it('finds the segments covering a span without crossing a discontinuity', () => {
    const segs = parseMediaSegments(MEDIA);
    expect(segmentsCovering(segs, 0, 0.001).map((s) => s.uri)).toEqual(['seg-aaaa-0.m4s']);
    expect(segmentsCovering(segs, 2, 0.001).map((s) => s.uri)).toEqual(['seg-aaaa-1.m4s']);
    expect(segmentsCovering(segs, 1, 5).map((s) => s.uri)).toEqual(['seg-aaaa-0.m4s', 'seg-aaaa-1.m4s']);
    expect(segmentsCovering(segs, 4.5, 10).map((s) => s.uri)).toEqual(['seg-bbbb-0.m4s', 'seg-bbbb-1.m4s']);
    expect(segmentsCovering(segs, 99, 1).map((s) => s.uri)).toEqual(['seg-bbbb-1.m4s']);
    expect(segmentsCovering([], 0, 1)).toEqual([]);
  });

  it('splits a rendition into runs that concatenate as one file', () => {
    expect(decodableRuns(parseMediaSegments(MEDIA)).map((run) => run.map((s) => s.uri))).toEqual([
      ['seg-aaaa-0.m4s', 'seg-aaaa-1.m4s'],
      ['seg-bbbb-0.m4s', 'seg-bbbb-1.m4s'],
    ]);
  });

  it('picks the smallest rendition that is tall enough, never above 1080 lines when another exists', () => {
    const r = parseMasterRenditions(MASTER);
    expect(pickRendition(r, 90).name).toBe('180p');
    expect(pickRendition(r, 400).name).toBe('720p');
    expect(pickRendition(r, undefined).name).toBe('720p');
    expect(pickRendition(r, 2000).name).toBe('720p');
    expect(pickRendition(r.filter((x) => x.name === 'source'), 90).name).toBe('source');
  });
});

describe('Semaphore', () => {
  it('bounds concurrency and refuses past its wait list', async () => {
    const sem = new Semaphore(2, 1);
    let running = 0;
    let peak = 0;
    const releases: Array<() => void> = [];
    const task = () =>
      sem.run(async () => {
        running++;
        peak = Math.max(peak, running);
        await new Promise<void>((resolve) => releases.push(resolve));
        running--;
      });
    const a = task();
    const b = task();
    const c = task();
    expect(sem.full).toBe(true);
    await expect(task()).rejects.toBeInstanceOf(SemaphoreFullError);
    await Promise.resolve();
    releases.shift()?.();
    await a;
    await new Promise((r) => setImmediate(r));
    releases.shift()?.();
    releases.shift()?.();
    await Promise.all([b, c]);
    expect(peak).toBe(2);
    expect(sem.active).toBe(0);
  });
});
