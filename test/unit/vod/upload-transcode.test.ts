import { describe, expect, it } from 'vitest';
import { progressParser, uploadRenditions, type UploadTranscodeSettings } from '../../../src/vod/upload-transcode.ts';
import { buildLiveArgs } from '../../../src/transcode/ffmpeg-args.ts';
import { DEFAULT_LADDER } from '../../../src/transcode/ladder.ts';
import type { ProbedUpload } from '../../../src/vod/upload-probe.ts';

const settings: UploadTranscodeSettings = {
  ffmpegPath: 'ffmpeg',
  ladder: DEFAULT_LADDER,
  includeSource: true,
  maxRenditions: 4,
  gopSeconds: 1,
  x264Preset: 'veryfast',
  segmentTargetSeconds: 2,
  partTargetSeconds: 0.25,
  startTimeoutMs: 10_000,
};

function probe(codec: string, width: number, height: number): ProbedUpload {
  return { duration: 10, formatName: 'mov,mp4', video: { codec, width, height, fps: 30 }, audio: { codec: 'aac' } };
}

describe('uploadRenditions', () => {
  it('offers an H.264 source as is, with the rungs below it, like a live source', () => {
    expect(uploadRenditions(probe('h264', 1280, 720), settings).map((r) => [r.name, r.copy])).toEqual([
      ['source', true],
      ['480p', false],
      ['360p', false],
    ]);
  });

  it('encodes the rung at the height of a source players cannot take as is', () => {
    expect(uploadRenditions(probe('hevc', 1280, 720), settings).map((r) => [r.name, r.copy, r.width, r.height])).toEqual([
      ['720p', false, 1280, 720],
      ['480p', false, 854, 480],
      ['360p', false, 640, 360],
    ]);
  });

  it('encodes a tiny uncopyable source at its own (even) size', () => {
    expect(uploadRenditions(probe('vp9', 321, 181), settings)).toEqual([
      { name: 'source', copy: false, width: 322, height: 182, videoBitrateKbps: 700, audioBitrateKbps: 96 },
    ]);
  });

  it('honours includeSource: false', () => {
    expect(uploadRenditions(probe('h264', 1280, 720), { ...settings, includeSource: false }).map((r) => r.name)).toEqual(['720p', '480p', '360p']);
  });
});

describe('progressParser', () => {
  it('reports out_time_us across chunk boundaries and ignores other keys', () => {
    const times: number[] = [];
    const feed = progressParser((t) => times.push(t));
    feed('frame=10\nout_time_us=1500');
    feed('000\nout_time=00:00:01.500000\nprogress=continue\nout_time_us=N/A\n');
    feed('out_time_us=3000000\nprogress=end\n');
    expect(times).toEqual([1.5, 3]);
  });
});

describe('buildLiveArgs with a file', () => {
  it('reads the file without stdin and writes progress to stdout', () => {
    const args = buildLiveArgs({
      renditions: uploadRenditions(probe('h264', 1280, 720), settings),
      gopSeconds: 1,
      partDurationSeconds: 0.25,
      sourceAudio: 'aac',
      input: { file: '/data/uploads/sources/abc' },
      progress: true,
    });
    expect(args.slice(0, 10)).toEqual([
      '-hide_banner',
      '-progress',
      'pipe:1',
      '-nostats',
      '-loglevel',
      'warning',
      '-nostdin',
      '-i',
      '/data/uploads/sources/abc',
      '-map',
    ]);
    expect(args).not.toContain('flv');
    expect(args.filter((a) => /^pipe:[3-9]$/.test(a))).toEqual(['pipe:3', 'pipe:4', 'pipe:5']);
  });
});
