import type { VideoCodecName } from './whip-offer.ts';

/** Payload types the bridge FFmpeg expects, whatever the publisher negotiated. */
export const BRIDGE_VIDEO_PT = 96;
export const BRIDGE_AUDIO_PT = 111;

/**
 * RTP that arrives out of order (NACK retransmissions) waits this long in FFmpeg's reorder queue
 * before FFmpeg gives up on the gap; the queue is sized to hold that much video at ~10 Mbit/s.
 */
export const REORDER_MAX_DELAY_US = 300_000;
export const REORDER_QUEUE_PACKETS = 1024;

/** Most FFmpeg reads before it gives up on a stream's parameters (audio that never comes). */
const PROBE_CAP_US = 150_000;
const PROBE_CAP_BYTES = 2_000_000;

export interface BridgeMedia {
  video: { codec: VideoCodecName; fmtp: string; port: number };
  audio: { port: number } | undefined;
}

/** The SDP FFmpeg reads: local RTP ports (RTCP on port + 1) and the rewritten payload types. */
export function bridgeSdp(media: BridgeMedia): string {
  const { video, audio } = media;
  const name = video.codec === 'h264' ? 'H264' : video.codec.toUpperCase();
  const lines = [
    'v=0',
    'o=- 0 0 IN IP4 127.0.0.1',
    's=tributary-whip',
    'c=IN IP4 127.0.0.1',
    't=0 0',
    `m=video ${video.port} RTP/AVP ${BRIDGE_VIDEO_PT}`,
    `a=rtpmap:${BRIDGE_VIDEO_PT} ${name}/90000`,
  ];
  // Only what the depacketizer needs; parameter sets arrive in band (we start at an SPS/IDR).
  if (video.codec === 'h264') lines.push(`a=fmtp:${BRIDGE_VIDEO_PT} packetization-mode=1`);
  if (audio) lines.push(`m=audio ${audio.port} RTP/AVP ${BRIDGE_AUDIO_PT}`, `a=rtpmap:${BRIDGE_AUDIO_PT} opus/48000/2`);
  return `${lines.join('\r\n')}\r\n`;
}

export interface BridgeArgsOptions {
  sdpPath: string;
  codec: VideoCodecName;
  audio: boolean;
  /** Keyframe interval of transcoded (VP8/VP9) video. */
  gopSeconds: number;
  x264Preset: string;
}

/**
 * FFmpeg arguments: RTP in (SDP over local UDP), FLV out on stdout. H.264 is copied; VP8/VP9 are
 * encoded to H.264 without B-frames (the live pipeline expects ingest-like input); Opus → AAC.
 */
export function bridgeArgs(o: BridgeArgsOptions): string[] {
  const video =
    o.codec === 'h264'
      ? ['-c:v', 'copy']
      : [
          '-c:v', 'libx264', '-preset', o.x264Preset, '-tune', 'zerolatency', '-bf', '0',
          '-pix_fmt', 'yuv420p', '-crf', '21', '-maxrate', '8M', '-bufsize', '8M',
          // The frame rate is not probed (see above): keep RTP's 90 kHz time base rather than
          // FFmpeg's 25 fps fallback, which would quantise a 30 fps stream's timestamps.
          '-enc_time_base:v', '-1',
          // A nominal rate for x264's level and rate control only (which would otherwise take the
          // 90 kHz time base for the frame rate: level 6.2); passthrough keeps every frame as timed.
          '-r', '30',
          '-force_key_frames', `expr:gte(t,n_forced*${o.gopSeconds})`,
        ];
  const audio = o.audio ? ['-map', '0:a:0', '-c:a', 'aac', '-b:a', '128k', '-ar', '48000', '-ac', '2'] : [];
  return [
    '-hide_banner', '-nostdin', '-loglevel', 'warning',
    '-protocol_whitelist', 'file,udp,rtp',
    '-reorder_queue_size', String(REORDER_QUEUE_PACKETS),
    '-max_delay', String(REORDER_MAX_DELAY_US),
    // Start at once: FFmpeg needs only the codec parameters, which the first keyframe (what we
    // send first) and one Opus packet carry. By default it reads on: ~20 frames to guess the
    // frame rate (`fpsprobesize`), and for H.264 without reordering info in the SPS (browsers)
    // 7 decoded frames before it trusts a timestamp (`max_ts_probe`): 0.5–1.5 s before the first
    // byte of output. Without reordering (no B-frames, as WebRTC and OBS send) DTS = PTS anyway.
    // The analyze/probe limits cap the wait for a stream that never brings its parameters.
    '-fpsprobesize', '0', '-max_ts_probe', '1',
    '-analyzeduration', String(PROBE_CAP_US), '-probesize', String(PROBE_CAP_BYTES),
    '-fflags', '+genpts',
    '-i', o.sdpPath,
    '-map', '0:v:0', ...video,
    ...audio,
    '-fps_mode', 'passthrough',
    '-f', 'flv', '-flvflags', 'no_duration_filesize', 'pipe:1',
  ];
}
