/**
 * One packet stream to many viewers without letting one stall the others. Each viewer's sends
 * are counted while in flight (its transport has not taken them yet); a viewer with too many in
 * flight, or whose send fails, is dropped — the producer never waits for anyone. Video goes to a
 * viewer from a keyframe on (it cannot decode anything before one).
 */

export type MediaKind = 'video' | 'audio';

export interface FanoutViewer<P> {
  readonly id: string;
  /** Hands a packet to the viewer's transport; settles when the transport has taken it. */
  send(kind: MediaKind, packet: P): Promise<void> | void;
}

export type DropReason = 'slow' | 'send_failed';

export interface RtpFanoutOptions<V> {
  /** Packets a viewer may have in flight before it counts as too slow. */
  maxInFlight: number;
  /** Told once per dropped viewer (after it is removed). Must not throw. */
  onDrop: (viewer: V, reason: DropReason, error?: unknown) => void;
}

interface Slot {
  inFlight: number;
  /** Video waits for the next keyframe. */
  waitingForKeyframe: boolean;
}

export class RtpFanout<P, V extends FanoutViewer<P>> {
  readonly #opts: RtpFanoutOptions<V>;
  readonly #viewers = new Map<V, Slot>();

  constructor(opts: RtpFanoutOptions<V>) {
    this.#opts = opts;
  }

  get size(): number {
    return this.#viewers.size;
  }

  get waitingForKeyframe(): number {
    let n = 0;
    for (const s of this.#viewers.values()) if (s.waitingForKeyframe) n++;
    return n;
  }

  viewers(): IterableIterator<V> {
    return this.#viewers.keys();
  }

  add(viewer: V): void {
    if (!this.#viewers.has(viewer)) this.#viewers.set(viewer, { inFlight: 0, waitingForKeyframe: true });
  }

  remove(viewer: V): boolean {
    return this.#viewers.delete(viewer);
  }

  /** Packets handed to the viewer and not yet taken by its transport. */
  inFlight(viewer: V): number {
    return this.#viewers.get(viewer)?.inFlight ?? 0;
  }

  /**
   * Sends the packets of one access unit (video) or one audio frame to every viewer that can use
   * them. `keyframe`: the video unit starts with a keyframe (waiting viewers start here).
   */
  broadcast(kind: MediaKind, packets: readonly P[], keyframe = false): void {
    if (packets.length === 0) return;
    for (const [viewer, slot] of [...this.#viewers]) {
      if (kind === 'video' && slot.waitingForKeyframe) {
        if (!keyframe) continue;
        slot.waitingForKeyframe = false;
      }
      if (slot.inFlight + packets.length > this.#opts.maxInFlight) {
        this.#drop(viewer, 'slow');
        continue;
      }
      for (const packet of packets) {
        if (!this.#send(viewer, slot, kind, packet)) break;
      }
    }
  }

  #send(viewer: V, slot: Slot, kind: MediaKind, packet: P): boolean {
    let result: Promise<void> | void;
    try {
      result = viewer.send(kind, packet);
    } catch (error) {
      this.#drop(viewer, 'send_failed', error);
      return false;
    }
    if (!result) return true;
    slot.inFlight++;
    result.then(
      () => {
        slot.inFlight--;
      },
      (error: unknown) => {
        slot.inFlight--;
        this.#drop(viewer, 'send_failed', error);
      },
    );
    return true;
  }

  #drop(viewer: V, reason: DropReason, error?: unknown): void {
    if (!this.#viewers.delete(viewer)) return;
    this.#opts.onDrop(viewer, reason, error);
  }
}
