import { describe, expect, it } from 'vitest';
import { fragmentDurationMicros, buildLiveArgs, type LiveArgsOptions } from '../../../src/transcode/ffmpeg-args.ts';
import type { RenditionSpec } from '../../../src/transcode/ladder.ts';

const source: RenditionSpec = { name: 'source', copy: true, width: 1280, height: 720 };
const r480: RenditionSpec = {
  name: '480p',
  copy: false,
  width: 854,
  height: 480,
  videoBitrateKbps: 1200,
  maxrateKbps: 1320,
  audioBitrateKbps: 96,
};
const r360: RenditionSpec = { name: '360p', copy: false, width: 640, height: 360, videoBitrateKbps: 700, audioBitrateKbps: 96 };

function opts(over: Partial<LiveArgsOptions>): LiveArgsOptions {
  return { renditions: [source, r480], gopSeconds: 2, partDurationSeconds: 0.25, sourceAudio: 'aac', input: 'flv-stdin', ...over };
}

/** The arguments of each output: from after the input (or previous output) up to its `pipe:N`. */
function outputs(args: string[]): string[][] {
  const start = args.indexOf('pipe:0') + 1;
  const result: string[][] = [];
  let current: string[] = [];
  for (const arg of args.slice(start)) {
    current.push(arg);
    if (/^pipe:\d+$/.test(arg)) {
      result.push(current);
      current = [];
    }
  }
  expect(current).toEqual([]);
  return result;
}

/** The value following `flag`, asserting the flag is present exactly once. */
function value(args: string[], flag: string): string | undefined {
  const at = args.indexOf(flag);
  if (at < 0) return undefined;
  expect(args.indexOf(flag, at + 1), `${flag} repeated`).toBe(-1);
  return args[at + 1];
}

describe('buildLiveArgs input', () => {
  it('reads FLV from stdin with a short probe and keeps probed packets', () => {
    const args = buildLiveArgs(opts({}));
    const input = args.slice(0, args.indexOf('pipe:0') + 1);
    expect(value(input, '-f')).toBe('flv');
    expect(value(input, '-i')).toBe('pipe:0');
    expect(Number(value(input, '-analyzeduration'))).toBeLessThanOrEqual(1_000_000);
    expect(value(input, '-fflags')).not.toContain('nobuffer');
    expect(input).not.toContain('-nostdin');
    expect(input).toContain('-hide_banner');
  });

  it('decodes a live source up to 1080p without frame threading when it transcodes', () => {
    const inputOf = (over: Partial<LiveArgsOptions>) => {
      const args = buildLiveArgs(opts(over));
      return args.slice(0, args.indexOf('pipe:0') + 1);
    };
    const live = inputOf({ sourceSize: { width: 1920, height: 1080 } });
    expect(value(live, '-thread_type')).toBe('slice');
    // A decoder option: before the input it applies to.
    expect(live.indexOf('-thread_type')).toBeLessThan(live.indexOf('-i'));
    expect(inputOf({ sourceSize: { width: 3840, height: 2160 } })).not.toContain('-thread_type');
    expect(inputOf({ sourceSize: {} })).not.toContain('-thread_type');
    expect(inputOf({})).not.toContain('-thread_type');
    expect(inputOf({ renditions: [source], sourceSize: { width: 1280, height: 720 } })).not.toContain('-thread_type');
    const file = buildLiveArgs(opts({ input: { file: '/tmp/x.mp4' }, sourceSize: { width: 1280, height: 720 } }));
    expect(file).not.toContain('-thread_type');
  });

  it.each([
    ['no renditions', { renditions: [] }],
    ['zero part duration', { partDurationSeconds: 0 }],
    ['zero gop', { gopSeconds: 0 }],
    ['transcoded rung without a size', { renditions: [{ name: 'x', copy: false, videoBitrateKbps: 100 }] }],
  ] as const)('rejects %s', (_name, over) => {
    expect(() => buildLiveArgs(opts(over as Partial<LiveArgsOptions>))).toThrow();
  });
});

describe('buildLiveArgs outputs', () => {
  it('writes rendition i to pipe:(3+i) as fragmented MP4', () => {
    const outs = outputs(buildLiveArgs(opts({ renditions: [source, r480, r360] })));
    expect(outs.map((o) => o.at(-1))).toEqual(['pipe:3', 'pipe:4', 'pipe:5']);
    for (const out of outs) {
      expect(value(out, '-f')).toBe('mp4');
      const movflags = value(out, '-movflags') ?? '';
      for (const flag of ['frag_keyframe', 'empty_moov', 'default_base_moof']) expect(movflags).toContain(flag);
      expect(value(out, '-frag_duration')).toBe('232333'); // 7 frames at 30 fps, minus 1 ms
      expect(value(out, '-flush_packets')).toBe('1');
      expect(out.slice(0, 4)).toEqual(['-map', '0:v:0', '-map', '0:a:0?']);
    }
  });

  type Row = {
    name: string;
    over: Partial<LiveArgsOptions>;
    output: number;
    expect: Record<string, string | undefined>;
  };
  const rows: Row[] = [
    { name: 'copy rendition copies AAC', over: {}, output: 0, expect: { '-c:v': 'copy', '-c:a': 'copy', '-vf': undefined, '-b:a': undefined } },
    { name: 'copy rendition encodes non-AAC audio', over: { sourceAudio: 'other' }, output: 0, expect: { '-c:v': 'copy', '-c:a': 'aac', '-b:a': '128k' } },
    { name: 'no audio: nothing about audio', over: { sourceAudio: 'none' }, output: 1, expect: { '-c:a': undefined, '-b:a': undefined } },
    {
      name: 'transcoded rung: scale, x264 low latency, rate control',
      over: {},
      output: 1,
      expect: {
        '-vf': 'scale=854:480',
        '-c:v': 'libx264',
        '-preset': 'veryfast',
        '-tune': 'zerolatency',
        '-profile:v': 'main',
        '-pix_fmt': 'yuv420p',
        '-bf': '0',
        '-sc_threshold': '0',
        '-b:v': '1200k',
        '-maxrate': '1320k',
        '-bufsize': '1320k',
        '-fps_mode': 'passthrough',
        '-enc_time_base:v': '-1',
      },
    },
    { name: 'maxrate defaults to the bitrate', over: { renditions: [source, r360] }, output: 1, expect: { '-maxrate': '700k' } },
    { name: 'with a copy, keyframes follow the source', over: {}, output: 1, expect: { '-force_key_frames': 'source', '-forced-idr': '1', '-g': '100000' } },
    {
      name: 'without a copy, keyframes every gopSeconds',
      over: { renditions: [r480, r360], gopSeconds: 2 },
      output: 1,
      expect: { '-force_key_frames': 'expr:gte(t,n_forced*2)', '-forced-idr': '1' },
    },
    { name: 'without a copy and a known fps, x264 GOP capped at twice', over: { renditions: [r480], fps: 30, gopSeconds: 1 }, output: 0, expect: { '-g': '60' } },
    { name: 'transcoded rung copies AAC by default', over: {}, output: 1, expect: { '-c:a': 'copy' } },
    { name: 'transcoded rung encodes audio at its bitrate on request', over: { transcodeAudio: true }, output: 1, expect: { '-c:a': 'aac', '-b:a': '96k' } },
    { name: 'transcoded rung encodes non-AAC audio', over: { sourceAudio: 'other' }, output: 1, expect: { '-c:a': 'aac', '-b:a': '96k' } },
    { name: 'preset and threads', over: { x264Preset: 'superfast', threadsPerRendition: 2 }, output: 1, expect: { '-preset': 'superfast', '-threads:v': '2' } },
    { name: 'high profile above 480p', over: { renditions: [source, { ...r480, height: 720, width: 1280 }] }, output: 1, expect: { '-profile:v': 'high' } },
    { name: 'fractional part duration in µs (9 whole frames at 30 fps)', over: { partDurationSeconds: 0.333 }, output: 0, expect: { '-frag_duration': '299000' } },
  ];

  it.each(rows)('$name', ({ over, output, expect: flags }) => {
    const out = outputs(buildLiveArgs(opts(over)))[output];
    expect(out).toBeDefined();
    for (const [flag, expected] of Object.entries(flags)) expect(value(out ?? [], flag), flag).toBe(expected);
  });

  it('copy rendition never encodes or forces keyframes', () => {
    const [copy] = outputs(buildLiveArgs(opts({})));
    for (const flag of ['-force_key_frames', '-b:v', '-preset', '-fps_mode']) expect(copy).not.toContain(flag);
  });
});

describe('fragmentDurationMicros', () => {
  it.each([
    [0.25, 30, 232333],
    [0.25, 25, 239000],
    [0.25, 60, 249000],
    [0.25, 24, 249000],
    [0.2, 30, 199000],
    [0.25, 29.97, 232567],
  ])('part %s s at %s fps → %s µs', (part, fps, micros) => {
    expect(fragmentDurationMicros(part, fps)).toBe(micros);
  });
});
