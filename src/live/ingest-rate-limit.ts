/**
 * A publisher's ingest bitrate over the last `windowSeconds` of arrival time, in one-second
 * buckets (constant memory, O(1) per tag). `over()` turns true once a whole window has been seen
 * and its average exceeds the limit: a short burst (a keyframe, a reconnect catching up) passes.
 */
export class IngestRateLimit {
  readonly #limitBitsPerSecond: number;
  readonly #buckets: number[];
  readonly #now: () => number;
  readonly #startedSecond: number;
  #currentSecond: number;
  #windowBytes = 0;

  constructor(opts: { maxKbps: number; windowSeconds?: number; now?: () => number }) {
    this.#limitBitsPerSecond = opts.maxKbps * 1000;
    this.#buckets = new Array<number>(opts.windowSeconds ?? 10).fill(0);
    this.#now = opts.now ?? Date.now;
    this.#startedSecond = Math.floor(this.#now() / 1000);
    this.#currentSecond = this.#startedSecond;
  }

  /** Adds received bytes; returns true when the average over the window is above the limit. */
  add(bytes: number): boolean {
    const second = Math.floor(this.#now() / 1000);
    const n = this.#buckets.length;
    if (second !== this.#currentSecond) {
      // Clear the buckets of the seconds that passed without data (at most the whole ring).
      for (let s = this.#currentSecond + 1; s <= second && s <= this.#currentSecond + n; s++) {
        this.#windowBytes -= this.#buckets[s % n]!;
        this.#buckets[s % n] = 0;
      }
      this.#currentSecond = second;
    }
    this.#buckets[second % n]! += bytes;
    this.#windowBytes += bytes;
    return this.over();
  }

  /** Average bits per second over the last full window (0 before a whole window has passed). */
  get averageBitsPerSecond(): number {
    if (this.#currentSecond - this.#startedSecond < this.#buckets.length) return 0;
    return (this.#windowBytes * 8) / this.#buckets.length;
  }

  over(): boolean {
    return this.#limitBitsPerSecond > 0 && this.averageBitsPerSecond > this.#limitBitsPerSecond;
  }
}
