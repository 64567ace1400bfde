/**
 * Incremental reader for the fragmented MP4 byte stream FFmpeg writes to a pipe: bytes in, in any
 * chunk sizes; `init` (ftyp+moov) and `fragment` (moof+mdat) events out. Pure: no I/O, no timers.
 *
 * Memory is bounded: a top-level box larger than `maxBoxSize` is refused before it is buffered,
 * so at most one moof, one mdat and a few small prefix boxes are held at a time.
 */
import { Fmp4Error, isPrintableType, printable, readBoxHeader } from './mp4-boxes.ts';
import type { Box } from './mp4-boxes.ts';
import { parseMoof } from './mp4-fragment.ts';
import type { ParsedMoof } from './mp4-fragment.ts';
import { parseMoov } from './mp4-init.ts';
import { mainFragmentTrack } from './mp4-types.ts';
import type { Fmp4Event, Mp4Track } from './mp4-types.ts';

export { Fmp4Error } from './mp4-boxes.ts';
export type { Fmp4ErrorCode } from './mp4-boxes.ts';
export { fragmentDurationSeconds, mainFragmentTrack } from './mp4-types.ts';
export type { Fmp4Event, Mp4Fragment, Mp4FragmentTrack, Mp4Init, Mp4Track, Mp4TrackKind } from './mp4-types.ts';

export interface Fmp4ReaderOptions {
  /** Largest top-level box accepted, in bytes (default 64 MiB). */
  maxBoxSize?: number;
}

const DEFAULT_MAX_BOX_SIZE = 64 * 1024 * 1024;
/** Boxes that may precede a moof and belong with its fragment (CMAF chunk prefix). */
const FRAGMENT_PREFIX_TYPES = new Set(['styp', 'sidx', 'prft', 'emsg']);

export class Fmp4Reader {
  readonly #maxBoxSize: number;
  readonly #queue = new ByteQueue();
  #ftyp: Buffer | undefined;
  #tracks: Mp4Track[] | undefined;
  #prefix: Buffer[] = [];
  #prefixBytes = 0;
  #moof: { data: Buffer; parsed: ParsedMoof } | undefined;
  #failure: Fmp4Error | undefined;

  constructor(opts: Fmp4ReaderOptions = {}) {
    this.#maxBoxSize = opts.maxBoxSize ?? DEFAULT_MAX_BOX_SIZE;
  }

  /** Tracks of the latest init segment, once one has been read. */
  get tracks(): readonly Mp4Track[] | undefined {
    return this.#tracks;
  }

  /** Feeds bytes; returns the events completed by them. Throws `Fmp4Error` on malformed input, and on every call after that. */
  push(chunk: Buffer): Fmp4Event[] {
    if (this.#failure) throw new Fmp4Error('READER_FAILED', `reader failed earlier: ${this.#failure.message}`);
    try {
      if (chunk.length > 0) this.#queue.push(chunk);
      return this.#drain();
    } catch (err) {
      // Anything but an Fmp4Error is a bug here: rethrow it as is, but stay failed all the same.
      this.#failure =
        err instanceof Fmp4Error ? err : new Fmp4Error('READER_FAILED', err instanceof Error ? err.message : String(err));
      throw err;
    }
  }

  /** Declares the end of the stream; throws `Fmp4Error('TRUNCATED_STREAM')` if a box or fragment was left incomplete. */
  finish(): void {
    if (this.#failure) throw new Fmp4Error('READER_FAILED', `reader failed earlier: ${this.#failure.message}`);
    if (this.#queue.length > 0 || this.#moof || this.#prefix.length > 0) {
      this.#failure = new Fmp4Error('TRUNCATED_STREAM', 'stream ended inside a box or fragment');
      throw this.#failure;
    }
  }

  #drain(): Fmp4Event[] {
    const events: Fmp4Event[] = [];
    while (this.#queue.length >= 8) {
      const head = this.#queue.peek(16);
      const header = readBoxHeader(head, 0, head.length);
      if (!header) break; // 64-bit size not complete yet
      if (!isPrintableType(head, 4)) {
        throw new Fmp4Error('INVALID_BOX_TYPE', `top-level box type '${printable(header.type)}' is not a box type`);
      }
      if (header.size === 0) {
        // "Extends to end of file" cannot be framed in an unbounded live stream.
        throw new Fmp4Error('UNSUPPORTED_BOX_SIZE', `top-level box '${header.type}' has size 0 (to end of stream)`);
      }
      if (header.size > this.#maxBoxSize) {
        throw new Fmp4Error('BOX_TOO_LARGE', `box '${header.type}' of ${header.size} bytes exceeds ${this.#maxBoxSize}`);
      }
      if (this.#queue.length < header.size) break;
      const data = this.#queue.take(header.size);
      const box: Box = { type: header.type, start: 0, payloadStart: header.headerSize, end: header.size };
      const event = this.#onBox(box, data);
      if (event) events.push(event);
    }
    return events;
  }

  #onBox(box: Box, data: Buffer): Fmp4Event | undefined {
    if (this.#moof && box.type !== 'mdat') {
      throw new Fmp4Error('MOOF_WITHOUT_MDAT', `'moof' followed by '${box.type}' instead of 'mdat'`);
    }
    switch (box.type) {
      case 'ftyp':
        this.#ftyp = data;
        return undefined;
      case 'moov': {
        const tracks = parseMoov(data, box);
        const init = { data: this.#ftyp ? Buffer.concat([this.#ftyp, data]) : data, tracks };
        this.#ftyp = undefined;
        this.#tracks = tracks;
        return { type: 'init', init };
      }
      case 'moof':
        if (!this.#tracks) throw new Fmp4Error('FRAGMENT_BEFORE_INIT', "'moof' before the init segment");
        this.#moof = { data, parsed: parseMoof(data, box, this.#tracks) };
        return undefined;
      case 'mdat': {
        if (!this.#tracks) throw new Fmp4Error('FRAGMENT_BEFORE_INIT', "'mdat' before the init segment");
        const moof = this.#moof;
        if (!moof) throw new Fmp4Error('UNEXPECTED_MDAT', "'mdat' without a preceding 'moof'");
        const bytes = Buffer.concat([...this.#prefix, moof.data, data]);
        this.#moof = undefined;
        this.#prefix = [];
        this.#prefixBytes = 0;
        const { sequenceNumber, tracks } = moof.parsed;
        const fragment = { data: bytes, sequenceNumber, tracks, independent: false };
        fragment.independent = mainFragmentTrack(fragment)?.firstSampleIsSync ?? false;
        return { type: 'fragment', fragment };
      }
      default:
        if (FRAGMENT_PREFIX_TYPES.has(box.type)) {
          this.#prefixBytes += data.length;
          // A stream of prefix boxes with no moof must not grow without bound.
          if (this.#prefixBytes > this.#maxBoxSize) {
            throw new Fmp4Error('BOX_TOO_LARGE', `${this.#prefixBytes} bytes of boxes before a 'moof'`);
          }
          this.#prefix.push(data);
        }
        // free, skip, mfra, udta, meta, …: nothing the packager needs.
        return undefined;
    }
  }
}

/** A FIFO of byte chunks that copies only when a read spans chunks. */
class ByteQueue {
  #chunks: Buffer[] = [];
  /** Index of the first live chunk; consumed chunks are dropped in batches, not one shift() each. */
  #head = 0;
  #length = 0;

  get length(): number {
    return this.#length;
  }

  push(chunk: Buffer): void {
    this.#chunks.push(chunk);
    this.#length += chunk.length;
  }

  /** Up to `n` bytes from the front, without consuming them. */
  peek(n: number): Buffer {
    const want = Math.min(n, this.#length);
    const first = this.#chunks[this.#head];
    if (first && first.length >= want) return first.subarray(0, want);
    const out = Buffer.allocUnsafe(want);
    let filled = 0;
    for (let i = this.#head; filled < want && i < this.#chunks.length; i++) {
      const chunk = this.#chunks[i];
      if (chunk) filled += chunk.copy(out, filled, 0, Math.min(chunk.length, want - filled));
    }
    return out;
  }

  /** Removes and returns exactly `n` bytes (n ≤ length). */
  take(n: number): Buffer {
    if (n > this.#length) throw new RangeError('ByteQueue.take past the end');
    const first = this.#chunks[this.#head];
    if (first && first.length >= n) {
      this.#consume(first, n);
      return first.subarray(0, n);
    }
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    while (filled < n) {
      const chunk = this.#chunks[this.#head];
      if (!chunk) throw new RangeError('ByteQueue.take past the end');
      const copied = chunk.copy(out, filled, 0, Math.min(chunk.length, n - filled));
      filled += copied;
      this.#consume(chunk, copied);
    }
    return out;
  }

  #consume(chunk: Buffer, n: number): void {
    this.#length -= n;
    if (n < chunk.length) {
      this.#chunks[this.#head] = chunk.subarray(n);
      return;
    }
    this.#head++;
    if (this.#head === this.#chunks.length) {
      this.#chunks = [];
      this.#head = 0;
    } else if (this.#head >= 1024) {
      this.#chunks = this.#chunks.slice(this.#head);
      this.#head = 0;
    }
  }
}
