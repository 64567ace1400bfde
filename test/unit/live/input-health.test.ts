import { describe, it, expect } from 'vitest';
import { InputHealth } from '../../../src/live/input-health.ts';
import type { FlvTag } from '../../../src/live/ingest-contract.ts';

function video(timestamp: number, opts: { keyframe?: boolean; cts?: number; codecByte?: number; seq?: boolean } = {}): FlvTag {
  const frameType = opts.keyframe ? 1 : 2;
  const data = Buffer.alloc(9);
  data[0] = opts.codecByte ?? ((frameType << 4) | 7);
  data[1] = opts.seq ? 0 : 1;
  data.writeIntBE(opts.cts ?? 0, 2, 3);
  return { type: 9, timestamp, data, keyframe: !!opts.keyframe && !opts.seq, sequenceHeader: !!opts.seq };
}

function audio(soundFormat: number): FlvTag {
  return { type: 8, timestamp: 0, data: Buffer.from([(soundFormat << 4) | 0x0f, 1, 0]), keyframe: false, sequenceHeader: false };
}

function feed(h: InputHealth, tags: FlvTag[]): string[] {
  return tags.flatMap((t) => h.push(t).map((i) => i.code));
}

describe('InputHealth', () => {
  it('a clean 1 s GOP H.264 + AAC stream has no issues', () => {
    const h = new InputHealth({ maxKeyframeIntervalSeconds: 4 });
    const tags = [video(0, { seq: true }), audio(10)];
    for (let t = 0; t < 10_000; t += 33) tags.push(video(t, { keyframe: t % 990 === 0 }));
    expect(feed(h, tags)).toEqual([]);
    expect(h.report).toMatchObject({ videoCodec: 'h264', audioCodec: 'aac', bframes: false, issues: [] });
    expect(h.report.keyframeIntervalSeconds).toBeCloseTo(0.99, 2);
  });

  it('reports a keyframe interval above the limit once, and clears it when the encoder is fixed', () => {
    const h = new InputHealth({ maxKeyframeIntervalSeconds: 4 });
    expect(feed(h, [video(0, { keyframe: true }), video(8000, { keyframe: true })])).toEqual(['ERR_GOP_OUT_OF_RANGE']);
    expect(feed(h, [video(16_000, { keyframe: true })])).toEqual([]); // reported once
    const fixed: FlvTag[] = [];
    for (let t = 17_000; t < 40_000; t += 1000) fixed.push(video(t, { keyframe: true }));
    feed(h, fixed);
    expect(h.report.issues.map((i) => i.code)).not.toContain('ERR_GOP_OUT_OF_RANGE');
  });

  it('reports irregular keyframe intervals', () => {
    const h = new InputHealth({ maxKeyframeIntervalSeconds: 10 });
    const codes = feed(h, [0, 500, 4000, 4500, 9000].map((t) => video(t, { keyframe: true })));
    expect(codes).toContain('ERR_GOP_IRREGULAR');
  });

  it('detects B-frames from the composition time offset', () => {
    const h = new InputHealth({ maxKeyframeIntervalSeconds: 4 });
    expect(feed(h, [video(0, { keyframe: true, cts: 0 }), video(33, { cts: 66 })])).toEqual(['WARN_BFRAMES']);
    expect(h.report.bframes).toBe(true);
  });

  it.each([
    [0x1c, 'hevc'],
    [0x14, 'vp6'],
    [0x92, 'av1'], // enhanced RTMP header: 0x80 | frame type 1 << 4 | packet type; fourCC follows
  ])('refuses video codec byte %s as %s', (byte, name) => {
    const h = new InputHealth({ maxKeyframeIntervalSeconds: 4 });
    const tag = video(0, { codecByte: byte });
    if (byte & 0x80) tag.data.write('av01', 1, 'latin1');
    expect(feed(h, [tag])).toEqual(['ERR_UNSUPPORTED_VIDEO_CODEC']);
    expect(h.report.videoCodec).toBe(name);
  });

  it('refuses audio codecs other than AAC and MP3', () => {
    const h = new InputHealth({ maxKeyframeIntervalSeconds: 4 });
    expect(feed(h, [audio(11)])).toEqual(['ERR_UNSUPPORTED_AUDIO_CODEC']);
    expect(feed(new InputHealth({ maxKeyframeIntervalSeconds: 4 }), [audio(2)])).toEqual([]);
  });

  it('ignores a timestamp wrap instead of reporting a huge interval', () => {
    const h = new InputHealth({ maxKeyframeIntervalSeconds: 4 });
    expect(feed(h, [video(0xffffff00, { keyframe: true }), video(500, { keyframe: true }), video(1500, { keyframe: true })])).toEqual([]);
  });
});

describe('InputHealth ingest rates', () => {
  it('measures bits and frames per second by arrival over the last 5 s', () => {
    const h = new InputHealth({ maxKeyframeIntervalSeconds: 4 });
    expect(h.rates(0)).toBeUndefined();
    // 25 fps of 1000-byte frames (+9 bytes of header each) for 8 s, arriving in real time.
    for (let i = 0; i < 200; i++) {
      const tag = video(i * 40, { keyframe: i % 25 === 0 });
      h.push({ ...tag, data: Buffer.concat([tag.data, Buffer.alloc(991)]) }, 10_000 + i * 40);
    }
    const r = h.rates(10_000 + 200 * 40)!;
    expect(r.framesPerSecond).toBeCloseTo(25, 0);
    expect(Math.abs(r.bitsPerSecond - 25 * 1000 * 8) / (25 * 1000 * 8)).toBeLessThan(0.02);
    // The publisher stalls: the rates fall to zero once the window has passed.
    expect(h.rates(10_000 + 200 * 40 + 6000)).toEqual({ bitsPerSecond: 0, framesPerSecond: 0 });
  });

  it('says nothing in the first second, and counts no sequence headers as frames', () => {
    const h = new InputHealth({ maxKeyframeIntervalSeconds: 4 });
    h.push(video(0, { seq: true }), 1000);
    h.push(video(0, { keyframe: true }), 1010);
    expect(h.rates(1500)).toBeUndefined();
    // One frame over the 2.01 s since the first arrival.
    expect(h.rates(3010)?.framesPerSecond).toBeCloseTo(1 / 2.01, 5);
  });
});
