import { describe, it, expect } from 'vitest';
import { readMetadataNumber } from '../../../src/media/flv-metadata.ts';

function amfNumberProperty(key: string, value: number): Buffer {
  const b = Buffer.alloc(2 + key.length + 1 + 8);
  b.writeUInt16BE(key.length, 0);
  b.write(key, 2, 'latin1');
  b[2 + key.length] = 0x00;
  b.writeDoubleBE(value, 3 + key.length);
  return b;
}

describe('readMetadataNumber', () => {
  const tag = Buffer.concat([
    Buffer.from([0x02, 0x00, 0x0a]), Buffer.from('onMetaData'), Buffer.from([0x08, 0, 0, 0, 3]),
    amfNumberProperty('width', 1280), amfNumberProperty('framerate', 29.97), amfNumberProperty('height', 720),
  ]);

  it('reads numeric properties', () => {
    expect(readMetadataNumber(tag, 'framerate')).toBeCloseTo(29.97, 5);
    expect(readMetadataNumber(tag, 'height')).toBe(720);
  });

  it('is undefined for absent, truncated or non-finite values and silly keys', () => {
    expect(readMetadataNumber(tag, 'audiodatarate')).toBeUndefined();
    expect(readMetadataNumber(tag.subarray(0, tag.length - 20), 'height')).toBeUndefined();
    expect(readMetadataNumber(amfNumberProperty('framerate', Number.NaN), 'framerate')).toBeUndefined();
    expect(readMetadataNumber(tag, '')).toBeUndefined();
    expect(readMetadataNumber(Buffer.alloc(0), 'framerate')).toBeUndefined();
  });
});
