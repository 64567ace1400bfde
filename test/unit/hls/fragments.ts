import type { Mp4Fragment, Mp4Init } from '../../../src/media/mp4-types.ts';

/** Helpers shared by the hls unit tests: synthetic fragments with exact timing. */

export const VIDEO_TIMESCALE = 90_000;

let sequence = 0;

/** A fragment of `seconds` of 24 fps video (and matching audio) starting at media time `start`, its bytes tagged for identification. */
export function fragment(seconds: number, independent: boolean, bytes = 100, tag = 0, start = 0): Mp4Fragment {
  sequence++;
  const data = Buffer.alloc(bytes, tag & 0xff);
  data.writeUInt32BE(sequence, 0);
  return {
    data,
    sequenceNumber: sequence,
    independent,
    tracks: [
      {
        trackId: 1,
        kind: 'video',
        timescale: VIDEO_TIMESCALE,
        baseMediaDecodeTime: Math.round(start * VIDEO_TIMESCALE),
        duration: Math.round(seconds * VIDEO_TIMESCALE),
        sampleCount: Math.round(seconds * 24),
        firstSampleIsSync: independent,
      },
      {
        trackId: 2,
        kind: 'audio',
        timescale: 48_000,
        baseMediaDecodeTime: Math.round(start * 48_000),
        duration: Math.round(seconds * 48_000),
        sampleCount: Math.round((seconds * 48_000) / 1024),
        firstSampleIsSync: true,
      },
    ],
  };
}

/**
 * `gops` GOPs of `partsPerGop` parts of `partSeconds` each, a keyframe at the start of each GOP,
 * media time running from `start` seconds.
 */
export function gops(gopCount: number, partsPerGop: number, partSeconds: number, bytes = 100, start = 0): Mp4Fragment[] {
  const out: Mp4Fragment[] = [];
  for (let g = 0; g < gopCount; g++) {
    for (let p = 0; p < partsPerGop; p++) {
      out.push(fragment(partSeconds, p === 0, bytes, 0, start + (g * partsPerGop + p) * partSeconds));
    }
  }
  return out;
}

/** Media end time of a list of fragments (start of the last plus its duration), seconds. */
export function endTime(fragments: readonly Mp4Fragment[]): number {
  const last = fragments[fragments.length - 1]?.tracks[0];
  return last ? (last.baseMediaDecodeTime + last.duration) / last.timescale : 0;
}

export function init(tag = 1, codec = 'avc1.64001f'): Mp4Init {
  return {
    data: Buffer.from(`init-${tag}`),
    tracks: [
      { id: 1, kind: 'video', timescale: VIDEO_TIMESCALE, codec, width: 1280, height: 720 },
      { id: 2, kind: 'audio', timescale: 48_000, codec: 'mp4a.40.2', sampleRate: 48_000, channels: 2 },
    ],
  };
}
