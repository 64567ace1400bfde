import { describe, expect, it } from 'vitest';
import type { FlvTag } from '../../../src/media/flv-tag.ts';
import { encodeFlvHeader, encodeFlvTag } from '../../../src/media/flv-tags.ts';
import { FlvFanout, type FanoutTag } from '../../../src/simulcast/flv-fanout.ts';

const tag = (type: 8 | 9 | 18, timestamp: number, body: string, flags: Partial<FlvTag> = {}): FlvTag => ({
  type,
  timestamp,
  data: Buffer.from(body),
  keyframe: false,
  sequenceHeader: false,
  ...flags,
});

describe('FlvFanout', () => {
  it('keeps the header, onMetaData and latest sequence headers for late readers', () => {
    const fanout = new FlvFanout();
    fanout.push(tag(18, 5, 'meta'));
    fanout.push(tag(9, 0, 'avc1', { sequenceHeader: true }));
    fanout.push(tag(8, 0, 'aac1', { sequenceHeader: true }));
    fanout.push(tag(9, 40, 'avc2', { sequenceHeader: true }));
    expect(fanout.headers()).toEqual([
      encodeFlvHeader({ audio: true, video: true }),
      encodeFlvTag({ type: 18, timestamp: 0, data: Buffer.from('meta') }),
      encodeFlvTag({ type: 9, timestamp: 0, data: Buffer.from('avc2') }),
      encodeFlvTag({ type: 8, timestamp: 0, data: Buffer.from('aac1') }),
    ]);
  });

  it('says video only when no audio was seen', () => {
    const fanout = new FlvFanout();
    fanout.push(tag(9, 0, 'avc', { sequenceHeader: true }));
    expect(fanout.headers()[0]).toEqual(encodeFlvHeader({ audio: false, video: true }));
  });

  it('hands every sink the same encoded tag, flags keyframes, and survives a throwing sink', () => {
    const errors: unknown[] = [];
    const fanout = new FlvFanout((e) => errors.push(e));
    const a: FanoutTag[] = [];
    const b: FanoutTag[] = [];
    fanout.add({ write: (t) => a.push(t) });
    fanout.add({
      write: () => {
        throw new Error('boom');
      },
    });
    const sinkB = { write: (t: FanoutTag) => b.push(t) };
    fanout.add(sinkB);
    fanout.push(tag(9, 100, 'key', { keyframe: true }));
    fanout.push(tag(8, 110, 'aud'));
    fanout.remove(sinkB);
    fanout.push(tag(9, 133, 'inter'));
    expect(a.map((t) => t.keyframe)).toEqual([true, false, false]);
    expect(a[0]!.bytes).toEqual(encodeFlvTag({ type: 9, timestamp: 100, data: Buffer.from('key') }));
    expect(b).toHaveLength(2);
    expect(b[0]!.bytes).toBe(a[0]!.bytes);
    expect(errors).toHaveLength(3);
    expect(fanout.sinkCount).toBe(2);
  });

  it('does not keep an unbounded number of sequence headers', () => {
    const fanout = new FlvFanout();
    for (let i = 0; i < 100; i++) fanout.push(tag(9, i, `h${i}`, { sequenceHeader: true }));
    expect(fanout.headers()).toHaveLength(2);
  });
});
