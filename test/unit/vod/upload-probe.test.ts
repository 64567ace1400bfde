import { describe, expect, it } from 'vitest';
import { interpretProbe, UploadRejectedError } from '../../../src/vod/upload-probe.ts';

const limits = { maxDurationSeconds: 60 };
const h264 = { codec_type: 'video', codec_name: 'h264', width: 1280, height: 720, avg_frame_rate: '30/1' };
const aac = { codec_type: 'audio', codec_name: 'aac' };
const mp4 = 'mov,mp4,m4a,3gp,3g2,mj2';

function reason(output: Parameters<typeof interpretProbe>[0], lim = limits): string | undefined {
  try {
    interpretProbe(output, lim);
    return undefined;
  } catch (error) {
    if (error instanceof UploadRejectedError) return error.reasonCode;
    throw error;
  }
}

describe('interpretProbe', () => {
  it('describes a video with audio', () => {
    expect(interpretProbe({ streams: [h264, aac], format: { format_name: mp4, duration: '10.02' } }, limits)).toEqual({
      duration: 10.02,
      formatName: mp4,
      video: { codec: 'h264', width: 1280, height: 720, fps: 30 },
      audio: { codec: 'aac' },
    });
  });

  it('takes the frame rate from r_frame_rate when the average is missing, and ignores nonsense', () => {
    const vfr = { ...h264, avg_frame_rate: '0/0', r_frame_rate: '25/1' };
    expect(interpretProbe({ streams: [vfr], format: { format_name: mp4, duration: '5' } }, limits).video.fps).toBe(25);
    const none = { ...h264, avg_frame_rate: '0/0', r_frame_rate: '90000/1' };
    expect(interpretProbe({ streams: [none], format: { format_name: mp4, duration: '5' } }, limits).video.fps).toBeUndefined();
  });

  it.each([
    ['audio only', { streams: [aac], format: { format_name: 'mp3', duration: '10' } }, 'ERR_NON_VIDEO'],
    ['cover art is not a video', { streams: [aac, { ...h264, codec_name: 'mjpeg', disposition: { attached_pic: 1 } }], format: { format_name: 'mp3', duration: '10' } }, 'ERR_NON_VIDEO'],
    ['a still image', { streams: [{ ...h264, codec_name: 'png' }], format: { format_name: 'png_pipe' } }, 'ERR_NON_VIDEO'],
    ['text read as tty', { streams: [{ ...h264, codec_name: 'ansi' }], format: { format_name: 'tty', duration: '1' } }, 'ERR_NON_VIDEO'],
    ['nothing at all', {}, 'ERR_NON_VIDEO'],
    ['no size', { streams: [{ codec_type: 'video', codec_name: 'h264' }], format: { format_name: mp4, duration: '3' } }, 'ERR_MALFORMED_VIDEO'],
    ['no duration', { streams: [h264], format: { format_name: mp4 } }, 'ERR_MALFORMED_VIDEO'],
    ['too short', { streams: [h264], format: { format_name: mp4, duration: '0.04' } }, 'ERR_DURATION_TOO_SHORT'],
    ['too long', { streams: [h264], format: { format_name: mp4, duration: '60.5' } }, 'ERR_DURATION_EXCEED_CONSTRAINT'],
  ])('refuses %s', (_name, output, code) => {
    expect(reason(output)).toBe(code);
  });

  it('accepts a video of exactly the maximum duration', () => {
    expect(reason({ streams: [h264], format: { format_name: mp4, duration: '60' } })).toBeUndefined();
  });
});
