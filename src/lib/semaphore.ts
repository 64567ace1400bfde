/**
 * Bounds how many of something run at once (FFmpeg processes), with a bounded wait list: a caller
 * past `maxQueued` is refused at once rather than piling up behind the others.
 */
export class Semaphore {
  readonly #max: number;
  readonly #maxQueued: number;
  #active = 0;
  readonly #waiting: Array<() => void> = [];

  constructor(max: number, maxQueued = Number.POSITIVE_INFINITY) {
    this.#max = Math.max(1, Math.floor(max));
    this.#maxQueued = maxQueued;
  }

  get active(): number {
    return this.#active;
  }

  get queued(): number {
    return this.#waiting.length;
  }

  /** True when a new caller would have to be refused. */
  get full(): boolean {
    return this.#active >= this.#max && this.#waiting.length >= this.#maxQueued;
  }

  /** Runs `fn` once a slot is free. Throws SemaphoreFullError when the wait list is full. */
  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.#active >= this.#max) {
      if (this.#waiting.length >= this.#maxQueued) throw new SemaphoreFullError();
      await new Promise<void>((resolve) => this.#waiting.push(resolve));
    } else {
      this.#active++;
    }
    try {
      return await fn();
    } finally {
      const next = this.#waiting.shift();
      // The slot passes straight to the next waiter; `active` stays the same.
      if (next) next();
      else this.#active--;
    }
  }
}

export class SemaphoreFullError extends Error {
  constructor() {
    super('too many waiting');
    this.name = 'SemaphoreFullError';
  }
}
