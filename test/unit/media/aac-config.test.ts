import { describe, expect, it } from 'vitest';
import { parseAacConfig } from '../../../src/media/aac-config.ts';

describe('parseAacConfig', () => {
  it.each([
    // From FFmpeg 5.1's native AAC encoder in FLV: sine defaults (44.1 kHz mono), 22.05 kHz stereo.
    { hex: '1208', expected: { objectType: 2, sampleRate: 44100, channels: 1, codecString: 'mp4a.40.2' } },
    { hex: '1390', expected: { objectType: 2, sampleRate: 22050, channels: 2, codecString: 'mp4a.40.2' } },
    { hex: '1190', expected: { objectType: 2, sampleRate: 48000, channels: 2, codecString: 'mp4a.40.2' } },
    { hex: '11b0', expected: { objectType: 2, sampleRate: 48000, channels: 6 } },
    { hex: '11f0', expected: { objectType: 2, sampleRate: 48000, channels: 8 } },
    // HE-AAC, explicit signalling: 24 kHz core, 48 kHz output.
    { hex: '2b118800', expected: { objectType: 5, sampleRate: 48000, channels: 2, codecString: 'mp4a.40.5' } },
    // HE-AACv2 (PS): mono core, stereo output.
    { hex: 'eb098800', expected: { objectType: 29, sampleRate: 48000, channels: 2, codecString: 'mp4a.40.29' } },
    // Explicit 24-bit sample rate (index 15).
    { hex: '17800bb810', expected: { objectType: 2, sampleRate: 6000, channels: 2 } },
  ])('$hex', ({ hex, expected }) => {
    expect(parseAacConfig(Buffer.from(hex, 'hex'))).toMatchObject(expected);
  });

  it('reads escaped object types (31 + 6 bits)', () => {
    // AOT 31 escape, 6 bits = 10 → 42 (USAC), 48 kHz, stereo.
    const bits = '11111' + '001010' + '0011' + '0010';
    const buf = Buffer.alloc(3);
    for (let i = 0; i < bits.length; i++) if (bits[i] === '1') buf[i >> 3]! |= 1 << (7 - (i & 7));
    expect(parseAacConfig(buf)).toMatchObject({ objectType: 42, sampleRate: 48000, channels: 2 });
  });

  it('refuses truncated and reserved configurations', () => {
    expect(() => parseAacConfig(Buffer.alloc(0))).toThrow();
    expect(() => parseAacConfig(Buffer.from([0x12]))).toThrow(RangeError);
    expect(() => parseAacConfig(Buffer.from([0x16, 0x88]))).toThrow(/reserved/); // index 13
    expect(() => parseAacConfig(Buffer.from([0x00, 0x00]))).toThrow(/object type 0/);
  });
});
