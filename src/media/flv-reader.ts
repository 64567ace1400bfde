import type { FlvTag } from './flv-tag.ts';
import { classifyFlvTag } from './flv-tags.ts';

export interface FlvFile {
  audio: boolean;
  video: boolean;
  tags: FlvTag[];
}

/**
 * Reads a whole FLV file held in memory (tests, recordings, diagnostics). Throws on a malformed
 * header; a truncated last tag is ignored, as FFmpeg does with an interrupted file.
 */
export function readFlv(file: Buffer): FlvFile {
  if (file.length < 9 || file.toString('latin1', 0, 3) !== 'FLV') throw new Error('not an FLV file');
  const flags = file[4] ?? 0;
  const headerSize = file.readUInt32BE(5);
  if (headerSize < 9 || headerSize > file.length) throw new Error('bad FLV header size');
  const tags: FlvTag[] = [];
  // Skip PreviousTagSize0.
  let p = headerSize + 4;
  while (p + 11 <= file.length) {
    const type = (file[p] ?? 0) & 0x1f;
    const size = file.readUIntBE(p + 1, 3);
    const timestamp = (file.readUIntBE(p + 4, 3) | ((file[p + 7] ?? 0) << 24)) >>> 0;
    const end = p + 11 + size;
    if (end > file.length) break;
    if (type === 8 || type === 9 || type === 18) {
      const data = Buffer.from(file.subarray(p + 11, end));
      tags.push({ type, timestamp, data, ...classifyFlvTag(type, data) });
    }
    p = end + 4;
  }
  return { audio: (flags & 0x04) !== 0, video: (flags & 0x01) !== 0, tags };
}
