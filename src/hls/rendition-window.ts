/**
 * The in-memory sliding window of one rendition: its init segment(s), the last N complete
 * segments, and the parts of the segment in progress. Resolves served file names strictly, so a
 * name is either one of ours still in the window or nothing.
 */
import type { Part, Segment } from './segmenter.ts';

export interface WindowSegment extends Segment {
  /** Name of the init segment this segment decodes with. */
  initName: string;
  /** First segment after an FFmpeg restart (EXT-X-DISCONTINUITY). */
  discontinuity: boolean;
}

export interface RenditionWindowOptions {
  /** Random per-session name prefix: lower-case letters and digits. */
  prefix: string;
  /** Complete segments kept (default 10). */
  maxSegments?: number;
}

interface InitEntry {
  name: string;
  data: Buffer;
}

const PREFIX_PATTERN = /^[0-9a-z]{4,32}$/;
// Numbers without leading zeros and short enough to be exact, so one resource has one name.
const NUM = '(0|[1-9][0-9]{0,14})';
const INIT_NAME = new RegExp(`^init-([0-9a-z]{4,32})(?:-([1-9][0-9]{0,8}))?\\.mp4$`);
const SEGMENT_NAME = new RegExp(`^seg-([0-9a-z]{4,32})-${NUM}\\.m4s$`);
const PART_NAME = new RegExp(`^part-([0-9a-z]{4,32})-${NUM}-${NUM}\\.m4s$`);

export class RenditionWindow {
  readonly prefix: string;
  readonly maxSegments: number;
  #segments: WindowSegment[] = [];
  #inits: InitEntry[] = [];
  #initVersion = -1;
  #open: { msn: number; parts: Part[] } | undefined;
  #pendingDiscontinuity = false;
  #mediaSequence = 0;
  #discontinuitySequence = 0;

  constructor(opts: RenditionWindowOptions) {
    if (!PREFIX_PATTERN.test(opts.prefix)) throw new RangeError('prefix must be 4–32 lower-case letters or digits');
    this.prefix = opts.prefix;
    this.maxSegments = opts.maxSegments ?? 10;
    if (!Number.isInteger(this.maxSegments) || this.maxSegments < 1) throw new RangeError('maxSegments must be ≥ 1');
  }

  get segments(): readonly WindowSegment[] {
    return this.#segments;
  }

  /** MSN of the first segment in the window (EXT-X-MEDIA-SEQUENCE). */
  get mediaSequence(): number {
    return this.#segments[0]?.msn ?? this.#mediaSequence;
  }

  /** Discontinuity tags that have left the window (EXT-X-DISCONTINUITY-SEQUENCE). */
  get discontinuitySequence(): number {
    return this.#discontinuitySequence;
  }

  /** Name of the current init segment, once one was set. */
  get initName(): string | undefined {
    return this.#inits[this.#inits.length - 1]?.name;
  }

  get openSegment(): { msn: number; parts: readonly Part[] } | undefined {
    return this.#open;
  }

  /**
   * Sets the init segment. Identical bytes keep the current name; different bytes get a new
   * name (`init-<prefix>-<n>.mp4`) so a cached old init is never mixed with new media.
   */
  setInit(data: Buffer): string {
    const current = this.#inits[this.#inits.length - 1];
    if (current && current.data.equals(data)) return current.name;
    this.#initVersion++;
    const name =
      this.#initVersion === 0 ? `init-${this.prefix}.mp4` : `init-${this.prefix}-${this.#initVersion}.mp4`;
    this.#inits.push({ name, data });
    this.#pruneInits();
    return name;
  }

  /** The next segment to be added starts a discontinuity (FFmpeg restarted). */
  markDiscontinuity(): void {
    this.#pendingDiscontinuity = true;
  }

  /** A part of the segment in progress arrived. */
  addPart(msn: number, part: Part): void {
    if (!this.#open || this.#open.msn !== msn) this.#open = { msn, parts: [] };
    this.#open.parts.push(part);
  }

  /** A segment completed; older segments beyond `maxSegments` leave the window. */
  addSegment(segment: Segment): WindowSegment {
    const initName = this.initName;
    if (initName === undefined) throw new Error('addSegment before setInit');
    const last = this.#segments[this.#segments.length - 1];
    if (last && segment.msn <= last.msn) throw new RangeError(`segment ${segment.msn} is not after ${last.msn}`);
    const entry: WindowSegment = { ...segment, initName, discontinuity: this.#pendingDiscontinuity };
    this.#pendingDiscontinuity = false;
    this.#segments.push(entry);
    if (this.#open?.msn === segment.msn) this.#open = undefined;
    while (this.#segments.length > this.maxSegments) {
      const removed = this.#segments.shift();
      if (removed?.discontinuity) this.#discontinuitySequence++;
      if (removed) this.#mediaSequence = removed.msn + 1;
    }
    this.#pruneInits();
    return entry;
  }

  /** Bytes for a served file name, or undefined for anything that is not ours and in the window. */
  lookup(name: string): Buffer | undefined {
    let m = SEGMENT_NAME.exec(name);
    if (m) {
      if (m[1] !== this.prefix) return undefined;
      return this.#segment(Number(m[2]))?.data;
    }
    m = PART_NAME.exec(name);
    if (m) {
      if (m[1] !== this.prefix) return undefined;
      const msn = Number(m[2]);
      const index = Number(m[3]);
      const parts = this.#open?.msn === msn ? this.#open.parts : this.#segment(msn)?.parts;
      return parts?.[index]?.data;
    }
    m = INIT_NAME.exec(name);
    if (m) {
      if (m[1] !== this.prefix) return undefined;
      return this.#inits.find((i) => i.name === name)?.data;
    }
    return undefined;
  }

  segmentName(msn: number): string {
    return `seg-${this.prefix}-${msn}.m4s`;
  }

  partName(msn: number, index: number): string {
    return `part-${this.prefix}-${msn}-${index}.m4s`;
  }

  #segment(msn: number): WindowSegment | undefined {
    const first = this.#segments[0];
    if (!first) return undefined;
    const candidate = this.#segments[msn - first.msn];
    return candidate?.msn === msn ? candidate : this.#segments.find((s) => s.msn === msn);
  }

  /** Keeps the current init and those still referenced by a segment in the window. */
  #pruneInits(): void {
    const current = this.#inits[this.#inits.length - 1];
    const used = new Set(this.#segments.map((s) => s.initName));
    this.#inits = this.#inits.filter((i) => i === current || used.has(i.name));
  }
}
