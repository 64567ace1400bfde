/**
 * Keeps FLV timestamps monotonic across bridge restarts (pure): a new FFmpeg starts its clock
 * again near zero, so its tags are shifted to follow the last tag of the previous one.
 */
export class TimestampRebaser {
  #offset = 0;
  #last: number | undefined;
  #first = true;
  #sources = 0;

  /** The next tags come from a new source (the first call is the initial one). */
  newSource(): void {
    this.#sources += 1;
    this.#first = this.#sources > 1;
  }

  rebase(timestamp: number): number {
    if (this.#first) {
      this.#first = false;
      // Continue one 20 ms audio frame after the last tag sent.
      if (this.#last !== undefined) this.#offset = this.#last + 20 - timestamp;
    }
    const out = Math.max(0, timestamp + this.#offset);
    this.#last = this.#last === undefined ? out : Math.max(this.#last, out);
    return out;
  }
}
