import { describe, expect, it } from 'vitest';
import { FlvStreamReader } from '../../../src/media/flv-stream-reader.ts';
import { readFlv } from '../../../src/media/flv-reader.ts';
import { encodeFlvHeader, encodeFlvTag } from '../../../src/media/flv-tags.ts';
import { mulberry32 } from '../../helpers/prng.ts';

const tags = [
  { type: 18 as const, timestamp: 0, data: Buffer.from('meta') },
  { type: 9 as const, timestamp: 0, data: Buffer.from([0x17, 0, 0, 0, 0, 1, 2]) },
  { type: 8 as const, timestamp: 23, data: Buffer.from([0xaf, 1, 9, 9]) },
  { type: 9 as const, timestamp: 0x1234567, data: Buffer.from([0x27, 1, 0, 0, 0, 3]) },
];
const file = Buffer.concat([encodeFlvHeader({ audio: true, video: true }), ...tags.map(encodeFlvTag)]);

describe('FlvStreamReader', () => {
  it('reads the same tags as the whole-file reader, however the stream is chunked', () => {
    const expected = readFlv(file).tags;
    const random = mulberry32(7);
    for (let run = 0; run < 200; run++) {
      const reader = new FlvStreamReader();
      const got = [];
      for (let p = 0; p < file.length; ) {
        const n = 1 + Math.floor(random() * 20);
        got.push(...reader.push(file.subarray(p, p + n)));
        p += n;
      }
      expect(got).toEqual(expected);
    }
  });

  it('refuses a stream that is not FLV and a tag over the limit', () => {
    expect(() => new FlvStreamReader().push(Buffer.from('GARBAGEGARBAGE'))).toThrow('not an FLV stream');
    const big = Buffer.concat([encodeFlvHeader({ audio: false, video: true }), encodeFlvTag({ type: 9, timestamp: 0, data: Buffer.alloc(100) })]);
    expect(() => new FlvStreamReader({ maxTagBytes: 50 }).push(big)).toThrow('over the limit');
  });
});
