import { describe, expect, it } from 'vitest';
import { FlvStreamReader } from '../../../src/media/flv-stream-reader.ts';
import { encodeFlvHeader, encodeFlvTag } from '../../../src/media/flv-tags.ts';
import { readFlv } from '../../../src/media/flv-reader.ts';
import { mulberry32 } from '../../helpers/prng.ts';

const stream = Buffer.concat([
  encodeFlvHeader({ audio: true, video: true }),
  encodeFlvTag({ type: 9, timestamp: 0, data: Buffer.from('1700000000aabb', 'hex') }), // AVC sequence header
  encodeFlvTag({ type: 8, timestamp: 0, data: Buffer.from('af001190', 'hex') }), // AAC config
  encodeFlvTag({ type: 9, timestamp: 0x1234567, data: Buffer.from('1701000000cc', 'hex') }), // keyframe, 32-bit time
  encodeFlvTag({ type: 8, timestamp: 23, data: Buffer.from('af01dd', 'hex') }),
]);

describe('FlvStreamReader', () => {
  it('reads tags however the stream is chunked', () => {
    for (let seed = 1; seed <= 20; seed++) {
      const rand = mulberry32(seed);
      const reader = new FlvStreamReader();
      const tags = [];
      for (let p = 0; p < stream.length; ) {
        const n = 1 + Math.floor(rand() * 12);
        tags.push(...reader.push(stream.subarray(p, p + n)));
        p += n;
      }
      expect(tags.map((t) => [t.type, t.timestamp, t.keyframe, t.sequenceHeader])).toEqual([
        [9, 0, false, true],
        [8, 0, false, true],
        [9, 0x1234567, true, false],
        [8, 23, false, false],
      ]);
      expect(reader.bufferedBytes).toBe(0);
    }
  });

  it('refuses a stream that is not FLV, and a tag over the limit', () => {
    expect(() => new FlvStreamReader().push(Buffer.from('RIFF0000WAVE'))).toThrow(/not an FLV/);
    const big = Buffer.concat([encodeFlvHeader({ audio: false, video: true }), encodeFlvTag({ type: 9, timestamp: 0, data: Buffer.alloc(2000) })]);
    expect(() => new FlvStreamReader({ maxTagBytes: 1000 }).push(big)).toThrow(/over the limit/);
  });
});

describe('FlvStreamReader against the whole-file reader', () => {
  it('reads the same tags as readFlv, however the stream is chunked', () => {
    const expected = readFlv(stream).tags;
    const random = mulberry32(7);
    for (let run = 0; run < 200; run++) {
      const reader = new FlvStreamReader();
      const got = [];
      for (let p = 0; p < stream.length; ) {
        const n = 1 + Math.floor(random() * 20);
        got.push(...reader.push(stream.subarray(p, p + n)));
        p += n;
      }
      expect(got).toEqual(expected);
    }
  });
});
