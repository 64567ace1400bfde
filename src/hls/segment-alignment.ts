/**
 * One segment timeline for every rendition of a session. The leader (the first rendition, the
 * copied source when there is one) cuts segments with its own segmenter; every other rendition
 * cuts exactly where the leader did, matched by media time, and takes the leader's MSN and
 * program date time. So renditions share MSNs even when one of them misses a keyframe, and
 * fragments may arrive in any order across renditions: a follower fragment the leader has not
 * reached yet waits (`wait`) until it has. Pure.
 */

export interface Boundary {
  msn: number;
  /** Media time of the segment's first part, seconds (leader's decode time). */
  time: number;
  /** Wall clock of the segment start, ms since epoch. */
  programDateTime: number;
}

export type AlignDecision =
  | { type: 'cut'; boundary: Boundary }
  | { type: 'append' }
  | { type: 'wait' };

interface Epoch {
  boundaries: Boundary[];
  /** Media time up to which the leader has pushed fragments. */
  horizon: number;
  /** The leader has moved on to a later epoch: nothing more comes in this one. */
  final: boolean;
}

/** Boundaries kept per epoch; a follower more than this many segments behind the leader falls back to its own cuts. */
const MAX_BOUNDARIES = 64;
const MAX_EPOCHS = 4;

export class LeaderTimeline {
  /**
   * Seconds within which a follower's keyframe matches a leader boundary: B-frame reordering
   * shifts the decode time of a copied keyframe against a transcoded one by a few frames.
   */
  readonly tolerance: number;
  readonly #epochs = new Map<number, Epoch>();
  #current = -1;

  constructor(tolerance: number) {
    if (!(tolerance > 0)) throw new RangeError('tolerance must be > 0');
    this.tolerance = tolerance;
  }

  /** The leader's epoch (FFmpeg run; -1 before its first init). */
  get epoch(): number {
    return this.#current;
  }

  /** The leader got an init: a new epoch of timestamps begins and the previous one is final. */
  startEpoch(): void {
    const previous = this.#epochs.get(this.#current);
    if (previous) previous.final = true;
    this.#current++;
    this.#epochs.set(this.#current, { boundaries: [], horizon: -Infinity, final: false });
    for (const e of this.#epochs.keys()) if (e <= this.#current - MAX_EPOCHS) this.#epochs.delete(e);
  }

  /** The leader opened a segment. */
  addBoundary(boundary: Boundary): void {
    const epoch = this.#epochs.get(this.#current);
    if (!epoch) throw new Error('addBoundary before startEpoch');
    epoch.boundaries.push(boundary);
    if (epoch.boundaries.length > MAX_BOUNDARIES) epoch.boundaries.shift();
  }

  /** The leader has media up to `time` (end of its latest fragment). */
  advance(time: number): void {
    const epoch = this.#epochs.get(this.#current);
    if (epoch && time > epoch.horizon) epoch.horizon = time;
  }

  /** Where a follower fragment starting at media `time` of its `epoch` goes. */
  decide(epochNumber: number, time: number | undefined, independent: boolean): AlignDecision {
    const epoch = this.#epochs.get(epochNumber);
    if (!epoch) {
      // Not started by the leader yet: wait. Long forgotten: nothing to align with.
      return epochNumber > this.#current ? { type: 'wait' } : { type: 'append' };
    }
    if (time === undefined) return { type: 'append' };
    // A fragment that does not start with a keyframe never opens a segment: it joins the open one
    // whatever the leader decides, so it need not wait for the leader. Waiting held the short part
    // before each keyframe until the leader's next part was in (~0.2 s late on every GOP).
    if (!independent) return { type: 'append' };
    for (let i = epoch.boundaries.length - 1; i >= 0; i--) {
      const b = epoch.boundaries[i];
      if (!b) continue;
      if (Math.abs(b.time - time) <= this.tolerance) return { type: 'cut', boundary: b };
      if (b.time < time - this.tolerance) break;
    }
    if (epoch.final || epoch.horizon >= time + this.tolerance) return { type: 'append' };
    return { type: 'wait' };
  }
}
