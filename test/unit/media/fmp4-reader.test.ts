import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Fmp4Error, Fmp4Reader, fragmentDurationSeconds } from '../../../src/media/fmp4-reader.ts';
import type { Fmp4Event, Mp4Fragment, Mp4Init } from '../../../src/media/fmp4-reader.ts';
import { childBoxes } from '../../../src/media/mp4-boxes.ts';
import { HlsLiveStream } from '../../../src/hls/live-stream.ts';
import { mulberry32 } from '../../helpers/prng.ts';

const run = promisify(execFile);

let dir: string;
let file: Buffer;

// The output the transcoder produces: fMP4, empty moov, a fragment every 250 ms and at each keyframe.
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tributary-fmp4-'));
  const out = join(dir, 'out.mp4');
  await run('ffmpeg', [
    '-hide_banner', '-loglevel', 'error', '-nostdin',
    '-f', 'lavfi', '-i', 'testsrc2=size=320x240:rate=30',
    '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000',
    '-t', '4',
    '-c:v', 'libx264', '-preset', 'veryfast', '-tune', 'zerolatency', '-bf', '0', '-g', '30',
    '-c:a', 'aac',
    '-f', 'mp4', '-movflags', 'empty_moov+default_base_moof+frag_keyframe', '-frag_duration', '250000',
    out,
  ]);
  file = await readFile(out);
}, 60_000);

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

function feed(reader: Fmp4Reader, data: Buffer, chunkSize: () => number): Fmp4Event[] {
  const events: Fmp4Event[] = [];
  for (let i = 0; i < data.length; ) {
    const n = Math.max(1, chunkSize());
    events.push(...reader.push(data.subarray(i, i + n)));
    i += n;
  }
  return events;
}

function split(events: Fmp4Event[]): { inits: Mp4Init[]; fragments: Mp4Fragment[] } {
  const inits: Mp4Init[] = [];
  const fragments: Mp4Fragment[] = [];
  for (const e of events) {
    if (e.type === 'init') inits.push(e.init);
    else fragments.push(e.fragment);
  }
  return { inits, fragments };
}

function box(type: string, ...payload: Buffer[]): Buffer {
  const body = Buffer.concat(payload);
  const header = Buffer.alloc(8);
  header.writeUInt32BE(body.length + 8, 0);
  header.write(type, 4, 'latin1');
  return Buffer.concat([header, body]);
}

/** Top-level boxes of the real file. */
function topLevel(): { type: string; data: Buffer }[] {
  return childBoxes(file, 0, file.length).map((b) => ({ type: b.type, data: file.subarray(b.start, b.end) }));
}

function expectFmp4Error(fn: () => unknown, code: string): void {
  let error: unknown;
  try {
    fn();
  } catch (err) {
    error = err;
  }
  expect(error).toBeInstanceOf(Fmp4Error);
  expect((error as Fmp4Error).code).toBe(code);
}

describe('Fmp4Reader on FFmpeg output', () => {
  it('reads the init segment: tracks, codecs, dimensions, timescales', () => {
    const { inits } = split(new Fmp4Reader().push(file));
    expect(inits).toHaveLength(1);
    const init = inits[0]!;
    const [ftyp, moov] = topLevel();
    expect(init.data.equals(Buffer.concat([ftyp!.data, moov!.data]))).toBe(true);
    const video = init.tracks.find((t) => t.kind === 'video');
    const audio = init.tracks.find((t) => t.kind === 'audio');
    expect(video).toMatchObject({ width: 320, height: 240 });
    expect(video?.codec).toMatch(/^avc1\.6400[0-9a-f]{2}$/); // libx264 picks High profile for yuv420p
    expect(video!.timescale % 30).toBe(0);
    expect(audio).toMatchObject({ codec: 'mp4a.40.2', timescale: 48000, sampleRate: 48000, channels: 1 });
    expect(init.tracks).toHaveLength(2);
  });

  it('yields every fragment with durations summing to the 4 s input, whatever the chunking', () => {
    const random = mulberry32(42);
    const { inits, fragments } = split(feed(new Fmp4Reader(), file, () => Math.floor(random() * 9000)));
    expect(inits).toHaveLength(1);
    expect(fragments.length).toBeGreaterThanOrEqual(14);
    expect(fragments.length).toBeLessThanOrEqual(18);
    expect(fragments.map((f) => f.sequenceNumber)).toEqual(fragments.map((_, i) => i + 1));

    const total = fragments.reduce((sum, f) => sum + fragmentDurationSeconds(f), 0);
    expect(total).toBeGreaterThan(3.95);
    expect(total).toBeLessThan(4.1);
    for (const f of fragments.slice(1, -1)) expect(fragmentDurationSeconds(f)).toBeLessThanOrEqual(0.3);

    let audioTicks = 0;
    for (const f of fragments) {
      const audio = f.tracks.find((t) => t.kind === 'audio');
      expect(audio?.firstSampleIsSync).toBe(true);
      audioTicks += audio?.duration ?? 0;
    }
    expect(audioTicks / 48000).toBeGreaterThan(3.95);
    expect(audioTicks / 48000).toBeLessThan(4.1);

    // Not a byte lost or added: init + fragments + the trailing mfra FFmpeg writes is the file.
    const mfra = topLevel().at(-1)!;
    expect(mfra.type).toBe('mfra');
    const rebuilt = Buffer.concat([inits[0]!.data, ...fragments.map((f) => f.data)]);
    expect(rebuilt.equals(file.subarray(0, file.length - mfra.data.length))).toBe(true);
  });

  it('marks exactly the fragments that start at a keyframe (every 1 s) as independent', () => {
    const { fragments } = split(new Fmp4Reader().push(file));
    const starts = fragments
      .filter((f) => f.independent)
      .map((f) => {
        const v = f.tracks.find((t) => t.kind === 'video')!;
        expect(v.firstSampleIsSync).toBe(true);
        return v.baseMediaDecodeTime / v.timescale;
      });
    expect(starts.map(Math.round)).toEqual([0, 1, 2, 3]);
    for (const s of starts) expect(Math.abs(s - Math.round(s))).toBeLessThan(0.1);
    // Decode times are contiguous: each fragment starts where the previous one ended.
    for (let i = 1; i < fragments.length; i++) {
      const prev = fragments[i - 1]!.tracks[0]!;
      expect(fragments[i]!.tracks[0]!.baseMediaDecodeTime).toBe(prev.baseMediaDecodeTime + prev.duration);
    }
  });

  it('gives the same result byte by byte as in one push', () => {
    const head = file.subarray(0, 120_000);
    const whole = split(new Fmp4Reader().push(head));
    const bytewise = split(feed(new Fmp4Reader(), head, () => 1));
    expect(bytewise.fragments.length).toBeGreaterThan(3);
    expect(bytewise.fragments.map((f) => ({ ...f, data: f.data.toString('base64') }))).toEqual(
      whole.fragments.map((f) => ({ ...f, data: f.data.toString('base64') })),
    );
  });

  it('finish() accepts a complete stream and rejects one cut inside a box', () => {
    const complete = new Fmp4Reader();
    complete.push(file);
    expect(() => complete.finish()).not.toThrow();
    const cut = new Fmp4Reader();
    cut.push(file.subarray(0, 50_000));
    expectFmp4Error(() => cut.finish(), 'TRUNCATED_STREAM');
  });

  it('feeds the packager: real codecs, resolution and frame rate in the master playlist', () => {
    let clock = 0;
    const stream = new HlsLiveStream({ prefix: 'ab12cd34', segmentTarget: 2, windowSegments: 5, now: () => clock });
    stream.addRendition('240p');
    for (const e of new Fmp4Reader().push(file)) {
      if (e.type === 'init') stream.pushInit('240p', e.init);
      else stream.pushFragment('240p', e.fragment);
      clock += 250;
    }
    stream.end();
    const master = stream.masterPlaylist();
    expect(master).toMatch(/CODECS="avc1\.6400[0-9a-f]{2},mp4a\.40\.2",RESOLUTION=320x240,FRAME-RATE=30\.000\n/);
    const media = stream.mediaPlaylist('240p')!;
    // FFmpeg gives the first video sample 840 ticks instead of 512, so the first segment runs a bit
    // long. The last GOP (8+8+8+6 frames) ends in a part under 85 % of PART-TARGET, so its segment
    // closes after each GOP rather than leave that part mid-segment (rfc8216bis 4.4.4.9).
    expect(media.match(/^#EXTINF:.*,$/gm)).toEqual(['#EXTINF:2.02135,', '#EXTINF:1.00000,', '#EXTINF:1.00000,']);
    // The target duration is each duration rounded to the nearest integer, at most: 2.
    expect(media).toContain('#EXT-X-TARGETDURATION:2\n');
    expect(media.endsWith('#EXT-X-ENDLIST\n')).toBe(true);
  });

  it('includes styp/prft boxes before a moof in the fragment bytes', () => {
    const [ftyp, moov, moof, mdat] = topLevel();
    const styp = box('styp', Buffer.from('msdh\0\0\0\0msdhmsix'));
    const reader = new Fmp4Reader();
    reader.push(Buffer.concat([ftyp!.data, moov!.data]));
    const { fragments } = split(reader.push(Buffer.concat([styp, moof!.data, mdat!.data])));
    expect(fragments).toHaveLength(1);
    expect(fragments[0]!.data.equals(Buffer.concat([styp, moof!.data, mdat!.data]))).toBe(true);
  });
});

describe('Fmp4Reader on malformed input', () => {
  const header = (size: number, type: string) => {
    const b = Buffer.alloc(8);
    b.writeUInt32BE(size, 0);
    b.write(type, 4, 'latin1');
    return b;
  };
  const largeHeader = (size: bigint, type: string) => {
    const b = Buffer.alloc(16);
    b.writeUInt32BE(1, 0);
    b.write(type, 4, 'latin1');
    b.writeBigUInt64BE(size, 8);
    return b;
  };

  it.each([
    ['text garbage (its "size" is huge)', Buffer.from('this is not an mp4 file, just text'), 'BOX_TOO_LARGE'],
    ['binary type', Buffer.from([0, 0, 0, 16, 0xff, 0x00, 0x13, 0x37, 1, 2, 3, 4, 5, 6, 7, 8]), 'INVALID_BOX_TYPE'],
    ['size below 8', header(4, 'ftyp'), 'INVALID_BOX_SIZE'],
    ['size 0 at top level', header(0, 'mdat'), 'UNSUPPORTED_BOX_SIZE'],
    ['32-bit size over the limit', header(0xfffffff0, 'mdat'), 'BOX_TOO_LARGE'],
    ['64-bit size over the limit', largeHeader(1n << 62n, 'mdat'), 'BOX_TOO_LARGE'],
    ['64-bit size below 16', largeHeader(8n, 'mdat'), 'INVALID_BOX_SIZE'],
  ])('%s → %s, before buffering the box', (_name, bytes, code) => {
    expectFmp4Error(() => new Fmp4Reader().push(bytes), code);
  });

  it('refuses a box over a custom maxBoxSize as soon as its header arrives', () => {
    const [ftyp, moov, moof, mdat] = topLevel();
    const reader = new Fmp4Reader({ maxBoxSize: 4096 });
    reader.push(Buffer.concat([ftyp!.data, moov!.data, moof!.data]));
    expectFmp4Error(() => reader.push(mdat!.data.subarray(0, 8)), 'BOX_TOO_LARGE');
  });

  it('fails every later push once it has failed', () => {
    const reader = new Fmp4Reader();
    expectFmp4Error(() => reader.push(header(3, 'ftyp')), 'INVALID_BOX_SIZE');
    expectFmp4Error(() => reader.push(file), 'READER_FAILED');
  });

  it('rejects fragments before the init segment', () => {
    const [, , moof, mdat] = topLevel();
    expectFmp4Error(() => new Fmp4Reader().push(Buffer.concat([moof!.data, mdat!.data])), 'FRAGMENT_BEFORE_INIT');
    expectFmp4Error(() => new Fmp4Reader().push(mdat!.data), 'FRAGMENT_BEFORE_INIT');
  });

  it('rejects a moof without mdat, and an mdat without moof', () => {
    const [ftyp, moov, moof, mdat] = topLevel();
    const init = Buffer.concat([ftyp!.data, moov!.data]);
    expectFmp4Error(() => new Fmp4Reader().push(Buffer.concat([init, moof!.data, moof!.data])), 'MOOF_WITHOUT_MDAT');
    expectFmp4Error(() => new Fmp4Reader().push(Buffer.concat([init, mdat!.data])), 'UNEXPECTED_MDAT');
  });

  it('rejects nested boxes that overrun their parent or are too small', () => {
    const [ftyp, moov] = topLevel();
    const trak = childBoxes(moov!.data, 8, moov!.data.length).find((b) => b.type === 'trak')!;
    const overrun = Buffer.from(moov!.data);
    overrun.writeUInt32BE(moov!.data.length, trak.start);
    expectFmp4Error(() => new Fmp4Reader().push(Buffer.concat([ftyp!.data, overrun])), 'TRUNCATED_BOX');
    const tiny = Buffer.from(moov!.data);
    tiny.writeUInt32BE(5, trak.start);
    expectFmp4Error(() => new Fmp4Reader().push(Buffer.concat([ftyp!.data, tiny])), 'INVALID_BOX_SIZE');
  });

  it('terminates on zero-size nested boxes (they mean "to the end of the parent")', () => {
    const zeroChild = box('moov', header(0, 'free'), Buffer.alloc(64));
    expectFmp4Error(() => new Fmp4Reader().push(zeroChild), 'MISSING_BOX');
    const emptyTkhd = box('moov', box('trak', box('tkhd', Buffer.alloc(10))));
    expectFmp4Error(() => new Fmp4Reader().push(emptyTkhd), 'TRUNCATED_BOX');
  });

  it('rejects a trun whose sample count outruns its box, without walking it', () => {
    const [ftyp, moov, moof, mdat] = topLevel();
    const hostile = Buffer.from(moof!.data);
    const traf = childBoxes(hostile, 8, hostile.length).find((b) => b.type === 'traf')!;
    const trun = childBoxes(hostile, traf.payloadStart, traf.end).find((b) => b.type === 'trun')!;
    hostile.writeUInt32BE(0xffffffff, trun.payloadStart + 4);
    const stream = Buffer.concat([ftyp!.data, moov!.data, hostile, mdat!.data]);
    expectFmp4Error(() => new Fmp4Reader().push(stream), 'TRUNCATED_BOX');
  });

  it('only ever throws Fmp4Error on randomly corrupted init and fragment boxes', () => {
    const random = mulberry32(7);
    const head = file.subarray(0, 40_000); // ftyp, moov and the first fragments
    const outcomes = new Set<string>();
    for (let round = 0; round < 300; round++) {
      const corrupt = Buffer.from(head);
      const flips = 1 + Math.floor(random() * 4);
      for (let i = 0; i < flips; i++) {
        // Mostly hit the structured boxes (first ~3 KB), where sizes and counts live.
        const at = Math.floor(random() * (random() < 0.8 ? 3000 : corrupt.length));
        corrupt[at] = Math.floor(random() * 256);
      }
      try {
        feed(new Fmp4Reader({ maxBoxSize: 1 << 20 }), corrupt, () => 1 + Math.floor(random() * 5000));
        outcomes.add('ok');
      } catch (err) {
        expect(err).toBeInstanceOf(Fmp4Error);
        outcomes.add((err as Fmp4Error).code);
      }
    }
    expect(outcomes.size).toBeGreaterThan(2); // the corruption did reach the parser
  });

  it('bounds the bytes of prefix boxes waiting for a moof', () => {
    const [ftyp, moov] = topLevel();
    const reader = new Fmp4Reader({ maxBoxSize: 10_000 });
    reader.push(Buffer.concat([ftyp!.data, moov!.data]));
    const prft = box('prft', Buffer.alloc(1000));
    expectFmp4Error(() => {
      for (let i = 0; i < 100; i++) reader.push(prft);
    }, 'BOX_TOO_LARGE');
  });
});
