import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { HlsLiveStream } from '../../../src/hls/live-stream.ts';
import type { LiveSegmentEvent } from '../../../src/hls/live-stream.ts';
import type { Mp4Fragment } from '../../../src/media/mp4-types.ts';
import { gops, init } from './fragments.ts';

const golden = (name: string) => readFileSync(new URL(`../../fixtures/hls/${name}`, import.meta.url), 'utf8');
const PREFIX = 'ab12cd34';
const T0 = Date.parse('2024-03-01T12:00:00.000Z');

/** A stream with a controllable clock: each fragment advances it by 250 ms. */
function setup(windowSegments = 3) {
  let clock = T0;
  const stream = new HlsLiveStream({ prefix: PREFIX, segmentTarget: 2, windowSegments, now: () => clock });
  const push = (name: string, fragments: Mp4Fragment[]) => {
    for (const f of fragments) {
      stream.pushFragment(name, f);
      clock += 250;
    }
  };
  return { stream, push, advance: (ms: number) => (clock += ms) };
}

/** `n` 2 s segments of 0.25 s parts with a keyframe every second. */
const segments = (n: number, bytes = 100) => gops(2 * n, 4, 0.25, bytes);

describe('HlsLiveStream', () => {
  it('has no master playlist until every rendition has an init and a segment', () => {
    const { stream, push } = setup();
    stream.addRendition('720p');
    stream.addRendition('360p');
    expect(stream.ready).toBe(false);
    stream.pushInit('720p', init());
    stream.pushInit('360p', init(2, 'avc1.42c01e'));
    push('720p', segments(1)); // still open: no keyframe after it yet
    expect(stream.mediaPlaylist('720p')).toBeUndefined();
    push('720p', gops(1, 1, 0.25, 100, 2));
    expect(stream.mediaPlaylist('720p')).toContain('seg-ab12cd34-0.m4s');
    expect(stream.masterPlaylist()).toBeUndefined();
    push('360p', [...segments(1), ...gops(1, 1, 0.25, 100, 2)]);
    expect(stream.ready).toBe(true);
    expect(stream.masterPlaylist()).toContain('360p/index.m3u8');
  });

  it('renders the LL-HLS media playlist of a live window (golden live-window.m3u8)', () => {
    const { stream, push } = setup();
    stream.addRendition('720p');
    stream.pushInit('720p', init());
    push('720p', [...segments(2), ...gops(1, 1, 0.25, 100, 4)]);
    expect(stream.mediaPlaylist('720p')).toBe(golden('live-window.m3u8'));
  });

  it('slides the window and forgets segments that left it', () => {
    const { stream, push } = setup(3);
    stream.addRendition('720p');
    stream.pushInit('720p', init());
    const fragments = segments(6);
    push('720p', [...fragments, ...gops(1, 1, 0.25)]);
    const playlist = stream.mediaPlaylist('720p')!;
    expect(playlist).toContain('#EXT-X-MEDIA-SEQUENCE:3\n');
    expect(playlist.match(/^seg-/gm)).toHaveLength(3);
    expect(stream.resource('720p', `seg-${PREFIX}-2.m4s`)).toBeUndefined();
    const last = stream.resource('720p', `seg-${PREFIX}-5.m4s`);
    expect(last?.contentType).toBe('video/iso.segment');
    expect(last?.body.equals(Buffer.concat(fragments.slice(40, 48).map((f) => f.data)))).toBe(true);
    // Parts stay addressable, including those of the segment in progress.
    expect(stream.resource('720p', `part-${PREFIX}-5-7.m4s`)?.body.equals(fragments[47]!.data)).toBe(true);
    expect(stream.resource('720p', `part-${PREFIX}-6-0.m4s`)).toBeDefined();
    expect(stream.resource('720p', `part-${PREFIX}-6-1.m4s`)).toBeUndefined();
    expect(stream.resource('720p', `init-${PREFIX}.mp4`)).toEqual({ body: init().data, contentType: 'video/mp4' });
  });

  it.each([
    '../x',
    `../seg-${PREFIX}-4.m4s`,
    `seg-${PREFIX}-99999999999999999999.m4s`,
    `seg-${PREFIX}-04.m4s`,
    `seg-${PREFIX}-4.m4s/`,
    `seg-${PREFIX}-4.m4s?x`,
    `SEG-${PREFIX}-4.m4s`,
    `seg-${PREFIX}--4.m4s`,
    `seg-${PREFIX}-4.mp4`,
    'seg-ffffffff-4.m4s',
    'init-ffffffff.mp4',
    `init-${PREFIX}-0.mp4`,
    `init-${PREFIX}-1.mp4`,
    `part-${PREFIX}-4-99999.m4s`,
    'index.m3u8',
    '',
  ])('resolves nothing for %j', (name) => {
    const { stream, push } = setup(3);
    stream.addRendition('720p');
    stream.pushInit('720p', init());
    push('720p', [...segments(5), ...gops(1, 1, 0.25)]);
    expect(stream.resource('720p', `seg-${PREFIX}-4.m4s`)).toBeDefined(); // the control: the real name works
    expect(stream.resource('720p', name)).toBeUndefined();
  });

  it('resolves nothing for an unknown rendition', () => {
    const { stream } = setup();
    expect(stream.resource('1080p', `init-${PREFIX}.mp4`)).toBeUndefined();
    expect(stream.mediaPlaylist('1080p')).toBeUndefined();
  });

  it('marks a discontinuity and a new EXT-X-MAP when FFmpeg restarts with a new init', () => {
    const { stream, push, advance } = setup(3);
    stream.addRendition('720p');
    stream.pushInit('720p', init(1));
    push('720p', [...segments(1), ...gops(1, 2, 0.25)]); // segment 0 done, segment 1 half a second in
    advance(5000);
    stream.pushInit('720p', init(2));
    push('720p', [...segments(1), ...gops(1, 1, 0.25)]);
    let playlist = stream.mediaPlaylist('720p')!;
    expect(playlist).toContain(
      [
        '#EXTINF:0.50000,',
        'seg-ab12cd34-1.m4s',
        '#EXT-X-DISCONTINUITY',
        '#EXT-X-MAP:URI="init-ab12cd34-1.mp4"',
        '#EXT-X-PROGRAM-DATE-TIME:2024-03-01T12:00:07.500Z',
        '#EXT-X-PART:DURATION=0.25000,URI="part-ab12cd34-2-0.m4s",INDEPENDENT=YES',
      ].join('\n'),
    );
    expect(playlist).toContain('#EXTINF:2.00000,\nseg-ab12cd34-2.m4s\n');
    expect(playlist).not.toContain('DISCONTINUITY-SEQUENCE');
    expect(stream.resource('720p', `init-${PREFIX}.mp4`)?.body.toString()).toBe('init-1');
    expect(stream.resource('720p', `init-${PREFIX}-1.mp4`)?.body.toString()).toBe('init-2');

    // Once the segments before the restart leave the window, so do the old init and the tag.
    push('720p', segments(4));
    playlist = stream.mediaPlaylist('720p')!;
    expect(playlist).toContain('#EXT-X-MEDIA-SEQUENCE:3\n#EXT-X-DISCONTINUITY-SEQUENCE:1\n');
    expect(playlist).not.toContain('#EXT-X-DISCONTINUITY\n');
    expect(stream.resource('720p', `init-${PREFIX}.mp4`)).toBeUndefined();
    expect(stream.resource('720p', `init-${PREFIX}-1.mp4`)).toBeDefined();
  });

  it('keeps the init name when a restart brings identical init bytes, still with a discontinuity', () => {
    const { stream, push } = setup();
    stream.addRendition('720p');
    stream.pushInit('720p', init(1));
    push('720p', segments(1));
    stream.pushInit('720p', init(1));
    push('720p', [...segments(1), ...gops(1, 1, 0.25)]);
    const playlist = stream.mediaPlaylist('720p')!;
    expect(playlist.match(/#EXT-X-MAP/g)).toHaveLength(1);
    expect(playlist).toContain('#EXT-X-DISCONTINUITY\n#EXT-X-PROGRAM-DATE-TIME');
  });

  it('announces measured bandwidth, codecs, resolution and frame rate', () => {
    const { stream, push } = setup(2);
    stream.addRendition('720p', { bandwidthHint: 3_000_000 });
    stream.pushInit('720p', init());
    // Segments of 2 s with 10 000, 25 000 then 20 000 bytes: 40, 100 and 80 kbit/s.
    push('720p', [...segments(1, 1250), ...segments(1, 3125), ...segments(1, 2500), ...gops(1, 1, 0.25)]);
    expect(stream.masterPlaylist()).toBe(
      [
        '#EXTM3U',
        '#EXT-X-INDEPENDENT-SEGMENTS',
        // Peak over the session (100 kbit/s), average over the window of 2 ((100 + 80) / 2).
        '#EXT-X-STREAM-INF:BANDWIDTH=100000,AVERAGE-BANDWIDTH=90000,CODECS="avc1.64001f,mp4a.40.2",RESOLUTION=1280x720,FRAME-RATE=24.000',
        '720p/index.m3u8',
        '',
      ].join('\n'),
    );
  });

  it('end() closes open segments, adds ENDLIST and ignores what comes after', () => {
    const { stream, push } = setup();
    const recorded: LiveSegmentEvent[] = [];
    stream.onSegment((e) => recorded.push(e));
    stream.addRendition('720p');
    stream.pushInit('720p', init());
    push('720p', [...segments(1), ...gops(1, 3, 0.25)]);
    expect(recorded.map((e) => e.segment.msn)).toEqual([0]);
    stream.end();
    stream.end();
    expect(recorded.map((e) => [e.rendition, e.segment.msn, e.segment.duration, e.init.name])).toEqual([
      ['720p', 0, 2, `init-${PREFIX}.mp4`],
      ['720p', 1, 0.75, `init-${PREFIX}.mp4`],
    ]);
    push('720p', segments(2));
    const playlist = stream.mediaPlaylist('720p')!;
    expect(playlist.endsWith('#EXTINF:0.75000,\nseg-ab12cd34-1.m4s\n#EXT-X-ENDLIST\n')).toBe(true);
    expect(recorded).toHaveLength(2);
  });

  it('validates names and options', () => {
    expect(() => new HlsLiveStream({ prefix: '../', segmentTarget: 2, windowSegments: 3 })).toThrow(RangeError);
    expect(() => new HlsLiveStream({ prefix: PREFIX, segmentTarget: 2, windowSegments: 0 })).toThrow(RangeError);
    const { stream } = setup();
    expect(() => stream.addRendition('../720p')).toThrow(RangeError);
    stream.addRendition('720p');
    expect(() => stream.addRendition('720p')).toThrow();
    expect(() => stream.pushFragment('720p', gops(1, 1, 0.25)[0]!)).toThrow(/before init/);
    expect(() => stream.pushInit('nope', init())).toThrow(/unknown rendition/);
  });
});
