import { describe, expect, it } from 'vitest';
import { HlsLiveStream } from '../../../src/hls/live-stream.ts';
import type { Mp4Fragment } from '../../../src/media/mp4-types.ts';
import { fragment, init } from './fragments.ts';
import { mulberry32 } from '../../helpers/prng.ts';

const PREFIX = 'ab12cd34';
const NAMES = ['source', '720p', '360p'] as const;

/**
 * 20 s of media per rendition with keyframes every 1.5 s (a GOP that does not divide the 2 s
 * target, so cut decisions depend on it). Renditions differ the way FFmpeg outputs do: the
 * copied source's keyframes decode 2 frames earlier (B-frames), fragment edges are shifted, and
 * the 360p output starts mid-GOP (its first fragment is not a keyframe).
 */
function renditionFragments(name: (typeof NAMES)[number]): Mp4Fragment[] {
  const out: Mp4Fragment[] = [];
  const shift = name === 'source' ? -2 / 30 : 0;
  const partLength = name === '720p' ? 0.3 : 0.25;
  for (let gop = 0; gop * 1.5 < 20; gop++) {
    let t = gop * 1.5;
    const end = t + 1.5;
    let first = true;
    while (t < end - 1e-9) {
      const d = Math.min(partLength, end - t);
      if (!(name === '360p' && gop === 0)) out.push(fragment(d, first, 40, 0, t + shift));
      first = false;
      t += d;
    }
  }
  return out;
}

function feed(order: 'lockstep' | number): HlsLiveStream {
  let clock = 1_700_000_000_000;
  const stream = new HlsLiveStream({ prefix: PREFIX, segmentTarget: 2, partTarget: 0.25, windowSegments: 20, now: () => clock });
  for (const name of NAMES) {
    stream.addRendition(name);
    stream.pushInit(name, init());
  }
  const queues = NAMES.map((name) => ({ name, fragments: renditionFragments(name) }));
  const next = typeof order === 'number' ? mulberry32(order) : undefined;
  let turn = 0;
  while (queues.some((q) => q.fragments.length > 0)) {
    const live = queues.filter((q) => q.fragments.length > 0);
    // In arbitrary order: any rendition may run ahead by several fragments.
    const q = next ? live[Math.floor(next() * live.length)]! : live[turn++ % live.length]!;
    stream.pushFragment(q.name, q.fragments.shift()!);
    clock += 40;
  }
  stream.end();
  return stream;
}

/** Segment list of a rendition as `msn:startOfPDT`, read from its playlist. */
function segmentsOf(stream: HlsLiveStream, name: string): string[] {
  const text = stream.mediaPlaylist(name)!;
  const pdts = [...text.matchAll(/#EXT-X-PROGRAM-DATE-TIME:(\S+)/g)].map((m) => m[1]);
  const msns = [...text.matchAll(new RegExp(`^seg-${PREFIX}-(\\d+)\\.m4s$`, 'gm'))].map((m) => Number(m[1]));
  return msns.map((msn, i) => `${msn}@${pdts[i]}`);
}

function durationsOf(stream: HlsLiveStream, name: string): string[] {
  return [...stream.mediaPlaylist(name)!.matchAll(/#EXTINF:([\d.]+),/g)].map((m) => Number(m[1]).toFixed(1));
}

describe('rendition alignment', () => {
  it('cuts every rendition where the leader cut, with its MSN and program date time', () => {
    const stream = feed('lockstep');
    const source = segmentsOf(stream, 'source');
    // 1.5 s GOPs against a 2 s target: cuts at 0, 3, 6, … (every second keyframe).
    expect(durationsOf(stream, 'source').slice(0, 3)).toEqual(['3.0', '3.0', '3.0']);
    expect(segmentsOf(stream, '720p')).toEqual(source);
    // 360p has no keyframe at 0, so it starts with the leader's segment 1.
    expect(segmentsOf(stream, '360p')).toEqual(source.slice(1));
  });

  it.each([1, 2, 3, 42, 1234])('holds when fragments arrive interleaved in arbitrary order (seed %i)', (seed) => {
    const reference = feed('lockstep');
    const stream = feed(seed);
    const source = segmentsOf(stream, 'source').map((s) => s.split('@')[0]);
    expect(source).toEqual(segmentsOf(reference, 'source').map((s) => s.split('@')[0]));
    for (const name of ['720p', '360p']) {
      const follower = segmentsOf(stream, name);
      const leader = segmentsOf(stream, 'source');
      expect(follower).toEqual(name === '360p' ? leader.slice(1) : leader);
      expect(durationsOf(stream, name).slice(0, -1)).toEqual(durationsOf(reference, name).slice(0, -1));
    }
  });

  it('lists a follower part that does not start with a keyframe at once, ahead of the leader', () => {
    // FFmpeg cuts a short part before each keyframe (here 1.9 s → 2 s). A transcoded follower may
    // deliver it before the leader has anything past 1.9 s; it cannot open a segment, so it must
    // not wait for the leader's next part.
    const stream = new HlsLiveStream({ prefix: PREFIX, segmentTarget: 1, partTarget: 0.3, windowSegments: 20 });
    const gop = (t: number) => [fragment(0.3, true, 40, 0, t), fragment(0.3, false, 40, 0, t + 0.3), fragment(0.3, false, 40, 0, t + 0.6),
      fragment(0.1, false, 40, 0, t + 0.9)];
    const [first, second] = [gop(0), gop(1)];
    for (const name of ['source', '360p']) {
      stream.addRendition(name);
      stream.pushInit(name, init());
      // Segment 0 (0–1 s) complete, segment 1 open with its first part.
      for (const f of [...first, second[0]!]) stream.pushFragment(name, f);
    }
    stream.pushFragment('source', second[1]!);
    stream.pushFragment('source', second[2]!);
    for (const f of second.slice(1)) stream.pushFragment('360p', f);
    expect(stream.blockingState('source', 1, 3)).toBe('wait');
    expect(stream.blockingState('360p', 1, 3)).toBe('ready');
    // The leader catches up and cuts at 2 s; the follower still cuts where it did.
    stream.pushFragment('source', second[3]!);
    stream.pushFragment('source', fragment(0.3, true, 40, 0, 2));
    stream.pushFragment('360p', fragment(0.3, true, 40, 0, 2));
    expect(segmentsOf(stream, '360p')).toEqual(segmentsOf(stream, 'source'));
    expect(durationsOf(stream, '360p')).toEqual(['1.0', '1.0']);
  });

  it('would drift without alignment: a rendition segmented on its own starts its MSNs elsewhere', () => {
    // The control for the tests above: the 360p fragments alone, as the only (leader) rendition.
    const stream = new HlsLiveStream({ prefix: PREFIX, segmentTarget: 2, windowSegments: 20 });
    stream.addRendition('360p');
    stream.pushInit('360p', init());
    for (const f of renditionFragments('360p')) stream.pushFragment('360p', f);
    stream.end();
    const alone = durationsOf(stream, '360p');
    // Its segment 0 starts at 1.5 s, where the leader's segment 0 starts at 0 s and its 1 at 3 s.
    expect(alone[0]).toBe('3.0');
    expect(segmentsOf(stream, '360p')[0]!.startsWith('0@')).toBe(true);
    expect(segmentsOf(feed('lockstep'), '360p')[0]!.startsWith('1@')).toBe(true);
  });
});
