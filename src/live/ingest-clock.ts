/**
 * Maps FFmpeg's output media time back to the wall clock at which the publisher's frame reached
 * us, so EXT-X-PROGRAM-DATE-TIME says when a frame entered ingest (what latency is measured from).
 *
 * FFmpeg shifts its output to start at 0 at the first tag it reads; after each (re)start the
 * first tag is a video keyframe, whose FLV timestamp becomes the base.
 */
export class IngestClock {
  // Recent video tags: FLV timestamp (ms) and arrival wall clock (ms), oldest first.
  readonly #ts: number[] = [];
  readonly #wall: number[] = [];
  readonly #capacity: number;
  #base: number | undefined;

  constructor(capacity = 2048) {
    this.#capacity = capacity;
  }

  /** A new FFmpeg process: the next recorded tag is its time zero. */
  reset(): void {
    this.#base = undefined;
    this.#ts.length = 0;
    this.#wall.length = 0;
  }

  /** A video tag handed to FFmpeg at `wallMs`. */
  record(flvTimestampMs: number, wallMs: number): void {
    this.#base ??= flvTimestampMs;
    const last = this.#ts.at(-1);
    // Timestamps only move forward here; a wrap or a jump back starts a fresh mapping.
    if (last !== undefined && flvTimestampMs < last) {
      this.#ts.length = 0;
      this.#wall.length = 0;
      this.#base = flvTimestampMs;
    }
    this.#ts.push(flvTimestampMs);
    this.#wall.push(wallMs);
    if (this.#ts.length > this.#capacity) {
      this.#ts.shift();
      this.#wall.shift();
    }
  }

  /** The arrival wall clock of the frame at output media time `seconds`, or undefined if unknown. */
  wallFor(seconds: number): number | undefined {
    if (this.#base === undefined || this.#ts.length === 0) return undefined;
    const target = this.#base + seconds * 1000;
    // Binary search for the last tag at or before the target.
    let lo = 0;
    let hi = this.#ts.length - 1;
    if (target < this.#ts[0]!) return undefined;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.#ts[mid]! <= target) lo = mid;
      else hi = mid - 1;
    }
    return this.#wall[lo]! + (target - this.#ts[lo]!);
  }
}
