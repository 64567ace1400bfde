import { describe, expect, it } from 'vitest';
import { isIdrAccessUnit, packetizeAccessUnit, rtpTimestamp90k, splitAvcc } from '../../../src/whep/h264-rtp-packetizer.ts';

const nal = (header: number, size: number, fill = 0xab) => Buffer.concat([Buffer.from([header]), Buffer.alloc(size - 1, fill)]);
const SPS = Buffer.from([0x67, 0x42, 0xc0, 0x1f, 0xda, 0x01]);
const PPS = Buffer.from([0x68, 0xce, 0x3c, 0x80]);

/** Reassembles the NAL units of RTP payloads (what a receiver does). */
function depacketize(payloads: Buffer[]): Buffer[] {
  const out: Buffer[] = [];
  let fu: Buffer[] = [];
  for (const p of payloads) {
    const type = p[0]! & 0x1f;
    if (type === 24) {
      for (let i = 1; i < p.length; ) {
        const len = p.readUInt16BE(i);
        out.push(p.subarray(i + 2, i + 2 + len));
        i += 2 + len;
      }
    } else if (type === 28) {
      if (p[1]! & 0x80) fu = [Buffer.from([(p[0]! & 0xe0) | (p[1]! & 0x1f)])];
      fu.push(p.subarray(2));
      if (p[1]! & 0x40) out.push(Buffer.concat(fu));
    } else out.push(p);
  }
  return out;
}

describe('H.264 RTP packetizer (RFC 6184)', () => {
  it('splits AVCC samples with 4-, 2- and 1-byte lengths and refuses a length past the end', () => {
    const a = nal(0x65, 10);
    const b = nal(0x41, 3);
    const four = Buffer.concat([Buffer.from([0, 0, 0, 10]), a, Buffer.from([0, 0, 0, 3]), b]);
    expect(splitAvcc(four, 4)).toEqual([a, b]);
    expect(splitAvcc(Buffer.concat([Buffer.from([0, 10]), a]), 2)).toEqual([a]);
    expect(splitAvcc(Buffer.concat([Buffer.from([10]), a]), 1)).toEqual([a]);
    expect(() => splitAvcc(Buffer.from([0, 0, 0, 50, 1, 2]), 4)).toThrow(RangeError);
    expect(() => splitAvcc(Buffer.from([0, 0, 0, 1, 0x41, 9]), 4)).toThrow(RangeError);
  });

  it('sends a small NAL unit as is (single NAL unit packet)', () => {
    const p = nal(0x41, 500);
    expect(packetizeAccessUnit([p], { maxPayload: 1200 })).toEqual([p]);
  });

  it('fragments a large NAL unit into FU-A packets with S/E bits at the boundaries only', () => {
    const idr = nal(0x65, 3000);
    const out = packetizeAccessUnit([idr], { maxPayload: 1200, parameterSets: [SPS, PPS] });
    // STAP-A (SPS+PPS), then ceil(2999 / 1198) = 3 fragments.
    expect(out).toHaveLength(4);
    expect(out[0]![0]! & 0x1f).toBe(24);
    const frags = out.slice(1);
    for (const f of frags) {
      expect(f.length).toBeLessThanOrEqual(1200);
      expect(f[0]!).toBe((0x65 & 0xe0) | 28);
      expect(f[1]! & 0x1f).toBe(5);
    }
    expect(frags.map((f) => f[1]! & 0xc0)).toEqual([0x80, 0x00, 0x40]);
    expect(depacketize(out)).toEqual([SPS, PPS, idr]);
  });

  it('a NAL unit of exactly maxPayload bytes is one packet; one byte more is two fragments', () => {
    expect(packetizeAccessUnit([nal(0x41, 1200)], { maxPayload: 1200 })).toHaveLength(1);
    const two = packetizeAccessUnit([nal(0x41, 1201)], { maxPayload: 1200 });
    expect(two).toHaveLength(2);
    expect(depacketize(two)).toEqual([nal(0x41, 1201)]);
  });

  it('puts SPS and PPS before every IDR: its own ones when the access unit has them, the stream ones otherwise', () => {
    const idr = nal(0x65, 100);
    const ownSps = Buffer.from([0x67, 0x64, 0x00, 0x28]);
    expect(depacketize(packetizeAccessUnit([idr], { maxPayload: 1200, parameterSets: [SPS, PPS] }))).toEqual([SPS, PPS, idr]);
    expect(depacketize(packetizeAccessUnit([ownSps, PPS, idr], { maxPayload: 1200, parameterSets: [SPS, PPS] }))).toEqual([ownSps, PPS, idr]);
    // A P frame gets none.
    expect(depacketize(packetizeAccessUnit([nal(0x41, 100)], { maxPayload: 1200, parameterSets: [SPS, PPS] }))).toEqual([nal(0x41, 100)]);
    expect(isIdrAccessUnit([SPS, idr])).toBe(true);
    expect(isIdrAccessUnit([nal(0x41, 10)])).toBe(false);
  });

  it('aggregates small NAL units in a STAP-A with the highest NRI, and drops AUD and filler', () => {
    const aud = Buffer.from([0x09, 0xf0]);
    const filler = nal(0x0c, 20, 0xff);
    const sei = nal(0x06, 30);
    const out = packetizeAccessUnit([aud, SPS, PPS, sei, filler, nal(0x65, 50)], { maxPayload: 1200 });
    expect(out).toHaveLength(1);
    expect(out[0]![0]!).toBe(0x60 | 24);
    expect(depacketize(out)).toEqual([SPS, PPS, sei, nal(0x65, 50)]);
    expect(packetizeAccessUnit([aud], { maxPayload: 1200 })).toEqual([]);
  });

  it('maps milliseconds to the 90 kHz clock, wrapping at 2^32', () => {
    expect(rtpTimestamp90k(1000, 0)).toBe(90_000);
    expect(rtpTimestamp90k(33, 100)).toBe(100 + 2970);
    expect(rtpTimestamp90k(1, 2 ** 32 - 10)).toBe(80);
  });
});
