/**
 * Groups fMP4 fragments into LL-HLS parts and segments. Pure: fragments and wall-clock times in,
 * events out. Every fragment is one part; a segment is cut at an independent part once the open
 * segment has reached the target duration, so segments always start at a keyframe.
 */
import { fragmentDurationSeconds } from '../media/mp4-types.ts';
import type { Mp4Fragment } from '../media/mp4-types.ts';

export interface Part {
  /** Index of the part within its segment, from 0. */
  index: number;
  /** Seconds. */
  duration: number;
  independent: boolean;
  data: Buffer;
}

export interface Segment {
  /** Media sequence number. */
  msn: number;
  /** Seconds: the sum of its parts. */
  duration: number;
  parts: Part[];
  /** Wall clock (ms since epoch) of its first part. */
  programDateTime: number;
  byteSize: number;
  /** Concatenation of its parts' bytes; each part's `data` is a view into it. */
  data: Buffer;
}

export type SegmenterEvent =
  | { type: 'part'; msn: number; partIndex: number; part: Part }
  | { type: 'segment'; segment: Segment };

export interface SegmenterOptions {
  /** Seconds (default 2). */
  targetSegmentDuration?: number;
  /** Media sequence number of the first segment (default 0). */
  firstMsn?: number;
  /** PART-TARGET in seconds: when given, a segment also ends after a part under 85 % of it. */
  partTarget?: number;
}

/** Durations are sums of floats; a segment a hair short of the target still counts as reaching it. */
const DURATION_TOLERANCE = 1e-3;

interface OpenSegment {
  msn: number;
  parts: Part[];
  duration: number;
  programDateTime: number;
}

export class Segmenter {
  readonly targetSegmentDuration: number;
  #nextMsn: number;
  #open: OpenSegment | undefined;
  readonly #partTarget: number | undefined;

  constructor(opts: SegmenterOptions = {}) {
    this.targetSegmentDuration = opts.targetSegmentDuration ?? 2;
    this.#partTarget = opts.partTarget;
    if (!(this.targetSegmentDuration > 0)) throw new RangeError('targetSegmentDuration must be > 0');
    this.#nextMsn = opts.firstMsn ?? 0;
  }

  /** MSN the next segment to open will get. */
  get nextMsn(): number {
    return this.#nextMsn;
  }

  /** The segment being filled, if any: its MSN and parts so far. */
  get openSegment(): { msn: number; parts: readonly Part[]; duration: number; programDateTime: number } | undefined {
    return this.#open;
  }

  push(fragment: Mp4Fragment, wallClockMs: number): SegmenterEvent[] {
    const events: SegmenterEvent[] = [];
    const independent = fragment.independent;
    if (this.#open && independent && (this.#open.duration >= this.targetSegmentDuration - DURATION_TOLERANCE || this.#endsShort(this.#open))) {
      events.push(this.#close());
    }
    if (!this.#open) {
      // A segment must start with a keyframe: parts before the first one are undecodable.
      if (!independent) return events;
      this.#open = { msn: this.#nextMsn++, parts: [], duration: 0, programDateTime: wallClockMs };
    }
    events.push(this.#append(this.#open, fragment));
    return events;
  }

  /**
   * The part before a keyframe is short when the GOP is not a multiple of the part duration.
   * rfc8216bis 4.4.4.9 allows a part under 85 % of PART-TARGET only when it is independent or the
   * last of its segment: so the segment ends there, early, rather than break the rule.
   */
  #endsShort(open: OpenSegment): boolean {
    const last = open.parts.at(-1);
    return this.#partTarget !== undefined && last !== undefined && !last.independent && last.duration < 0.85 * this.#partTarget - DURATION_TOLERANCE;
  }

  #append(open: OpenSegment, fragment: Mp4Fragment): SegmenterEvent {
    const duration = fragmentDurationSeconds(fragment);
    const part: Part = { index: open.parts.length, duration, independent: fragment.independent, data: fragment.data };
    open.parts.push(part);
    open.duration += duration;
    return { type: 'part', msn: open.msn, partIndex: part.index, part };
  }

  /**
   * Like `push`, but the segment boundary is decided by the caller (a rendition following another
   * one's timeline): with `boundary`, the fragment (which must be independent) opens segment
   * `boundary.msn`; without, it joins the open segment, or is dropped when none is open.
   */
  pushFollowing(
    fragment: Mp4Fragment,
    boundary: { msn: number; programDateTime: number } | undefined,
  ): SegmenterEvent[] {
    const events: SegmenterEvent[] = [];
    if (boundary && fragment.independent) {
      if (this.#open) events.push(this.#close());
      if (boundary.msn < this.#nextMsn) throw new RangeError(`segment ${boundary.msn} is not after ${this.#nextMsn - 1}`);
      this.#open = { msn: boundary.msn, parts: [], duration: 0, programDateTime: boundary.programDateTime };
      this.#nextMsn = boundary.msn + 1;
    }
    if (!this.#open) return events;
    events.push(this.#append(this.#open, fragment));
    return events;
  }

  /**
   * Closes the open segment, however short (end of stream, FFmpeg restart). The next segment
   * again waits for an independent part.
   */
  flush(): SegmenterEvent[] {
    return this.#open ? [this.#close()] : [];
  }

  #close(): SegmenterEvent {
    const open = this.#open;
    if (!open) throw new Error('no open segment');
    this.#open = undefined;
    const data = Buffer.concat(open.parts.map((p) => p.data));
    // Re-point parts at the segment buffer so the window holds each byte once.
    let offset = 0;
    const parts = open.parts.map((p) => {
      const view = data.subarray(offset, offset + p.data.length);
      offset += p.data.length;
      return { ...p, data: view };
    });
    const segment: Segment = {
      msn: open.msn,
      duration: open.duration,
      parts,
      programDateTime: open.programDateTime,
      byteSize: data.length,
      data,
    };
    return { type: 'segment', segment };
  }
}
