/**
 * Requests held until the stream reaches some state (blocking playlist reload, preload-hinted
 * parts). No polling: the producer calls `notify()` after each change, and a waiter's condition
 * is evaluated only then. Waiters with the same key share one condition, so a thousand viewers
 * blocked on the same next part cost one check per change.
 */

/** How a wait ended without error: the condition held, or the waiters were released (stream end). */
export type WaitResult = 'ready' | 'released';

interface Waiter {
  resolve: (result: WaitResult) => void;
  reject: (reason: unknown) => void;
  signal: AbortSignal | undefined;
  onAbort: () => void;
}

interface Group {
  ready: () => boolean;
  waiters: Set<Waiter>;
}

export class Waiters {
  readonly #groups = new Map<string, Group>();
  #size = 0;

  /** Waiters currently held. */
  get size(): number {
    return this.#size;
  }

  /**
   * Resolves once `ready()` holds (checked now and at every `notify()`), or with 'released' at
   * `releaseAll()`. Rejects with the signal's reason when it aborts; the waiter is gone at once.
   * Every call with the same `key` must pass an equivalent `ready`.
   */
  wait(key: string, ready: () => boolean, signal?: AbortSignal): Promise<WaitResult> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (ready()) return Promise.resolve('ready');
    return new Promise<WaitResult>((resolve, reject) => {
      let group = this.#groups.get(key);
      if (!group) {
        group = { ready, waiters: new Set() };
        this.#groups.set(key, group);
      }
      const g = group;
      const waiter: Waiter = {
        resolve,
        reject,
        signal,
        onAbort: () => {
          this.#remove(key, g, waiter);
          reject(signal?.reason);
        },
      };
      g.waiters.add(waiter);
      this.#size++;
      signal?.addEventListener('abort', waiter.onAbort, { once: true });
    });
  }

  /** Re-checks every held condition; call after each change of the stream. */
  notify(): void {
    for (const [key, group] of this.#groups) {
      if (group.ready()) this.#settle(key, group, 'ready');
    }
  }

  /** Resolves every waiter with 'released' (the stream ended: its playlists are final). */
  releaseAll(): void {
    for (const [key, group] of this.#groups) this.#settle(key, group, 'released');
  }

  #settle(key: string, group: Group, result: WaitResult): void {
    this.#groups.delete(key);
    for (const w of group.waiters) {
      w.signal?.removeEventListener('abort', w.onAbort);
      this.#size--;
      w.resolve(result);
    }
    group.waiters.clear();
  }

  #remove(key: string, group: Group, waiter: Waiter): void {
    if (!group.waiters.delete(waiter)) return;
    this.#size--;
    if (group.waiters.size === 0 && this.#groups.get(key) === group) this.#groups.delete(key);
  }
}
