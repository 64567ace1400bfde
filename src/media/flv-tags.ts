import type { FlvTag } from './flv-tag.ts';

/**
 * FLV container helpers: the file header and tag framing used to feed FFmpeg's stdin, and the
 * classification of a tag body (keyframe / decoder configuration) for legacy FLV and
 * enhanced RTMP (fourCC) video and audio.
 */

export const FLV_TAG_AUDIO = 8;
export const FLV_TAG_VIDEO = 9;
export const FLV_TAG_SCRIPT = 18;

/** The largest tag body the 24-bit DataSize field can carry. */
export const FLV_MAX_TAG_BODY = 0xffffff;

const FLV_TAG_HEADER_SIZE = 11;

/** Legacy FLV video codec ids. 12 is the widespread (non-Adobe) HEVC extension. */
export const FLV_VIDEO_CODEC_AVC = 7;
export const FLV_VIDEO_CODEC_HEVC_LEGACY = 12;
/** Legacy FLV audio sound formats. */
export const FLV_AUDIO_FORMAT_MP3 = 2;
export const FLV_AUDIO_FORMAT_AAC = 10;
/** Enhanced RTMP: SoundFormat 9 means an ExAudioTagHeader with a fourCC follows. */
export const FLV_AUDIO_FORMAT_EX_HEADER = 9;

// Enhanced RTMP packet types (veovera enhanced-rtmp v1/v2).
const VIDEO_PACKET_SEQUENCE_START = 0;
const VIDEO_PACKET_CODED_FRAMES = 1;
const VIDEO_PACKET_CODED_FRAMES_X = 3;
const VIDEO_PACKET_MPEG2TS_SEQUENCE_START = 5;
const AUDIO_PACKET_SEQUENCE_START = 0;
const FRAME_TYPE_KEY = 1;

/**
 * The 9-byte FLV file header followed by PreviousTagSize0 (4 zero bytes), i.e. everything that
 * precedes the first tag.
 */
export function encodeFlvHeader(streams: { audio: boolean; video: boolean }): Buffer {
  const out = Buffer.alloc(13);
  out.write('FLV', 0, 'latin1');
  out[3] = 1;
  out[4] = (streams.audio ? 0x04 : 0) | (streams.video ? 0x01 : 0);
  out.writeUInt32BE(9, 5);
  return out;
}

/** One tag: 11-byte header, body, then its 4-byte PreviousTagSize. */
export function encodeFlvTag(tag: Pick<FlvTag, 'type' | 'timestamp' | 'data'>): Buffer {
  const size = tag.data.length;
  if (size > FLV_MAX_TAG_BODY) throw new RangeError(`FLV tag body too large: ${size} bytes`);
  // Timestamps are 32-bit on the wire: the low 24 bits, then the high 8 in the extension byte.
  const ts = tag.timestamp >>> 0;
  const out = Buffer.allocUnsafe(FLV_TAG_HEADER_SIZE + size + 4);
  out[0] = tag.type;
  out.writeUIntBE(size, 1, 3);
  out.writeUIntBE(ts & 0xffffff, 4, 3);
  out[7] = ts >>> 24;
  out.writeUIntBE(0, 8, 3);
  tag.data.copy(out, FLV_TAG_HEADER_SIZE);
  out.writeUInt32BE(FLV_TAG_HEADER_SIZE + size, FLV_TAG_HEADER_SIZE + size);
  return out;
}

export interface FlvTagClass {
  keyframe: boolean;
  sequenceHeader: boolean;
}

export type VideoFourCc = 'avc1' | 'hvc1' | 'av01' | 'vp09' | 'other';

export interface VideoTagHeader {
  enhanced: boolean;
  /** 1 key, 2 inter, 3 disposable, 4 generated key, 5 command frame. */
  frameType: number;
  /** Legacy CodecID (7 = AVC) or, for enhanced tags, the fourCC. */
  codec: VideoFourCc | number;
  /** AVCPacketType for legacy AVC/HEVC, VideoPacketType for enhanced, else -1. */
  packetType: number;
  /** Offset of the codec payload (after the packet type / fourCC / composition time). */
  payloadOffset: number;
}

/** Parses the video tag header; undefined for a body too short to hold one. */
export function parseVideoTagHeader(data: Buffer): VideoTagHeader | undefined {
  const b0 = data[0];
  if (b0 === undefined) return undefined;
  const frameType = (b0 >> 4) & 0x07;
  if (b0 & 0x80) {
    if (data.length < 5) return undefined;
    const packetType = b0 & 0x0f;
    const fourCc = data.toString('latin1', 1, 5);
    const codec: VideoFourCc = fourCc === 'hvc1' || fourCc === 'av01' || fourCc === 'vp09' || fourCc === 'avc1' ? fourCc : 'other';
    // Only HEVC/AVC CodedFrames carry a 24-bit composition time offset.
    const hasCts = packetType === VIDEO_PACKET_CODED_FRAMES && (codec === 'hvc1' || codec === 'avc1');
    return { enhanced: true, frameType, codec, packetType, payloadOffset: hasCts ? 8 : 5 };
  }
  const codecId = b0 & 0x0f;
  if (codecId === FLV_VIDEO_CODEC_AVC || codecId === FLV_VIDEO_CODEC_HEVC_LEGACY) {
    const packetType = data[1];
    if (packetType === undefined || data.length < 5) return undefined;
    return { enhanced: false, frameType, codec: codecId, packetType, payloadOffset: 5 };
  }
  return { enhanced: false, frameType, codec: codecId, packetType: -1, payloadOffset: 1 };
}

function classifyVideo(data: Buffer): FlvTagClass {
  const h = parseVideoTagHeader(data);
  if (!h) return { keyframe: false, sequenceHeader: false };
  if (h.enhanced) {
    if (h.packetType === VIDEO_PACKET_SEQUENCE_START || h.packetType === VIDEO_PACKET_MPEG2TS_SEQUENCE_START) {
      return { keyframe: false, sequenceHeader: true };
    }
    const coded = h.packetType === VIDEO_PACKET_CODED_FRAMES || h.packetType === VIDEO_PACKET_CODED_FRAMES_X;
    return { keyframe: coded && h.frameType === FRAME_TYPE_KEY, sequenceHeader: false };
  }
  if (h.packetType === 0) return { keyframe: false, sequenceHeader: true };
  // packetType 2 is end-of-sequence: not a frame.
  const isFrame = h.packetType === -1 || h.packetType === 1;
  return { keyframe: isFrame && h.frameType === FRAME_TYPE_KEY, sequenceHeader: false };
}

function classifyAudio(data: Buffer): FlvTagClass {
  const b0 = data[0];
  if (b0 === undefined) return { keyframe: false, sequenceHeader: false };
  const soundFormat = b0 >> 4;
  if (soundFormat === FLV_AUDIO_FORMAT_AAC) return { keyframe: false, sequenceHeader: data[1] === 0 };
  if (soundFormat === FLV_AUDIO_FORMAT_EX_HEADER) {
    return { keyframe: false, sequenceHeader: (b0 & 0x0f) === AUDIO_PACKET_SEQUENCE_START && data.length >= 5 };
  }
  return { keyframe: false, sequenceHeader: false };
}

/** Whether a tag body is a keyframe and/or a decoder configuration. Never throws. */
export function classifyFlvTag(type: number, data: Buffer): FlvTagClass {
  if (type === FLV_TAG_VIDEO) return classifyVideo(data);
  if (type === FLV_TAG_AUDIO) return classifyAudio(data);
  return { keyframe: false, sequenceHeader: false };
}

const SET_DATA_FRAME = Buffer.from([0x02, 0x00, 0x0d, ...Buffer.from('@setDataFrame', 'latin1')]);

/**
 * RTMP publishers wrap metadata as `@setDataFrame("onMetaData", {...})`; in an FLV file it is
 * `onMetaData` alone, which is what demuxers look for. Returns the body without the wrapper.
 */
export function stripSetDataFrame(data: Buffer): Buffer {
  if (data.length > SET_DATA_FRAME.length && data.subarray(0, SET_DATA_FRAME.length).equals(SET_DATA_FRAME)) {
    return data.subarray(SET_DATA_FRAME.length);
  }
  return data;
}
