import type { FlvTag } from './flv-tag.ts';
import { classifyFlvTag, FLV_MAX_TAG_BODY } from './flv-tags.ts';

const TAG_HEADER_SIZE = 11;

/**
 * Reads an FLV byte stream incrementally (FFmpeg writing `-f flv pipe:`): push chunks as they
 * arrive, get back every tag completed so far. Throws on a stream that is not FLV or a tag larger
 * than `maxTagBytes`; after a throw the reader is unusable (start a new one).
 */
export class FlvStreamReader {
  readonly #maxTagBytes: number;
  #buffer: Buffer = Buffer.alloc(0);
  #headerDone = false;

  constructor(opts: { maxTagBytes?: number } = {}) {
    this.#maxTagBytes = Math.min(opts.maxTagBytes ?? 16 * 1024 * 1024, FLV_MAX_TAG_BODY);
  }

  /** Bytes held waiting for the rest of a tag. */
  get bufferedBytes(): number {
    return this.#buffer.length;
  }

  push(chunk: Buffer): FlvTag[] {
    this.#buffer = this.#buffer.length === 0 ? chunk : Buffer.concat([this.#buffer, chunk]);
    const tags: FlvTag[] = [];
    let p = 0;
    const b = this.#buffer;
    if (!this.#headerDone) {
      if (b.length < 9) return tags;
      if (b.toString('latin1', 0, 3) !== 'FLV') throw new Error('not an FLV stream');
      const headerSize = b.readUInt32BE(5);
      if (headerSize < 9 || headerSize > 1024) throw new Error('bad FLV header size');
      if (b.length < headerSize + 4) return tags;
      p = headerSize + 4; // PreviousTagSize0
      this.#headerDone = true;
    }
    while (p + TAG_HEADER_SIZE <= b.length) {
      const type = (b[p] ?? 0) & 0x1f;
      const size = b.readUIntBE(p + 1, 3);
      if (size > this.#maxTagBytes) throw new Error(`FLV tag of ${size} bytes is over the limit`);
      const end = p + TAG_HEADER_SIZE + size + 4;
      if (end > b.length) break;
      const timestamp = (b.readUIntBE(p + 4, 3) | ((b[p + 7] ?? 0) << 24)) >>> 0;
      if (type === 8 || type === 9 || type === 18) {
        const data = Buffer.from(b.subarray(p + TAG_HEADER_SIZE, end - 4));
        tags.push({ type, timestamp, data, ...classifyFlvTag(type, data) });
      }
      p = end;
    }
    this.#buffer = p === b.length ? Buffer.alloc(0) : b.subarray(p);
    return tags;
  }
}
