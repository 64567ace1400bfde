import type { VideoCodecName } from './whip-offer.ts';

/**
 * Whether an RTP payload starts (or is part of the start of) a keyframe, per codec (pure).
 * H.264 (RFC 6184): an SPS or IDR NAL unit, single, in a STAP-A, or the first FU-A fragment.
 * VP8 (RFC 7741): the first partition's start with the P bit clear. VP9 (RFC 9628): the start
 * of a frame (B) that is not inter-predicted (P clear).
 */
export function isKeyframeStart(codec: VideoCodecName, payload: Uint8Array): boolean {
  if (codec === 'h264') return h264HasKeyNal(payload);
  if (codec === 'vp8') return vp8IsKeyframe(payload);
  return vp9IsKeyframe(payload);
}

/**
 * Whether FFmpeg can start decoding at this packet: for H.264 it must carry the SPS (a keyframe
 * whose parameter sets were lost cannot be decoded); for VP8/VP9 any keyframe start.
 */
export function isDecoderStart(codec: VideoCodecName, payload: Uint8Array): boolean {
  if (codec !== 'h264') return isKeyframeStart(codec, payload);
  return h264HasKeyNal(payload, (type) => type === NAL_SPS);
}

const NAL_IDR = 5;
const NAL_SPS = 7;
const NAL_STAP_A = 24;
const NAL_FU_A = 28;

function isKeyOrSps(type: number): boolean {
  return type === NAL_IDR || type === NAL_SPS;
}

function h264HasKeyNal(p: Uint8Array, isKeyNal: (type: number) => boolean = isKeyOrSps): boolean {
  const first = p[0];
  if (first === undefined) return false;
  const type = first & 0x1f;
  if (type === NAL_STAP_A) {
    let i = 1;
    while (i + 2 < p.length) {
      const size = ((p[i] ?? 0) << 8) | (p[i + 1] ?? 0);
      const nal = p[i + 2];
      if (size === 0 || nal === undefined) return false;
      if (isKeyNal(nal & 0x1f)) return true;
      i += 2 + size;
    }
    return false;
  }
  if (type === NAL_FU_A) {
    const header = p[1];
    return header !== undefined && (header & 0x80) !== 0 && isKeyNal(header & 0x1f);
  }
  return isKeyNal(type);
}

function vp8IsKeyframe(p: Uint8Array): boolean {
  const b0 = p[0];
  if (b0 === undefined) return false;
  const start = (b0 & 0x10) !== 0;
  const partition = b0 & 0x0f;
  if (!start || partition !== 0) return false;
  let i = 1;
  if (b0 & 0x80) {
    const x = p[i++];
    if (x === undefined) return false;
    if (x & 0x80) {
      // PictureID: 7 or 15 bits (M flag).
      const pid = p[i++];
      if (pid === undefined) return false;
      if (pid & 0x80) i++;
    }
    if (x & 0x40) i++; // TL0PICIDX
    if (x & 0x30) i++; // TID / KEYIDX
  }
  const header = p[i];
  return header !== undefined && (header & 0x01) === 0;
}

function vp9IsKeyframe(p: Uint8Array): boolean {
  const b0 = p[0];
  if (b0 === undefined) return false;
  const interPredicted = (b0 & 0x40) !== 0;
  const startOfFrame = (b0 & 0x08) !== 0;
  return startOfFrame && !interPredicted;
}
