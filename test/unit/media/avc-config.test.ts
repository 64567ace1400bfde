import { describe, expect, it } from 'vitest';
import { BitReader, parseAvcDecoderConfig, parseAvcSps, unescapeRbsp } from '../../../src/media/avc-config.ts';

/*
 * AVCDecoderConfigurationRecords from the first video tag of FLV files written by FFmpeg 5.1
 * (libx264), e.g.:
 *   ffmpeg -f lavfi -i testsrc2=size=1920x1080:rate=30 -t 0.2 -c:v libx264 -f flv out.flv
 * with the options noted per case.
 */
const RECORDS = [
  {
    name: '1280x720 high',
    hex: '0164001fffe1001a6764001facd9405005bb0110000003001000000303c0f183196001000668ebe3cb22c0fdf8f800',
    expected: { width: 1280, height: 720, profile: 100, level: 31, codecString: 'avc1.64001f', chromaFormat: 1, progressive: true },
  },
  {
    name: '320x240 baseline (-profile:v baseline)',
    hex: '0142c00dffe100186742c00dd90141fb0110000003001000000303c0f142a48001000568cb83cb20',
    expected: { width: 320, height: 240, profile: 66, level: 13, codecString: 'avc1.42c00d', chromaFormat: 1, progressive: true },
  },
  {
    name: '1920x1080 high, bottom cropping of 1088',
    hex: '01640028ffe1001b67640028acd940780227e5c044000003000400000300f03c60c65801000668ebe3cb22c0fdf8f800',
    expected: { width: 1920, height: 1080, profile: 100, level: 40, codecString: 'avc1.640028' },
  },
  {
    name: '1366x768 high, right cropping of 1376',
    hex: '01640020ffe1001b67640020acd94056061e6f0110000003001000000303c0f183196001000768ebe3cb3002c0fdf8f800',
    expected: { width: 1366, height: 768, profile: 100, level: 32 },
  },
  {
    name: '640x360 high 4:2:2 (-pix_fmt yuv422p)',
    hex: '017a001effe1001a677a001ebcd940a02ff89c0440000003004000000f03c58b658001000668ebe3cb22c0fef8f800',
    expected: { width: 640, height: 360, profile: 122, chromaFormat: 2, codecString: 'avc1.7a001e' },
  },
  {
    name: '640x360 high 4:4:4 (-pix_fmt yuv444p -profile:v high444)',
    hex: '01f4001effe1001b67f4001e919b281405ff138088000003000800000301e078b16cb001000668ebe3c44844fff8f800',
    expected: { width: 640, height: 360, profile: 244, chromaFormat: 3, bitDepth: 8 },
  },
  {
    name: '720x576 interlaced (-flags +ildct+ilme -x264-params interlaced=1)',
    hex: '0164001fffe100186764001facd940b424d80880000003008000001e0f8b16cb01000668fba3cb22c0fdf8f800',
    expected: { width: 720, height: 576, progressive: false },
  },
];

describe('parseAvcDecoderConfig', () => {
  it.each(RECORDS)('$name', ({ hex, expected }) => {
    const config = parseAvcDecoderConfig(Buffer.from(hex, 'hex'));
    expect(config).toMatchObject(expected);
    expect(config.nalLengthSize).toBe(4);
    expect(config.sps).toHaveLength(1);
    expect(config.pps).toHaveLength(1);
    expect(config.sps[0]![0]! & 0x1f).toBe(7);
    expect(config.pps[0]![0]! & 0x1f).toBe(8);
  });

  it('rejects truncated and foreign records', () => {
    const good = Buffer.from(RECORDS[0]!.hex, 'hex');
    expect(() => parseAvcDecoderConfig(good.subarray(0, 20))).toThrow();
    expect(() => parseAvcDecoderConfig(Buffer.from([1, 0x64, 0, 0x1f, 0xff, 0xe0, 0]))).toThrow(/without SPS/);
    expect(() => parseAvcDecoderConfig(Buffer.from([2, 0x64, 0, 0x1f, 0xff, 0xe0, 0]))).toThrow();
    expect(() => parseAvcDecoderConfig(Buffer.alloc(0))).toThrow();
  });

  it('never throws anything but an Error on random input', () => {
    let seed = 1;
    const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    for (let i = 0; i < 2000; i++) {
      const input = Buffer.from(Array.from({ length: Math.floor(rand() * 64) }, () => Math.floor(rand() * 256)));
      input[0] = 1;
      try {
        parseAvcDecoderConfig(input);
      } catch (err) {
        expect(err).toBeInstanceOf(Error);
      }
    }
  });
});

/** Writes an SPS bit by bit, for the syntax x264 never emits (scaling lists, POC type 1). */
class BitWriter {
  bits: number[] = [];
  u(n: number, v: number): this {
    for (let i = n - 1; i >= 0; i--) this.bits.push(Math.floor(v / 2 ** i) % 2);
    return this;
  }
  ue(v: number): this {
    const len = Math.floor(Math.log2(v + 1));
    return this.u(len, 0).u(len + 1, v + 1);
  }
  se(v: number): this {
    return this.ue(v > 0 ? 2 * v - 1 : -2 * v);
  }
  bytes(): Buffer {
    this.u(1, 1);
    while (this.bits.length % 8) this.bits.push(0);
    const out = Buffer.alloc(this.bits.length / 8);
    this.bits.forEach((b, i) => (out[i >> 3]! |= b << (7 - (i & 7))));
    return out;
  }
}

describe('parseAvcSps', () => {
  it('skips scaling lists and reads POC type 1 and cropping', () => {
    const w = new BitWriter().u(8, 0x67).u(8, 100).u(8, 0).u(8, 30).ue(0);
    w.ue(1).ue(0).ue(0).u(1, 0); // 4:2:0, 8-bit, no bypass
    w.u(1, 1); // seq_scaling_matrix_present_flag
    for (let i = 0; i < 8; i++) {
      const present = i === 0 || i === 6 || i === 7;
      w.u(1, present ? 1 : 0);
      if (i === 0) for (let j = 0; j < 16; j++) w.se(j % 3 === 0 ? 5 : -2);
      if (i === 6) for (let j = 0; j < 64; j++) w.se(1);
      // nextScale reaching 0 ends a list early (use the default for the rest).
      if (i === 7) w.se(-8);
    }
    w.ue(0).ue(1).u(1, 0).se(-1).se(2).ue(2).se(1).se(-1); // POC type 1 with a 2-entry cycle
    w.ue(2).u(1, 0).ue(39).ue(22).u(1, 1).u(1, 1); // 640 x 368, frame_mbs_only
    w.u(1, 1).ue(0).ue(0).ue(0).ue(4); // crop 8 rows at the bottom
    w.u(1, 0); // no VUI
    expect(parseAvcSps(w.bytes())).toMatchObject({ width: 640, height: 360, profile: 100, level: 30, progressive: true });
  });

  it('crops in luma samples for 4:4:4 and doubles rows for field coding', () => {
    const w = new BitWriter().u(8, 0x67).u(8, 244).u(8, 0).u(8, 30).ue(0);
    w.ue(3).u(1, 0).ue(2).ue(2).u(1, 0).u(1, 0); // 4:4:4 10-bit
    w.ue(0).ue(2).ue(1).u(1, 0).ue(44).ue(17).u(1, 0).u(1, 0).u(1, 1); // 720 x (18*2*16=576), field
    w.u(1, 1).ue(1).ue(1).ue(0).ue(1).u(1, 0); // crop 1+1 columns, 1 field row (= 2 rows)
    expect(parseAvcSps(w.bytes())).toMatchObject({ width: 718, height: 574, chromaFormat: 3, bitDepth: 10, progressive: false });
  });

  it('refuses what is not an SPS', () => {
    expect(() => parseAvcSps(Buffer.from([0x68, 0xeb, 0xe3, 0xcb]))).toThrow(/not an SPS/);
    expect(() => parseAvcSps(Buffer.from([0x67, 0x64, 0x00]))).toThrow();
  });
});

describe('bit-level helpers', () => {
  it('reads Exp-Golomb codes', () => {
    const r = new BitReader(new BitWriter().ue(0).ue(1).ue(7).se(-3).se(4).ue(65534).bytes());
    expect([r.ue(), r.ue(), r.ue(), r.se(), r.se(), r.ue()]).toEqual([0, 1, 7, -3, 4, 65534]);
  });

  it('throws past the end and on overlong codes', () => {
    expect(() => new BitReader(Buffer.from([0x00])).ue()).toThrow(RangeError);
    expect(() => new BitReader(Buffer.alloc(8)).ue()).toThrow(RangeError);
  });

  it('removes emulation prevention bytes', () => {
    expect(unescapeRbsp(Buffer.from([0, 0, 3, 1, 0, 0, 3, 0, 0, 3]))).toEqual(Buffer.from([0, 0, 1, 0, 0, 0, 0]));
  });
});
