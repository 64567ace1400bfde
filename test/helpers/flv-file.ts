/**
 * A tiny FLV file reader for tests: splits a file into its header and whole tags (as the live
 * session would write them to FFmpeg), flagging keyframes and sequence headers.
 */

export interface FlvFileTag {
  /** 8 audio, 9 video, 18 script data. */
  type: number;
  /** Milliseconds. */
  timestamp: number;
  /** The whole tag: 11-byte header, body and the 4-byte PreviousTagSize that follows it. */
  bytes: Buffer;
  keyframe: boolean;
  sequenceHeader: boolean;
}

export interface FlvFile {
  /** The 9-byte file header and PreviousTagSize0. */
  header: Buffer;
  tags: FlvFileTag[];
}

const FILE_HEADER = 9 + 4;
const TAG_HEADER = 11;

export function readFlvFile(buf: Buffer): FlvFile {
  if (buf.length < FILE_HEADER || buf.toString('latin1', 0, 3) !== 'FLV') throw new Error('not an FLV file');
  const headerSize = buf.readUInt32BE(5);
  const header = buf.subarray(0, headerSize + 4);
  const tags: FlvFileTag[] = [];
  let at = header.length;
  while (at + TAG_HEADER <= buf.length) {
    const type = buf.readUInt8(at) & 0x1f;
    const size = buf.readUIntBE(at + 1, 3);
    const timestamp = (buf.readUIntBE(at + 4, 3) | (buf.readUInt8(at + 7) << 24)) >>> 0;
    const end = at + TAG_HEADER + size + 4;
    if (end > buf.length) break;
    const body = buf.subarray(at + TAG_HEADER, at + TAG_HEADER + size);
    const b0 = body[0] ?? 0;
    const b1 = body[1] ?? 0;
    // Video: frame type 1 = keyframe; AVC packet type 0 = decoder configuration.
    // Audio: sound format 10 = AAC; AAC packet type 0 = AudioSpecificConfig.
    const sequenceHeader = (type === 9 && (b0 & 0x0f) === 7 && b1 === 0) || (type === 8 && b0 >> 4 === 10 && b1 === 0);
    const keyframe = type === 9 && b0 >> 4 === 1 && !sequenceHeader;
    tags.push({ type, timestamp, bytes: buf.subarray(at, end), keyframe, sequenceHeader });
    at = end;
  }
  return { header, tags };
}

/**
 * What a live session hands the transcoder as headers: the file header, then every script and
 * sequence header tag that comes before the first media frame.
 */
export function splitHeaders(file: FlvFile): { headers: Buffer[]; media: FlvFileTag[] } {
  const headers = [file.header];
  let i = 0;
  for (; i < file.tags.length; i++) {
    const tag = file.tags[i];
    if (!tag || !(tag.type === 18 || tag.sequenceHeader)) break;
    headers.push(tag.bytes);
  }
  return { headers, media: file.tags.slice(i) };
}
