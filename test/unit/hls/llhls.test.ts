import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { HlsLiveStream } from '../../../src/hls/live-stream.ts';
import { fragment } from './fragments.ts';

const golden = (name: string) => readFileSync(new URL(`../../fixtures/hls/${name}`, import.meta.url), 'utf8');
const PREFIX = 'ab12cd34';
const T0 = Date.parse('2024-03-01T12:00:00.000Z');
const part = (msn: number, index: number) => `part-${PREFIX}-${msn}-${index}.m4s`;

/**
 * Two renditions fed in lockstep: 0.25 s parts, a keyframe every second, 2 s segments, so each
 * segment has 8 parts. `parts(n)` adds n parts to both renditions (720p first).
 */
function setup(windowSegments = 10) {
  let clock = T0;
  let t = 0;
  const stream = new HlsLiveStream({ prefix: PREFIX, segmentTarget: 2, partTarget: 0.25, windowSegments, now: () => clock });
  stream.addRendition('720p');
  stream.addRendition('360p');
  stream.pushInit('720p', { data: Buffer.from('init-720'), tracks: [] });
  stream.pushInit('360p', { data: Buffer.from('init-360'), tracks: [] });
  const parts = (n: number) => {
    for (let i = 0; i < n; i++) {
      const independent = Math.round(t * 4) % 4 === 0;
      for (const name of ['720p', '360p'] as const) stream.pushFragment(name, fragment(0.25, independent, 50, 0, t));
      t += 0.25;
      clock += 250;
    }
  };
  return { stream, parts };
}

describe('LL-HLS media playlists', () => {
  it('lists parts for the last three target durations, the hint and the sibling report (golden ll-live.m3u8)', () => {
    const { stream, parts } = setup();
    parts(7 * 8 + 3); // segments 0–6 complete, segment 7 has 3 parts
    expect(stream.mediaPlaylist('720p')).toBe(golden('ll-live.m3u8'));
    // Every rendition announces the same server control and target duration (6.2.4).
    const header = (text: string) => text.split('\n').slice(0, 5);
    expect(header(stream.mediaPlaylist('360p')!)).toEqual(header(stream.mediaPlaylist('720p')!));
  });

  it('answers _HLS_skip=YES with a delta update past the skip boundary (golden ll-delta.m3u8)', () => {
    const { stream, parts } = setup();
    parts(9 * 8 + 2); // segments 0–8, 18 s: those ending 12 s or more before the last one's end go
    expect(stream.mediaPlaylist('720p', 'YES')).toBe(golden('ll-delta.m3u8'));
  });

  it('answers _HLS_skip=v2 with RECENTLY-REMOVED-DATERANGES and version 10 (golden ll-delta-v2.m3u8)', () => {
    const { stream, parts } = setup();
    parts(9 * 8 + 2);
    expect(stream.mediaPlaylist('720p', 'v2')).toBe(golden('ll-delta-v2.m3u8'));
    const yes = stream.mediaPlaylist('720p', 'YES')!;
    expect(stream.mediaPlaylist('720p', 'v2')!.replace('#EXT-X-VERSION:10', '#EXT-X-VERSION:9')).toBe(
      yes.replace('SKIPPED-SEGMENTS=3', 'SKIPPED-SEGMENTS=3,RECENTLY-REMOVED-DATERANGES=""'),
    );
  });

  it('sends the whole playlist for _HLS_skip when nothing is old enough to skip', () => {
    const { stream, parts } = setup();
    parts(6 * 8 + 1); // 12 s of complete segments: the first ends 10 s before the last one's end
    expect(stream.mediaPlaylist('720p', 'YES')).toBe(stream.mediaPlaylist('720p'));
    expect(stream.mediaPlaylist('720p', 'YES')).not.toContain('EXT-X-SKIP');
  });

  it('hints the next part, and part 0 of the next segment once the segment is long enough', () => {
    const { stream, parts } = setup();
    parts(8 + 7); // segment 1 has parts 0–6 (1.75 s)
    expect(stream.mediaPlaylist('720p')).toContain(`#EXT-X-PRELOAD-HINT:TYPE=PART,URI="${part(1, 7)}"\n`);
    parts(1); // 2 s: the next keyframe part opens segment 2
    let text = stream.mediaPlaylist('720p')!;
    expect(text).toContain(`#EXT-X-PART:DURATION=0.25000,URI="${part(1, 7)}"\n#EXT-X-PRELOAD-HINT:TYPE=PART,URI="${part(2, 0)}"\n`);
    parts(1);
    text = stream.mediaPlaylist('720p')!;
    expect(text).toContain(`#EXTINF:2.00000,\nseg-${PREFIX}-1.m4s\n`);
    expect(text).toContain(`#EXT-X-PART:DURATION=0.25000,URI="${part(2, 0)}",INDEPENDENT=YES\n#EXT-X-PRELOAD-HINT:TYPE=PART,URI="${part(2, 1)}"\n`);
    expect(text).toContain(`#EXT-X-RENDITION-REPORT:URI="../360p/index.m3u8",LAST-MSN=2,LAST-PART=0\n`);
  });

  it('after end(): no hint, ENDLIST, directives ignored (golden ll-ended.m3u8)', () => {
    const { stream, parts } = setup(3);
    parts(3 * 8 + 3);
    stream.end();
    expect(stream.mediaPlaylist('720p')).toBe(golden('ll-ended.m3u8'));
    expect(stream.mediaPlaylist('720p', 'YES')).toBe(golden('ll-ended.m3u8'));
    expect(stream.blockingState('720p', 1000)).toBe('ready');
  });
});

describe('blocking reload state', () => {
  // Segments 0–9 complete (8 parts each), segment 10 open with parts 0–2; window of 4 (7–10).
  const { stream, parts } = setup(4);
  parts(10 * 8 + 3);

  it.each([
    [9, undefined, 'ready'],
    [10, undefined, 'wait'], // a segment is there once complete
    [10, 2, 'ready'],
    [10, 3, 'wait'],
    [10, 14, 'wait'], // 12 parts ahead: the Advance Part Limit (3 / 0.25) allows it
    [10, 15, 'too-far'],
    [11, 0, 'wait'],
    [11, 11, 'wait'],
    [11, 12, 'too-far'],
    [11, undefined, 'wait'],
    [12, undefined, 'too-far'], // more than two segments past the last complete one (9)
    [Number.MAX_SAFE_INTEGER, 0, 'too-far'],
    [9, 7, 'ready'],
    [9, 8, 'ready'], // past the last part of segment 9: part 0 of segment 10, which exists
    [2, 5, 'ready'], // left the window: answered at once with the whole playlist
    [0, undefined, 'ready'],
  ] as const)('msn %s part %s is %s', (msn, p, expected) => {
    expect(stream.blockingState('720p', msn, p)).toBe(expected);
  });

  it('treats a part past the end of a complete segment as part 0 of the next', () => {
    const s = setup();
    s.parts(8 + 8); // segment 1 has 8 parts; it closes with the next keyframe
    expect(s.stream.blockingState('720p', 1, 8)).toBe('wait');
    s.parts(1);
    expect(s.stream.blockingState('720p', 1, 8)).toBe('ready');
    expect(s.stream.blockingState('720p', 1, 9)).toBe('ready');
    expect(s.stream.blockingState('720p', 2, 1)).toBe('wait');
  });

  it('knows no unknown rendition', () => {
    expect(stream.blockingState('1080p', 1)).toBeUndefined();
    void parts;
  });
});

describe('held requests', () => {
  it('releases a playlist waiter when its part arrives, not before', async () => {
    const { stream, parts } = setup();
    parts(8 + 2);
    let done = false;
    const waiting = stream.waitForPlaylist('720p', 1, 2).then((r) => ((done = true), r));
    stream.pushFragment('360p', fragment(0.25, false, 50, 0, 2.5)); // another rendition's part does not count
    await Promise.resolve();
    expect(done).toBe(false);
    expect(stream.waiterCount).toBe(1);
    stream.pushFragment('720p', fragment(0.25, false, 50, 0, 2.5));
    await expect(waiting).resolves.toBe('ready');
    expect(stream.waiterCount).toBe(0);
    expect(stream.mediaPlaylist('720p')).toContain(part(1, 2));
  });

  it('releases every waiter at end() with the final playlist', async () => {
    const { stream, parts } = setup();
    parts(9);
    const waits = [stream.waitForPlaylist('720p', 3), stream.waitForPlaylist('360p', 1, 5)];
    const hinted = stream.waitForPart('720p', part(1, 1));
    expect(stream.waiterCount).toBe(3);
    stream.end();
    // The hinted part settles first: end() closes its segment without it (the origin then 404s).
    await expect(Promise.all([...waits, hinted])).resolves.toEqual(['released', 'released', 'ready']);
    expect(stream.resource('720p', part(1, 1))).toBeUndefined();
    expect(stream.waiterCount).toBe(0);
    expect(stream.mediaPlaylist('720p')).toContain('#EXT-X-ENDLIST');
  });

  it('frees a waiter at once when its signal aborts', async () => {
    const { stream, parts } = setup();
    parts(9);
    const controllers = [new AbortController(), new AbortController()];
    const waits = controllers.map((c) => stream.waitForPlaylist('720p', 1, 4, c.signal));
    expect(stream.waiterCount).toBe(2);
    controllers[0]!.abort(new Error('gone'));
    await expect(waits[0]).rejects.toThrow('gone');
    expect(stream.waiterCount).toBe(1);
    controllers[1]!.abort(new Error('gone too'));
    await expect(waits[1]).rejects.toThrow('gone too');
    expect(stream.waiterCount).toBe(0);
  });

  it('holds the hinted part until it exists, and 404s what cannot be next', async () => {
    const { stream, parts } = setup();
    parts(8 + 1); // segment 1 has part 0
    expect(stream.waitForPart('720p', part(1, 0))).toBeUndefined(); // exists: no wait
    expect(stream.waitForPart('720p', part(1, 2))).toBeUndefined(); // beyond the hint
    expect(stream.waitForPart('720p', part(3, 0))).toBeUndefined();
    expect(stream.waitForPart('720p', `part-ffffffff-1-1.m4s`)).toBeUndefined();
    const next = stream.waitForPart('720p', part(1, 1));
    expect(next).toBeDefined();
    expect(stream.resource('720p', part(1, 1))).toBeUndefined();
    parts(1);
    await expect(next).resolves.toBe('ready');
    expect(stream.resource('720p', part(1, 1))?.contentType).toBe('video/iso.segment');
  });

  it('settles a hinted part that never comes (the segment closed first); the resource stays absent', async () => {
    const { stream, parts } = setup();
    parts(8 + 8); // segment 1 is 2 s long: the hint is part 2.0, but part 1.8 may come as well
    const unlikely = stream.waitForPart('720p', part(1, 8));
    const hinted = stream.waitForPart('720p', part(2, 0));
    parts(1); // a keyframe: segment 1 closes with 8 parts
    await expect(unlikely).resolves.toBe('ready');
    await expect(hinted).resolves.toBe('ready');
    expect(stream.resource('720p', part(1, 8))).toBeUndefined();
    expect(stream.resource('720p', part(2, 0))).toBeDefined();
    expect(stream.waiterCount).toBe(0);
  });
});
