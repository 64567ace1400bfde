import type { FlvTag } from './flv-tag.ts';
import { classifyFlvTag } from './flv-tags.ts';

const HEADER_BYTES = 9 + 4; // FLV header + PreviousTagSize0
const TAG_HEADER_BYTES = 11;

/**
 * Reads an FLV byte stream (FFmpeg's `-f flv pipe:1`) chunk by chunk: `push(chunk)` returns the
 * tags completed by it. Throws on a malformed header or a tag larger than `maxTagBytes`.
 */
export class FlvStreamReader {
  readonly #maxTagBytes: number;
  #buffer: Buffer = Buffer.alloc(0);
  #headerRead = false;

  constructor(opts: { maxTagBytes?: number } = {}) {
    this.#maxTagBytes = opts.maxTagBytes ?? 16 * 1024 * 1024;
  }

  push(chunk: Buffer): FlvTag[] {
    this.#buffer = this.#buffer.length === 0 ? chunk : Buffer.concat([this.#buffer, chunk]);
    const tags: FlvTag[] = [];
    let p = 0;
    if (!this.#headerRead) {
      if (this.#buffer.length < HEADER_BYTES) return tags;
      if (this.#buffer.toString('latin1', 0, 3) !== 'FLV' || this.#buffer.readUInt32BE(5) !== 9) throw new Error('not an FLV stream');
      this.#headerRead = true;
      p = HEADER_BYTES;
    }
    const buf = this.#buffer;
    while (p + TAG_HEADER_BYTES <= buf.length) {
      const type = buf[p]! & 0x1f;
      const size = buf.readUIntBE(p + 1, 3);
      if (size > this.#maxTagBytes) throw new Error(`FLV tag of ${size} bytes is over the limit`);
      const end = p + TAG_HEADER_BYTES + size + 4;
      if (end > buf.length) break;
      const timestamp = (buf.readUIntBE(p + 4, 3) | (buf[p + 7]! << 24)) >>> 0;
      if (type === 8 || type === 9 || type === 18) {
        const data = Buffer.from(buf.subarray(p + TAG_HEADER_BYTES, p + TAG_HEADER_BYTES + size));
        tags.push({ type, timestamp, data, ...classifyFlvTag(type, data) });
      }
      p = end;
    }
    this.#buffer = p === buf.length ? Buffer.alloc(0) : buf.subarray(p);
    return tags;
  }
}
