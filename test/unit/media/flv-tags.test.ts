import { describe, expect, it } from 'vitest';
import type { FlvTag } from '../../../src/live/ingest-contract.ts';
import { readFlv } from '../../../src/media/flv-reader.ts';
import { FlvSourceInfo } from '../../../src/media/flv-source-info.ts';
import { classifyFlvTag, encodeFlvHeader, encodeFlvTag, stripSetDataFrame } from '../../../src/media/flv-tags.ts';

const AVC_RECORD_720P = '0164001fffe1001a6764001facd9405005bb0110000003001000000303c0f183196001000668ebe3cb22c0fdf8f800';

function tag(type: 8 | 9 | 18, timestamp: number, hex: string): FlvTag {
  const data = Buffer.from(hex, 'hex');
  return { type, timestamp, data, ...classifyFlvTag(type, data) };
}

describe('encodeFlvHeader', () => {
  it('writes the signature, flags and PreviousTagSize0', () => {
    expect(encodeFlvHeader({ audio: true, video: true }).toString('hex')).toBe('464c5601050000000900000000');
    expect(encodeFlvHeader({ audio: false, video: true })[4]).toBe(1);
    expect(encodeFlvHeader({ audio: true, video: false })[4]).toBe(4);
  });
});

describe('encodeFlvTag', () => {
  it('frames a tag with its size, split timestamp and PreviousTagSize', () => {
    const out = encodeFlvTag({ type: 9, timestamp: 0x12345678, data: Buffer.from('abc') });
    expect(out.toString('hex')).toBe('09' + '000003' + '345678' + '12' + '000000' + '616263' + '0000000e');
  });

  it('wraps timestamps to 32 bits and refuses bodies the 24-bit size cannot hold', () => {
    expect(encodeFlvTag({ type: 8, timestamp: 2 ** 32 + 5, data: Buffer.alloc(0) }).subarray(4, 8).toString('hex')).toBe('00000500');
    expect(() => encodeFlvTag({ type: 8, timestamp: 0, data: Buffer.alloc(0x1000000) })).toThrow(RangeError);
  });

  it('round-trips through the reader', () => {
    const tags = [
      tag(18, 0, '02000a6f6e4d65746144617461080000000009'),
      tag(9, 0, '1700000000' + AVC_RECORD_720P),
      tag(8, 0, 'af001190'),
      tag(9, 0, '1701000042' + '00000002abcd'),
      tag(8, 21, 'af01deadbeef'),
      tag(9, 33, '2701000000' + '00000001ef'),
      tag(9, 2 ** 24 + 7, '1701000000' + '00000001ef'),
    ];
    const file = Buffer.concat([encodeFlvHeader({ audio: true, video: true }), ...tags.map(encodeFlvTag)]);
    const read = readFlv(file);
    expect(read).toMatchObject({ audio: true, video: true });
    expect(read.tags).toEqual(tags);
    // A truncated last tag is ignored.
    expect(readFlv(file.subarray(0, file.length - 5)).tags).toEqual(tags.slice(0, -1));
    expect(() => readFlv(Buffer.from('not flv at all'))).toThrow();
  });
});

describe('classifyFlvTag', () => {
  it.each([
    { name: 'AVC sequence header', type: 9, hex: '1700000000', expected: { keyframe: false, sequenceHeader: true } },
    { name: 'AVC keyframe', type: 9, hex: '1701000000', expected: { keyframe: true, sequenceHeader: false } },
    { name: 'AVC inter frame', type: 9, hex: '2701000000', expected: { keyframe: false, sequenceHeader: false } },
    { name: 'AVC end of sequence', type: 9, hex: '1702000000', expected: { keyframe: false, sequenceHeader: false } },
    { name: 'legacy HEVC (id 12) header', type: 9, hex: '1c00000000', expected: { keyframe: false, sequenceHeader: true } },
    { name: 'VP6 keyframe', type: 9, hex: '1400', expected: { keyframe: true, sequenceHeader: false } },
    { name: 'enhanced hvc1 SequenceStart', type: 9, hex: '9068766331', expected: { keyframe: false, sequenceHeader: true } },
    { name: 'enhanced hvc1 key CodedFrames', type: 9, hex: '9168766331000000', expected: { keyframe: true, sequenceHeader: false } },
    { name: 'enhanced hvc1 key CodedFramesX', type: 9, hex: '9368766331', expected: { keyframe: true, sequenceHeader: false } },
    { name: 'enhanced av01 inter', type: 9, hex: 'a161763031', expected: { keyframe: false, sequenceHeader: false } },
    { name: 'enhanced av01 MPEG2TS SequenceStart', type: 9, hex: '9561763031', expected: { keyframe: false, sequenceHeader: true } },
    { name: 'enhanced vp09 SequenceStart', type: 9, hex: '9076703039', expected: { keyframe: false, sequenceHeader: true } },
    { name: 'enhanced metadata', type: 9, hex: '9468766331', expected: { keyframe: false, sequenceHeader: false } },
    { name: 'command frame', type: 9, hex: '5701', expected: { keyframe: false, sequenceHeader: false } },
    { name: 'AAC AudioSpecificConfig', type: 8, hex: 'af001190', expected: { keyframe: false, sequenceHeader: true } },
    { name: 'AAC raw', type: 8, hex: 'af01aa', expected: { keyframe: false, sequenceHeader: false } },
    { name: 'MP3', type: 8, hex: '2fffe3', expected: { keyframe: false, sequenceHeader: false } },
    { name: 'enhanced audio SequenceStart', type: 8, hex: '904f707573', expected: { keyframe: false, sequenceHeader: true } },
    { name: 'script', type: 18, hex: '0200', expected: { keyframe: false, sequenceHeader: false } },
    { name: 'empty video', type: 9, hex: '', expected: { keyframe: false, sequenceHeader: false } },
    { name: 'truncated AVC', type: 9, hex: '17', expected: { keyframe: false, sequenceHeader: false } },
  ])('$name', ({ type, hex, expected }) => {
    expect(classifyFlvTag(type, Buffer.from(hex, 'hex'))).toEqual(expected);
  });
});

describe('stripSetDataFrame', () => {
  it('unwraps @setDataFrame metadata and leaves the rest alone', () => {
    const onMetaData = Buffer.from('02000a6f6e4d65746144617461', 'hex');
    const wrapped = Buffer.concat([Buffer.from('02000d', 'hex'), Buffer.from('@setDataFrame'), onMetaData]);
    expect(stripSetDataFrame(wrapped)).toEqual(onMetaData);
    expect(stripSetDataFrame(onMetaData)).toBe(onMetaData);
  });
});

describe('FlvSourceInfo', () => {
  it('learns codecs, dimensions and sample rate from the decoder configurations', () => {
    const info = new FlvSourceInfo();
    expect(info.info).toEqual({});
    info.push(tag(9, 0, '1700000000' + AVC_RECORD_720P));
    info.push(tag(8, 0, 'af001190'));
    info.push(tag(9, 0, '1701000000'));
    expect(info.info).toEqual({
      video: { codec: 'h264', width: 1280, height: 720, codecString: 'avc1.64001f' },
      audio: { codec: 'aac', sampleRate: 48000, channels: 2, codecString: 'mp4a.40.2' },
    });
  });

  it('names other codecs and survives malformed configurations', () => {
    const info = new FlvSourceInfo();
    info.push(tag(9, 0, '9068766331' + '01'));
    info.push(tag(8, 0, '2f' + 'fffb'));
    expect(info.info).toEqual({ video: { codec: 'hevc' }, audio: { codec: 'mp3', sampleRate: 44100, channels: 2 } });
    info.push(tag(9, 0, '1700000000' + '01640028'));
    info.push(tag(8, 0, 'af00'));
    expect(info.info).toEqual({ video: { codec: 'h264' }, audio: { codec: 'aac' } });
    info.push(tag(9, 0, '9061763031'));
    info.push(tag(9, 0, '9076703039'));
    info.push(tag(8, 0, '904f707573'));
    expect(info.info).toEqual({ video: { codec: 'vp9' }, audio: { codec: 'other' } });
  });
});
