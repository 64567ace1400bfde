import { describe, expect, it } from 'vitest';
import { Segmenter } from '../../../src/hls/segmenter.ts';
import type { Segment, SegmenterEvent } from '../../../src/hls/segmenter.ts';
import { fragment, gops } from './fragments.ts';

function pushAll(segmenter: Segmenter, fragments: ReturnType<typeof gops>, startMs = 1_700_000_000_000): SegmenterEvent[] {
  const events: SegmenterEvent[] = [];
  fragments.forEach((f, i) => events.push(...segmenter.push(f, startMs + i * 250)));
  return events;
}

function segments(events: SegmenterEvent[]): Segment[] {
  return events.flatMap((e) => (e.type === 'segment' ? [e.segment] : []));
}

describe('Segmenter', () => {
  it('turns every fragment into a part and cuts 2 s segments at keyframes', () => {
    const s = new Segmenter({ targetSegmentDuration: 2 });
    const events = pushAll(s, gops(5, 4, 0.25)); // 1 s GOPs
    const closed = segments(events);
    expect(closed.map((seg) => seg.msn)).toEqual([0, 1]);
    for (const seg of closed) {
      expect(seg.duration).toBeCloseTo(2, 9);
      expect(seg.parts.map((p) => p.index)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
      expect(seg.parts.map((p) => p.independent)).toEqual([true, false, false, false, true, false, false, false]);
    }
    expect(events.filter((e) => e.type === 'part')).toHaveLength(20);
    expect(s.openSegment).toMatchObject({ msn: 2 });
    expect(s.openSegment?.parts).toHaveLength(4);
  });

  it('emits the closed segment before the first part of the next one', () => {
    const s = new Segmenter({ targetSegmentDuration: 1 });
    const events = pushAll(s, gops(2, 2, 0.5));
    expect(events.map((e) => (e.type === 'part' ? `p${e.msn}.${e.partIndex}` : `s${e.segment.msn}`))).toEqual([
      'p0.0',
      'p0.1',
      's0',
      'p1.0',
      'p1.1',
    ]);
  });

  it('drops parts before the first keyframe', () => {
    const s = new Segmenter({ targetSegmentDuration: 2 });
    const events = pushAll(s, [fragment(0.25, false), fragment(0.25, false), ...gops(1, 4, 0.25)]);
    const parts = events.filter((e) => e.type === 'part');
    expect(parts).toHaveLength(4);
    expect(parts[0]).toMatchObject({ msn: 0, partIndex: 0, part: { independent: true } });
  });

  it('never cuts at a non-independent part, so a long GOP makes a long segment', () => {
    const s = new Segmenter({ targetSegmentDuration: 2 });
    const closed = segments(pushAll(s, gops(5, 6, 0.25))); // 1.5 s GOPs
    expect(closed.map((seg) => seg.duration)).toEqual([3, 3]);
  });

  it('accepts a segment a float hair short of the target', () => {
    // Ten 0.1 s parts sum to 0.9999999999999999 in floating point.
    const s = new Segmenter({ targetSegmentDuration: 1 });
    const closed = segments(pushAll(s, gops(3, 10, 0.1)));
    expect(closed).toHaveLength(2);
    expect(closed[0]!.parts).toHaveLength(10);
  });

  it('stamps the wall clock of the first part and concatenates the bytes', () => {
    const s = new Segmenter({ targetSegmentDuration: 1 });
    const input = gops(3, 4, 0.25, 50);
    const closed = segments(pushAll(s, input, 1_000));
    expect(closed.map((seg) => seg.programDateTime)).toEqual([1_000, 2_000]); // 4 fragments × 250 ms apart
    const first = closed[0]!;
    expect(first.byteSize).toBe(200);
    expect(first.data.equals(Buffer.concat(input.slice(0, 4).map((f) => f.data)))).toBe(true);
    first.parts.forEach((p, i) => expect(p.data.equals(input[i]!.data)).toBe(true));
  });

  it('flush closes a short open segment and waits for a keyframe again, keeping MSNs', () => {
    const s = new Segmenter({ targetSegmentDuration: 2, firstMsn: 7 });
    pushAll(s, gops(1, 3, 0.25));
    const flushed = segments(s.flush());
    expect(flushed).toHaveLength(1);
    expect(flushed[0]).toMatchObject({ msn: 7, duration: 0.75 });
    expect(s.flush()).toEqual([]);
    expect(s.push(fragment(0.25, false), 0)).toEqual([]);
    const [next] = s.push(fragment(0.25, true), 0);
    expect(next).toMatchObject({ type: 'part', msn: 8, partIndex: 0 });
  });

  it('rejects a non-positive target', () => {
    expect(() => new Segmenter({ targetSegmentDuration: 0 })).toThrow(RangeError);
  });
});

describe('Segmenter with a part target: the 85 % rule (rfc8216bis 4.4.4.9)', () => {
  it('ends a segment early when the part before a keyframe is short, never leaving it mid-segment', () => {
    // 1 s GOPs of 30 frames cut into parts of 7 frames: 7,7,7,7,2 — the 2-frame part precedes a keyframe.
    const s = new Segmenter({ targetSegmentDuration: 2, partTarget: 0.25 });
    const segments: Segment[] = [];
    for (let gop = 0; gop < 4; gop++) {
      [7, 7, 7, 7, 2].forEach((frames, i) => {
        for (const e of s.push(fragment(frames / 30, i === 0), 0)) if (e.type === 'segment') segments.push(e.segment);
      });
    }
    expect(segments.length).toBe(3); // the 4th GOP is still open
    for (const segment of segments) {
      // Every part but the first (independent) and the last is at least 85 % of PART-TARGET.
      for (const p of segment.parts.slice(1, -1)) expect(p.duration).toBeGreaterThanOrEqual(0.85 * 0.25);
      expect(segment.parts.at(-1)!.duration).toBeCloseTo(2 / 30, 5);
    }
  });

  it('keeps 2 s segments when parts divide the GOP evenly', () => {
    const s = new Segmenter({ targetSegmentDuration: 2, partTarget: 0.2 });
    const segments: Segment[] = [];
    for (let gop = 0; gop < 5; gop++) {
      for (let i = 0; i < 5; i++) for (const e of s.push(fragment(0.2, i === 0), 0)) if (e.type === 'segment') segments.push(e.segment);
    }
    expect(segments.map((x) => Number(x.duration.toFixed(3)))).toEqual([2, 2]);
  });
});
